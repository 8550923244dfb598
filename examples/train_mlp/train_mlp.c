/* SPDX-License-Identifier: Apache-2.0 */
/* train_mlp: trains an MLP classifier on deterministic synthetic data with
 * libshardrt. The global batch is the same samples at every world size
 * (each rank takes its slice; the loss is the global mean), so any world
 * size and any strategy must reproduce the same losses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/trainer.h"
#include "mlp.h"

static const char *prog = "train_mlp";

typedef struct layer {
  int W, b;       /* param ids */
  int in, out;
  int unit;
  bool relu;
} layer;

typedef struct model {
  mlp_dims d;
  int nl;
  layer *L;
  int nunits;
  int *first, *last; /* per unit: first and last layer that uses it */
} model;

static int usage(FILE *f) {
  fprintf(f,
          "usage: train_mlp [--config_file FILE] [flags]\n"
          "model flags:\n"
          "  --in N --hidden N --classes N --layers N   (defaults 64, 128, 10, 4; layers >= 1 Blocks)\n");
  ex_print_common_usage(f);
  return f == stderr ? 2 : 0;
}

static int parse_model(int *argc, char **argv, mlp_dims *d, bool *help) {
  int w = 1;
  for (int i = 1; i < *argc; i++) {
    int *dst = NULL;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      *help = true;
      continue;
    }
    if (!strcmp(argv[i], "--in")) dst = &d->in;
    else if (!strcmp(argv[i], "--hidden")) dst = &d->hidden;
    else if (!strcmp(argv[i], "--classes")) dst = &d->out;
    else if (!strcmp(argv[i], "--layers")) dst = &d->layers;
    if (!dst) {
      argv[w++] = argv[i];
      continue;
    }
    char *end;
    long v = i + 1 < *argc ? strtol(argv[i + 1], &end, 10) : 0;
    if (i + 1 >= *argc || *end || v < 1 || v > 65536) {
      fprintf(stderr, "%s: error: %s needs an integer in [1, 65536]\n", prog, argv[i]);
      return 2;
    }
    *dst = (int)v;
    i++;
  }
  *argc = w;
  return 0;
}

static shardrt_status add_linear(shardrt_ctx *ctx, const char *name, const char *cls, int in, int out, bool relu,
                                 layer *l) {
  int mod;
  shardrt_status rc = shardrt_add_module(ctx, name, cls, &mod);
  int64_t ws[2] = {out, in}, bs[1] = {out};
  if (rc == SHARDRT_OK) rc = shardrt_add_param(ctx, mod, "weight", 2, ws, &l->W);
  if (rc == SHARDRT_OK) rc = shardrt_add_param(ctx, mod, "bias", 1, bs, &l->b);
  l->in = in;
  l->out = out;
  l->relu = relu;
  return rc;
}

static shardrt_status build(shardrt_ctx *ctx, model *m) {
  m->nl = m->d.layers + 2;
  m->L = calloc((size_t)m->nl, sizeof *m->L);
  if (!m->L) return SHARDRT_ERR_OUT_OF_MEMORY;
  shardrt_status rc = add_linear(ctx, "input", "Linear", m->d.in, m->d.hidden, true, &m->L[0]);
  for (int i = 0; rc == SHARDRT_OK && i < m->d.layers; i++) {
    char name[32];
    snprintf(name, sizeof name, "blocks.%d", i);
    rc = add_linear(ctx, name, "Block", m->d.hidden, m->d.hidden, true, &m->L[i + 1]);
  }
  if (rc == SHARDRT_OK) rc = add_linear(ctx, "head", "Linear", m->d.hidden, m->d.out, false, &m->L[m->nl - 1]);
  return rc;
}

/* Units as intervals of layers: begin a unit at its first layer, end it
 * after its last (forward), the mirror image in backward. */
static shardrt_status map_units(shardrt_ctx *ctx, model *m) {
  m->nunits = shardrt_num_units(ctx);
  m->first = malloc(sizeof(int) * (size_t)m->nunits);
  m->last = malloc(sizeof(int) * (size_t)m->nunits);
  if (!m->first || !m->last) return SHARDRT_ERR_OUT_OF_MEMORY;
  for (int u = 0; u < m->nunits; u++) m->first[u] = m->nl, m->last[u] = -1;
  for (int i = 0; i < m->nl; i++) {
    shardrt_param_info a, b;
    shardrt_status r1 = shardrt_param_info_get(ctx, m->L[i].W, &a);
    shardrt_status r2 = shardrt_param_info_get(ctx, m->L[i].b, &b);
    if (r1 || r2) return r1 ? r1 : r2;
    if (a.unit != b.unit) return SHARDRT_ERR_INTERNAL;
    m->L[i].unit = a.unit;
    if (i < m->first[a.unit]) m->first[a.unit] = i;
    if (i > m->last[a.unit]) m->last[a.unit] = i;
  }
  return SHARDRT_OK;
}

static shardrt_status init_weights(shardrt_ctx *ctx, const model *m, uint64_t seed, bool from_root) {
  for (int i = 0; i < m->nl; i++) {
    const layer *l = &m->L[i];
    size_t nw = (size_t)l->in * l->out;
    float *w = malloc(sizeof(float) * nw), *b = calloc((size_t)l->out, sizeof(float));
    if (!w || !b) return SHARDRT_ERR_OUT_OF_MEMORY;
    float s = 1.0f / sqrtf((float)l->in);
    for (size_t k = 0; k < nw; k++) w[k] = s * ex_uniform(seed, 17, (uint64_t)i, k);
    for (int k = 0; k < l->out; k++) b[k] = 0.01f * ex_uniform(seed, 18, (uint64_t)i, (uint64_t)k);
    shardrt_status rc = from_root ? shardrt_param_set_from_root(ctx, l->W, shardrt_rank(ctx) == 0 ? w : NULL, 0)
                                  : shardrt_param_set(ctx, l->W, w);
    if (rc == SHARDRT_OK)
      rc = from_root ? shardrt_param_set_from_root(ctx, l->b, shardrt_rank(ctx) == 0 ? b : NULL, 0)
                     : shardrt_param_set(ctx, l->b, b);
    free(w);
    free(b);
    if (rc) return rc;
  }
  return SHARDRT_OK;
}

/* Sample g of step s: x ~ N(0,1); label = argmax of a fixed teacher map. */
static void make_batch(const model *m, uint64_t seed, int step, int64_t g0, int rows, float *x, int *y) {
  int I = m->d.in, C = m->d.out;
  for (int r = 0; r < rows; r++) {
    uint64_t g = (uint64_t)(g0 + r);
    for (int k = 0; k < I; k++) x[(size_t)r * I + k] = ex_normal(seed, 1000 + (uint64_t)step, g, (uint64_t)k);
    int best = 0;
    double bv = -1e30;
    for (int c = 0; c < C; c++) {
      double v = 0;
      for (int k = 0; k < I; k++) v += x[(size_t)r * I + k] * ex_normal(seed, 7, (uint64_t)c, (uint64_t)k);
      if (v > bv) bv = v, best = c;
    }
    y[r] = best;
  }
}

typedef struct scratch {
  float **act;  /* act[i] = output of layer i-1 (act[0] = input) */
  float *dy, *dx;
  float *w, *b, *gw, *gb;
  int *labels;
} scratch;

static shardrt_status get_params(shardrt_ctx *ctx, const layer *l, scratch *s) {
  shardrt_view vw, vb;
  shardrt_status rc = shardrt_param_view(ctx, l->W, &vw);
  if (rc == SHARDRT_OK) rc = shardrt_param_view(ctx, l->b, &vb);
  if (rc) return rc;
  ex_view_to_f32(&vw, s->w);
  ex_view_to_f32(&vb, s->b);
  return SHARDRT_OK;
}

static shardrt_status micro_batch(shardrt_ctx *ctx, const model *m, scratch *s, int rows, float grad_scale,
                                  double *loss_sum) {
  shardrt_status rc;
  for (int i = 0; i < m->nl; i++) {
    const layer *l = &m->L[i];
    if (i == m->first[l->unit] && (rc = shardrt_begin_forward(ctx, l->unit))) return rc;
    if ((rc = get_params(ctx, l, s))) return rc;
    mlp_linear_fwd(s->act[i], s->w, s->b, s->act[i + 1], rows, l->in, l->out);
    if (l->relu) mlp_relu_fwd(s->act[i + 1], (int64_t)rows * l->out);
    if (i == m->last[l->unit] && (rc = shardrt_end_forward(ctx, l->unit))) return rc;
  }
  *loss_sum += mlp_xent(s->act[m->nl], s->labels, s->dy, rows, m->d.out, grad_scale);
  for (int i = m->nl - 1; i >= 0; i--) {
    const layer *l = &m->L[i];
    if (i == m->last[l->unit] && (rc = shardrt_begin_backward(ctx, l->unit))) return rc;
    if ((rc = get_params(ctx, l, s))) return rc;
    if (l->relu) mlp_relu_bwd(s->act[i + 1], s->dy, (int64_t)rows * l->out);
    memset(s->gw, 0, sizeof(float) * (size_t)l->in * l->out);
    memset(s->gb, 0, sizeof(float) * (size_t)l->out);
    mlp_linear_bwd(s->act[i], s->w, s->dy, i ? s->dx : NULL, s->gw, s->gb, rows, l->in, l->out);
    shardrt_view gw, gb;
    if ((rc = shardrt_grad_view(ctx, l->W, &gw)) || (rc = shardrt_grad_view(ctx, l->b, &gb))) return rc;
    ex_view_add_f32(&gw, s->gw);
    ex_view_add_f32(&gb, s->gb);
    if (i == m->first[l->unit] && (rc = shardrt_end_backward(ctx, l->unit))) return rc;
    float *t = s->dy;
    s->dy = s->dx;
    s->dx = t;
  }
  return SHARDRT_OK;
}

int main(int argc, char **argv) {
  shardrt_plan plan;
  shardrt_status prc = shardrt_plan_from_args(&argc, argv, &plan);
  if (prc != SHARDRT_OK) {
    fprintf(stderr, "%s: error: %s\n", prog, shardrt_last_error());
    return 2;
  }
  ex_opts o;
  ex_opts_default(&o);
  model m = {.d = {.in = 64, .hidden = 128, .out = 10, .layers = 4}};
  bool help = false;
  if (ex_parse_common(&argc, argv, &o) || parse_model(&argc, argv, &m.d, &help)) return 2;
  if (help) return usage(stdout);
  if (ex_reject_leftovers(argc, argv, prog)) return usage(stderr);

  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = o.device;
  cp.comm = o.comm;
  cp.plan = &plan;
  shardrt_ctx *ctx = NULL;
  EX_TRY(prog, shardrt_ctx_create(&cp, &ctx));
  int world = shardrt_world_size(ctx), rank = shardrt_rank(ctx);
  const shardrt_plan *pl = shardrt_get_plan(ctx);
  int A = pl->gradient_accumulation_steps;
  int code = 0;
  if (shardrt_device(ctx) != SHARDRT_DEVICE_CPU) {
    fprintf(stderr, "%s: error: train_mlp computes on the host; run it with --device cpu (the GPU trainer is "
                    "train_gpt)\n", prog);
    shardrt_ctx_destroy(ctx);
    return 2;
  }
  if (o.global_batch % (A * world) != 0) {
    if (rank == 0)
      fprintf(stderr,
              "%s: error: --global_batch %d must be divisible by gradient_accumulation_steps (%d) x world size (%d)\n",
              prog, o.global_batch, A, world);
    shardrt_ctx_destroy(ctx);
    return 2;
  }
  shardrt_optim_params op;
  shardrt_optim_params_default(&op);
  op.kind = strcmp(o.optimizer, "sgd") == 0 ? SHARDRT_OPTIM_SGD : SHARDRT_OPTIM_ADAMW;
  op.lr = o.lr;
  op.weight_decay = o.weight_decay;
  op.momentum = op.kind == SHARDRT_OPTIM_SGD ? o.momentum : 0;
  shardrt_status rc = shardrt_set_optimizer(ctx, &op);
  if (rc == SHARDRT_OK) rc = build(ctx, &m);
  if (rc == SHARDRT_OK) rc = shardrt_finalize(ctx);
  if (rc == SHARDRT_OK) rc = map_units(ctx, &m);
  if (rc == SHARDRT_OK) rc = init_weights(ctx, &m, o.seed, pl->sync_module_states);
  if (rc == SHARDRT_OK && o.trace_path) rc = shardrt_trace_start(ctx, o.trace_path);
  if (rc) {
    code = ex_fail(prog, "setup", rc);
    goto done;
  }
  FILE *log = NULL;
  if (o.log_path && rank == 0 && !(log = fopen(o.log_path, "w"))) {
    fprintf(stderr, "%s: error: cannot open --log '%s' for writing\n", prog, o.log_path);
    code = 1;
    goto done;
  }
  int rows = o.global_batch / (A * world);
  scratch s = {0};
  int widest = m.d.in > m.d.hidden ? m.d.in : m.d.hidden;
  widest = widest > m.d.out ? widest : m.d.out;
  s.act = calloc((size_t)m.nl + 1, sizeof *s.act);
  for (int i = 0; s.act && i <= m.nl; i++) s.act[i] = malloc(sizeof(float) * (size_t)rows * widest);
  s.dy = malloc(sizeof(float) * (size_t)rows * widest);
  s.dx = malloc(sizeof(float) * (size_t)rows * widest);
  s.w = malloc(sizeof(float) * (size_t)widest * widest);
  s.gw = malloc(sizeof(float) * (size_t)widest * widest);
  s.b = malloc(sizeof(float) * (size_t)widest);
  s.gb = malloc(sizeof(float) * (size_t)widest);
  s.labels = malloc(sizeof(int) * (size_t)rows);
  for (int step = 1; step <= o.steps && code == 0; step++) {
    double t0 = shardrt_now();
    shardrt_comm_stats_reset(ctx);
    double loss_sum = 0;
    for (int a = 0; a < A && code == 0; a++) {
      int64_t g0 = (int64_t)a * (o.global_batch / A) + (int64_t)rank * rows;
      make_batch(&m, o.seed, step, g0, rows, s.act[0], s.labels);
      float scale = (float)(shardrt_loss_scale(ctx) / o.global_batch);
      rc = shardrt_begin_micro_batch(ctx, a, A);
      if (rc == SHARDRT_OK) rc = micro_batch(ctx, &m, &s, rows, scale, &loss_sum);
      if (rc) code = ex_fail(prog, "training step", rc);
    }
    if (code) break;
    shardrt_step_info info;
    rc = shardrt_step(ctx, &info);
    if (rc == SHARDRT_OK) rc = shardrt_allreduce_sum_f64(ctx, &loss_sum, 1);
    if (rc) {
      code = ex_fail(prog, "optimizer step", rc);
      break;
    }
    ex_step_record r = {.step = step, .loss = loss_sum / o.global_batch, .step_time_s = shardrt_now() - t0,
                        .num_params = shardrt_total_numel(ctx), .tokens_per_s = -1, .grad_norm = info.grad_norm,
                        .loss_scale = info.loss_scale, .skipped = info.skipped};
    ex_log_step(log, ctx, &r);
    if (!o.quiet) ex_progress(ctx, &r);
  }
  if (log) fclose(log);
  if (code == 0 && o.weights_out && (rc = ex_write_weights(ctx, o.weights_out))) code = ex_fail(prog, "weights_out", rc);
  for (int i = 0; s.act && i <= m.nl; i++) free(s.act[i]);
  free(s.act), free(s.dy), free(s.dx), free(s.w), free(s.gw), free(s.b), free(s.gb), free(s.labels);
done:
  free(m.L), free(m.first), free(m.last);
  shardrt_ctx_destroy(ctx);
  return code;
}
