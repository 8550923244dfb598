/* SPDX-License-Identifier: Apache-2.0 */
/* train_mlp: trains an MLP classifier on deterministic synthetic data with
 * libshardrt. The global batch is the same samples at every world size
 * (each rank takes its slice; the loss is the global mean), so any world
 * size and any strategy must reproduce the same losses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/blas_kernel.h"
#include "../common/trainer.h"
#include "mlp.h"
#include "mlp_backend.h"

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
  shardrt_status rc = shardrt_set_block_classes(ctx, "Block"); /* wrapped when the config names no class */
  if (rc == SHARDRT_OK) rc = add_linear(ctx, "input", "Linear", m->d.in, m->d.hidden, true, &m->L[0]);
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

/* Activations and fp32 gradient scratch live in the backend's memory (host
 * or GPU); the batch is generated on the host and uploaded. */
typedef struct scratch {
  mlp_backend be;
  float **act; /* act[i] = output of layer i-1 (act[0] = input) */
  float *dy, *dx;
  float *w, *b, *gw, *gb; /* fp32 casts of non-fp32 views; fp32 gradients */
  int *labels;
  float *hx; /* host batch */
  int *hlabels;
  bool reported; /* the failure was already printed (backend or shape errors) */
} scratch;

static shardrt_status backend_error(scratch *s, shardrt_status rc) {
  s->reported = true;
  fprintf(stderr, "%s: error: %s backend: %s\n", prog, s->be.i->name, s->be.i->error(s->be.self));
  return rc;
}

static shardrt_status scratch_init(shardrt_ctx *ctx, const model *m, int rows, scratch *s) {
  char err[256] = "";
  int bad;
  if (shardrt_device(ctx) == SHARDRT_DEVICE_CUDA) {
#ifdef EX_HAVE_CUDA
    bad = mlp_backend_cuda_create(&s->be, shardrt_cuda_stream(ctx), err, sizeof err);
#else
    snprintf(err, sizeof err, "train_mlp was built without CUDA: use --device cpu (or rebuild with -DSHARDRT_CUDA=ON)");
    bad = -1;
#endif
  } else {
    bad = mlp_backend_cpu_create(&s->be, err, sizeof err);
  }
  if (bad) {
    fprintf(stderr, "%s: error: %s\n", prog, err);
    return SHARDRT_ERR_UNSUPPORTED;
  }
  size_t widest = (size_t)(m->d.in > m->d.hidden ? m->d.in : m->d.hidden);
  widest = widest > (size_t)m->d.out ? widest : (size_t)m->d.out;
  const size_t fr = sizeof(float) * (size_t)rows * widest;
  s->act = calloc((size_t)m->nl + 1, sizeof *s->act);
  s->hx = malloc(sizeof(float) * (size_t)rows * (size_t)m->d.in);
  s->hlabels = malloc(sizeof(int) * (size_t)rows);
  if (!s->act || !s->hx || !s->hlabels) {
    fprintf(stderr, "%s: error: out of host memory for a batch of %d rows\n", prog, rows);
    return SHARDRT_ERR_OUT_OF_MEMORY;
  }
  const mlp_backend_i *be = s->be.i;
  void *self = s->be.self;
  bad = 0;
  for (int i = 0; !bad && i <= m->nl; i++) bad = be->alloc(self, fr, (void **)&s->act[i]);
  if (!bad) bad = be->alloc(self, fr, (void **)&s->dy);
  if (!bad) bad = be->alloc(self, fr, (void **)&s->dx);
  if (!bad) bad = be->alloc(self, sizeof(float) * widest * widest, (void **)&s->w);
  if (!bad) bad = be->alloc(self, sizeof(float) * widest * widest, (void **)&s->gw);
  if (!bad) bad = be->alloc(self, sizeof(float) * widest, (void **)&s->b);
  if (!bad) bad = be->alloc(self, sizeof(float) * widest, (void **)&s->gb);
  if (!bad) bad = be->alloc(self, sizeof(int) * (size_t)rows, (void **)&s->labels);
  return bad ? backend_error(s, SHARDRT_ERR_OUT_OF_MEMORY) : SHARDRT_OK;
}

/* Releases the buffers, then the backend (before the context: the cuda
 * backend waits on the context's stream). */
static void scratch_free(const model *m, scratch *s) {
  if (s->be.i) {
    const mlp_backend_i *be = s->be.i;
    for (int i = 0; s->act && i <= m->nl; i++) be->release(s->be.self, s->act[i]);
    float *bufs[] = {s->dy, s->dx, s->w, s->gw, s->b, s->gb};
    for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++) be->release(s->be.self, bufs[k]);
    be->release(s->be.self, s->labels);
  }
  mlp_backend_destroy(&s->be);
  free(s->act), free(s->hx), free(s->hlabels);
}

/* A view must hold exactly the parameter it was asked for. */
static shardrt_status check_numel(scratch *s, const shardrt_view *v, int64_t want, const char *kind, int li) {
  if (v->numel == want) return SHARDRT_OK;
  s->reported = true;
  fprintf(stderr, "%s: error: layer %d: %s view has %lld elements, the layer needs %lld\n", prog, li, kind,
          (long long)v->numel, (long long)want);
  return SHARDRT_ERR_INTERNAL;
}

static shardrt_status get_params(shardrt_ctx *ctx, const layer *l, int li, scratch *s, const float **w,
                                 const float **b) {
  shardrt_view vw, vb;
  shardrt_status rc = shardrt_param_view(ctx, l->W, &vw);
  if (rc == SHARDRT_OK) rc = shardrt_param_view(ctx, l->b, &vb);
  if (rc == SHARDRT_OK) rc = check_numel(s, &vw, (int64_t)l->in * l->out, "weight", li);
  if (rc == SHARDRT_OK) rc = check_numel(s, &vb, l->out, "bias", li);
  if (rc) return rc;
  if (s->be.i->view_f32(s->be.self, &vw, s->w, w) || s->be.i->view_f32(s->be.self, &vb, s->b, b))
    return backend_error(s, SHARDRT_ERR_DEVICE);
  return SHARDRT_OK;
}

static shardrt_status add_grads(shardrt_ctx *ctx, const layer *l, int li, scratch *s) {
  shardrt_view gw, gb;
  shardrt_status rc;
  if ((rc = shardrt_grad_view(ctx, l->W, &gw)) || (rc = shardrt_grad_view(ctx, l->b, &gb))) return rc;
  if ((rc = check_numel(s, &gw, (int64_t)l->in * l->out, "weight grad", li)) ||
      (rc = check_numel(s, &gb, l->out, "bias grad", li)))
    return rc;
  if (s->be.i->view_add_f32(s->be.self, &gw, s->gw) || s->be.i->view_add_f32(s->be.self, &gb, s->gb))
    return backend_error(s, SHARDRT_ERR_DEVICE);
  return SHARDRT_OK;
}

static shardrt_status micro_batch(shardrt_ctx *ctx, const model *m, scratch *s, int rows, float grad_scale,
                                  double *loss_sum) {
  const mlp_backend_i *be = s->be.i;
  void *self = s->be.self;
  const float *w, *b;
  shardrt_status rc;
  if (be->upload(self, s->act[0], s->labels, s->hx, s->hlabels, rows, m->d.in, m->d.out))
    return backend_error(s, SHARDRT_ERR_INVALID_ARGUMENT);
  for (int i = 0; i < m->nl; i++) {
    const layer *l = &m->L[i];
    if (i == m->first[l->unit] && (rc = shardrt_begin_forward(ctx, l->unit))) return rc;
    if ((rc = get_params(ctx, l, i, s, &w, &b))) return rc;
    if (be->linear_fwd(self, s->act[i], w, b, s->act[i + 1], rows, l->in, l->out) ||
        (l->relu && be->relu_fwd(self, s->act[i + 1], (int64_t)rows * l->out)))
      return backend_error(s, SHARDRT_ERR_DEVICE);
    if (i == m->last[l->unit] && (rc = shardrt_end_forward(ctx, l->unit))) return rc;
  }
  if (be->xent(self, s->act[m->nl], s->labels, s->dy, rows, m->d.out, grad_scale, loss_sum))
    return backend_error(s, SHARDRT_ERR_DEVICE);
  for (int i = m->nl - 1; i >= 0; i--) {
    const layer *l = &m->L[i];
    if (i == m->last[l->unit] && (rc = shardrt_begin_backward(ctx, l->unit))) return rc;
    if ((rc = get_params(ctx, l, i, s, &w, &b))) return rc;
    if ((l->relu && be->relu_bwd(self, s->act[i + 1], s->dy, (int64_t)rows * l->out)) ||
        be->zero(self, s->gw, (int64_t)l->in * l->out) || be->zero(self, s->gb, l->out) ||
        be->linear_bwd(self, s->act[i], w, s->dy, i ? s->dx : NULL, s->gw, s->gb, rows, l->in, l->out))
      return backend_error(s, SHARDRT_ERR_DEVICE);
    if ((rc = add_grads(ctx, l, i, s))) return rc;
    if (i == m->first[l->unit] && (rc = shardrt_end_backward(ctx, l->unit))) return rc;
    float *t = s->dy;
    s->dy = s->dx;
    s->dx = t;
  }
  return SHARDRT_OK;
}

int main(int argc, char **argv) {
  /* first: it may re-execute the program with a better OpenBLAS kernel */
  ex_blas_startup(argv);
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

  shardrt_ctx *ctx = NULL;
  int code = ex_context_create(prog, &o, &plan, &ctx);
  if (code) return code;
  int world = shardrt_world_size(ctx), rank = shardrt_rank(ctx);
  const shardrt_plan *pl = shardrt_get_plan(ctx);
  int A = pl->gradient_accumulation_steps;
  shardrt_status rc = build(ctx, &m);
  if (rc == SHARDRT_OK) rc = shardrt_finalize(ctx);
  if (rc == SHARDRT_OK) rc = map_units(ctx, &m);
  if (rc == SHARDRT_OK) rc = init_weights(ctx, &m, o.seed, pl->sync_module_states);
  int first_step = 1;
  if (rc == SHARDRT_OK) rc = ex_ckpt_begin(ctx, &o, &first_step);
  if (rc == SHARDRT_OK && o.trace_path) rc = shardrt_trace_start(ctx, o.trace_path);
  if (rc) {
    code = ex_fail(prog, "setup", rc);
    goto done;
  }
  FILE *log = NULL;
  scratch s = {0};
  int rows = o.global_batch / (A * world);
  double local_bad = 0;
  if (o.log_path && rank == 0 && !(log = fopen(o.log_path, "w"))) {
    fprintf(stderr, "%s: error: cannot open --log '%s' for writing\n", prog, o.log_path);
    local_bad = 1;
  }
  if (scratch_init(ctx, &m, rows, &s)) local_bad = 1;
  /* Every rank learns whether any rank failed to set up, so none of them
   * goes on into a collective the others will never join. */
  double any_bad = local_bad;
  if ((rc = shardrt_allreduce_sum_f64(ctx, &any_bad, 1))) code = ex_fail(prog, "setup", rc);
  else if (any_bad > 0) code = 1;
  if (code == 0 && rank == 0 && !o.quiet) {
    char note[320];
    ex_blas_note(note, sizeof note);
    printf("train_mlp: %s\n", note);
  }
  for (int step = first_step; step <= o.steps && code == 0; step++) {
    double t0 = shardrt_now();
    shardrt_comm_stats_reset(ctx);
    double loss_sum = 0;
    for (int a = 0; a < A && code == 0; a++) {
      int64_t g0 = (int64_t)a * (o.global_batch / A) + (int64_t)rank * rows;
      make_batch(&m, o.seed, step, g0, rows, s.hx, s.hlabels);
      float scale = (float)(shardrt_loss_scale(ctx) / o.global_batch);
      rc = shardrt_begin_micro_batch(ctx, a, A);
      if (rc == SHARDRT_OK) rc = micro_batch(ctx, &m, &s, rows, scale, &loss_sum);
      if (rc) code = s.reported ? 1 : ex_fail(prog, "training step", rc);
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
    if ((rc = ex_ckpt_after_step(ctx, &o, step))) code = ex_fail(prog, "checkpoint", rc);
  }
  if (log) fclose(log);
  if (code == 0 && o.weights_out && (rc = ex_write_weights(ctx, o.weights_out))) code = ex_fail(prog, "weights_out", rc);
  scratch_free(&m, &s);
done:
  free(m.L), free(m.first), free(m.last);
  shardrt_ctx_destroy(ctx);
  return code;
}
