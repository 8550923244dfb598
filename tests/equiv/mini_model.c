/* SPDX-License-Identifier: Apache-2.0 */
#include "mini_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "shardrt/ckpt.h"

#include "../../examples/common/trainer.h"
#include "../../examples/train_mlp/mlp.h"

void mini_cfg_default(mini_cfg *c) {
  memset(c, 0, sizeof *c);
  c->in = 12;
  c->hidden = 37; /* odd: units do not divide the world size */
  c->out = 5;
  c->layers = 4;
  c->global_batch = 16;
  c->steps = 12;
  c->seed = 99;
  shardrt_optim_params_default(&c->opt);
  c->opt.lr = 1e-2;
}

shardrt_plan mini_base_plan(shardrt_flavor fl, shardrt_strategy s, int world) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.flavor = fl;
  p.distributed_type = fl == SHARDRT_FLAVOR_FSDP ? SHARDRT_DIST_FSDP : SHARDRT_DIST_DEEPSPEED;
  p.strategy = s;
  p.wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
  p.num_wrap_classes = 1;
  strcpy(p.wrap_classes[0], "Block");
  p.param_persistence_threshold = 0;
  if (s == SHARDRT_HYBRID_SHARD || s == SHARDRT_HYBRID_SHARD_ZERO2) p.shard_group_size = world >= 2 ? world / 2 : 1;
  return p;
}

typedef struct lyr {
  int W, b, in, out, unit;
} lyr;

shardrt_status mini_train(const mini_cfg *c, const shardrt_plan *plan, MPI_Comm *comm, mini_run *out) {
  memset(out, 0, sizeof *out);
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  cp.plan = plan;
  cp.mpi_comm = comm;
  shardrt_ctx *ctx = NULL;
  shardrt_status rc = shardrt_ctx_create(&cp, &ctx);
  if (rc) return rc;
  int nl = c->layers + 2, world = shardrt_world_size(ctx), rank = shardrt_rank(ctx);
  lyr L[64];
  rc = shardrt_set_optimizer(ctx, &c->opt);
  if (!rc && (c->total_steps > 0 || c->warmup_steps > 0))
    rc = shardrt_set_train_steps(ctx, c->total_steps, c->warmup_steps);
  for (int i = 0; rc == SHARDRT_OK && i < nl; i++) {
    char name[32];
    const char *cls = (i == 0 || i == nl - 1) ? "Linear" : "Block";
    if (i == 0) snprintf(name, sizeof name, "input");
    else if (i == nl - 1) snprintf(name, sizeof name, "head");
    else snprintf(name, sizeof name, "blocks.%d", i - 1);
    L[i].in = i == 0 ? c->in : c->hidden;
    L[i].out = i == nl - 1 ? c->out : c->hidden;
    int mod;
    int64_t ws[2] = {L[i].out, L[i].in}, bs[1] = {L[i].out};
    rc = shardrt_add_module(ctx, name, cls, &mod);
    if (!rc) rc = shardrt_add_param(ctx, mod, "weight", 2, ws, &L[i].W);
    if (!rc) rc = shardrt_add_param(ctx, mod, "bias", 1, bs, &L[i].b);
  }
  if (!rc) rc = shardrt_finalize(ctx);
  int first[64], last[64];
  for (int u = 0; u < 64; u++) first[u] = 1 << 30, last[u] = -1;
  for (int i = 0; !rc && i < nl; i++) {
    shardrt_param_info info;
    rc = shardrt_param_info_get(ctx, L[i].W, &info);
    L[i].unit = info.unit;
    if (i < first[info.unit]) first[info.unit] = i;
    if (i > last[info.unit]) last[info.unit] = i;
    size_t nw = (size_t)L[i].in * L[i].out;
    float *w = malloc(nw * sizeof(float)), *b = malloc((size_t)L[i].out * sizeof(float));
    for (size_t k = 0; k < nw; k++) w[k] = ex_uniform(c->seed, 1, (uint64_t)i, k) / sqrtf((float)L[i].in);
    for (int k = 0; k < L[i].out; k++) b[k] = 0.1f * ex_uniform(c->seed, 2, (uint64_t)i, (uint64_t)k);
    if (!rc) rc = shardrt_param_set(ctx, L[i].W, w);
    if (!rc) rc = shardrt_param_set(ctx, L[i].b, b);
    free(w);
    free(b);
  }
  if (!rc && c->load_dir) rc = shardrt_load_checkpoint(ctx, c->load_dir, NULL, 0, NULL);
  int A = shardrt_get_plan(ctx)->gradient_accumulation_steps;
  int rows = c->global_batch / (A * world);
  int wide = c->hidden > c->in ? c->hidden : c->in;
  float *act[66], *dy = malloc(sizeof(float) * rows * wide * 2), *dx = malloc(sizeof(float) * rows * wide * 2);
  float *w = malloc(sizeof(float) * wide * wide), *b = malloc(sizeof(float) * wide);
  float *gw = malloc(sizeof(float) * wide * wide), *gb = malloc(sizeof(float) * wide);
  int *lab = malloc(sizeof(int) * rows);
  for (int i = 0; i <= nl; i++) act[i] = malloc(sizeof(float) * rows * wide);
  out->loss = calloc((size_t)c->steps, sizeof(double));
  out->norm = calloc((size_t)c->steps, sizeof(double));
  out->lr = calloc((size_t)c->steps, sizeof(double));
  for (int s = 0; !rc && s < c->steps; s++) {
    double lsum = 0;
    shardrt_comm_stats_reset(ctx);
    bool traced = c->trace_last_step && s == c->steps - 1;
    if (traced) rc = shardrt_trace_start(ctx, c->trace_last_step);
    for (int a = 0; !rc && a < A; a++) {
      rc = shardrt_begin_micro_batch(ctx, a, A);
      int64_t g0 = (int64_t)a * (c->global_batch / A) + (int64_t)rank * rows;
      for (int r = 0; r < rows; r++) {
        for (int k = 0; k < c->in; k++) act[0][r * c->in + k] = ex_normal(c->seed, 100 + c->first_step + s, g0 + r, k);
        /* a fixed linear teacher makes the labels learnable */
        double best = -1e30;
        for (int k2 = 0; k2 < c->out; k2++) {
          double v = 0;
          for (int k = 0; k < c->in; k++) v += act[0][r * c->in + k] * ex_normal(c->seed, 7, k2, k);
          if (v > best) best = v, lab[r] = k2;
        }
      }
      for (int i = 0; !rc && i < nl; i++) {
        shardrt_view vw, vb;
        if (i == first[L[i].unit]) rc = shardrt_begin_forward(ctx, L[i].unit);
        if (!rc) rc = shardrt_param_view(ctx, L[i].W, &vw);
        if (!rc) rc = shardrt_param_view(ctx, L[i].b, &vb);
        if (rc) break;
        ex_view_to_f32(&vw, w);
        ex_view_to_f32(&vb, b);
        mlp_linear_fwd(act[i], w, b, act[i + 1], rows, L[i].in, L[i].out);
        if (i < nl - 1) mlp_relu_fwd(act[i + 1], (int64_t)rows * L[i].out);
        if (i == last[L[i].unit]) rc = shardrt_end_forward(ctx, L[i].unit);
      }
      if (rc) break;
      lsum += mlp_xent(act[nl], lab, dy, rows, c->out, (float)(shardrt_loss_scale(ctx) / c->global_batch));
      for (int i = nl - 1; !rc && i >= 0; i--) {
        shardrt_view vw, vb, gvw, gvb;
        if (i == last[L[i].unit]) rc = shardrt_begin_backward(ctx, L[i].unit);
        if (!rc) rc = shardrt_param_view(ctx, L[i].W, &vw);
        if (!rc) rc = shardrt_param_view(ctx, L[i].b, &vb);
        if (!rc) rc = shardrt_grad_view(ctx, L[i].W, &gvw);
        if (!rc) rc = shardrt_grad_view(ctx, L[i].b, &gvb);
        if (rc) break;
        ex_view_to_f32(&vw, w);
        if (i < nl - 1) mlp_relu_bwd(act[i + 1], dy, (int64_t)rows * L[i].out);
        memset(gw, 0, sizeof(float) * L[i].in * L[i].out);
        memset(gb, 0, sizeof(float) * L[i].out);
        mlp_linear_bwd(act[i], w, dy, i ? dx : NULL, gw, gb, rows, L[i].in, L[i].out);
        ex_view_add_f32(&gvw, gw);
        ex_view_add_f32(&gvb, gb);
        if (i == first[L[i].unit]) rc = shardrt_end_backward(ctx, L[i].unit);
        float *t = dy;
        dy = dx;
        dx = t;
      }
    }
    shardrt_step_info info;
    if (!rc && c->lr_at) rc = shardrt_set_lr(ctx, c->lr_at(s, c->lr_user));
    if (!rc) rc = shardrt_step(ctx, &info);
    if (traced) {
      shardrt_status trc = shardrt_trace_stop(ctx);
      if (!rc) rc = trc;
    }
    out->lr[s] = shardrt_last_lr(ctx);
    if (!rc) rc = shardrt_allreduce_sum_f64(ctx, &lsum, 1);
    out->loss[s] = lsum / c->global_batch;
    out->norm[s] = info.grad_norm;
  }
  if (!rc && c->save_dir) rc = shardrt_save_checkpoint(ctx, c->save_dir, NULL);
  shardrt_comm_stats_get(ctx, &out->comm);
  shardrt_mem_stats_get(ctx, &out->mem);
  out->nweights = shardrt_total_numel(ctx);
  out->weights = malloc(sizeof(float) * (size_t)out->nweights);
  int64_t off = 0;
  for (int p = 0; !rc && p < shardrt_num_params(ctx); p++) {
    shardrt_param_info info;
    shardrt_param_info_get(ctx, p, &info);
    rc = shardrt_param_get(ctx, p, out->weights + off);
    off += info.numel;
  }
  out->world = world;
  out->nunits = shardrt_num_units(ctx);
  for (int u = 0; u < out->nunits; u++) {
    shardrt_unit_info ui;
    shardrt_unit_info_get(ctx, u, &ui);
    out->sum_padded += ui.padded_numel;
    out->sum_shard += ui.shard_numel;
  }
  for (int i = 0; i <= nl; i++) free(act[i]);
  free(dy), free(dx), free(w), free(b), free(gw), free(gb), free(lab);
  shardrt_ctx_destroy(ctx);
  return rc;
}

void mini_run_free(mini_run *r) {
  free(r->loss);
  free(r->norm);
  free(r->lr);
  free(r->weights);
  memset(r, 0, sizeof *r);
}
