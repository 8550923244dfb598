/* SPDX-License-Identifier: Apache-2.0 */
#include "ck_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

shardrt_plan ck_plan(shardrt_strategy s, shardrt_state_dict_type sd) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.distributed_type = SHARDRT_DIST_FSDP;
  p.strategy = s;
  p.state_dict_type = sd;
  p.wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
  p.num_wrap_classes = 1;
  snprintf(p.wrap_classes[0], sizeof p.wrap_classes[0], "Block");
  p.param_persistence_threshold = 0;
  return p;
}

ck_spec ck_spec_small(void) { return (ck_spec){.blocks = 3, .rows = 9, .cols = 7, .small_extras = true}; }

static shardrt_status add(shardrt_ctx *ctx, int mod, const char *name, int ndim, int64_t a, int64_t b) {
  int64_t shape[2] = {a, b};
  int id;
  return shardrt_add_param(ctx, mod, name, ndim, shape, &id);
}

static float init_value(int p, int64_t k) { return (float)((int)((k * 11 + p * 5) % 64) - 32) / 128.0f; }

shardrt_status ck_model_create(const shardrt_plan *plan, MPI_Comm *comm, const ck_spec *spec,
                               const shardrt_optim_params *opt, shardrt_ctx **out) {
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  cp.plan = plan;
  cp.mpi_comm = comm;
  *out = NULL;
  shardrt_ctx *ctx;
  shardrt_status rc = shardrt_ctx_create(&cp, &ctx);
  if (rc) return rc;
  int mod;
  if (opt) rc = shardrt_set_optimizer(ctx, opt);
  if (!rc && spec->small_extras) {
    rc = shardrt_add_module(ctx, "embed", "Embedding", &mod);
    if (!rc) rc = add(ctx, mod, "weight", 2, 13, spec->cols);
  }
  for (int i = 0; !rc && i < spec->blocks; i++) {
    char name[32];
    snprintf(name, sizeof name, "blocks.%d", i);
    rc = shardrt_add_module(ctx, name, "Block", &mod);
    if (!rc) rc = add(ctx, mod, "weight", 2, spec->rows, spec->cols);
    if (!rc) rc = add(ctx, mod, "bias", 1, spec->rows, 0);
  }
  if (!rc && spec->small_extras) {
    rc = shardrt_add_module(ctx, "norm", "Norm", &mod);
    if (!rc) rc = add(ctx, mod, "scale", 1, 5, 0);
    if (!rc) rc = shardrt_add_module(ctx, "head", "Linear", &mod);
    if (!rc) rc = add(ctx, mod, "weight", 2, 3, 5);
    if (!rc) rc = add(ctx, mod, "bias", 1, 3, 0);
  }
  if (!rc) rc = shardrt_finalize(ctx);
  float *buf = NULL;
  for (int p = 0; !rc && p < shardrt_num_params(ctx); p++) {
    shardrt_param_info pi;
    rc = shardrt_param_info_get(ctx, p, &pi);
    float *nb = rc ? NULL : realloc(buf, sizeof(float) * (size_t)(pi.numel ? pi.numel : 1));
    if (!rc && !nb) rc = SHARDRT_ERR_OUT_OF_MEMORY;
    if (rc) break;
    buf = nb;
    for (int64_t k = 0; k < pi.numel; k++) buf[k] = init_value(p, k);
    rc = shardrt_param_set(ctx, p, buf);
  }
  free(buf);
  if (rc) {
    shardrt_ctx_destroy(ctx);
    return rc;
  }
  *out = ctx;
  return SHARDRT_OK;
}

static float synth_grad(int s, int p, int64_t k, float w) {
  return 0.5f * w + (float)((int)((s * 31 + p * 7 + k) % 17) - 8) / 64.0f;
}

shardrt_status ck_train(shardrt_ctx *ctx, int s0, int s1, double *norms) {
  int nu = shardrt_num_units(ctx), np = shardrt_num_params(ctx);
  bool adds = shardrt_rank(ctx) == 0;
  shardrt_status rc = SHARDRT_OK;
  float *w = NULL, *g = NULL;
  size_t cap = 0;
  for (int s = s0; !rc && s < s1; s++) {
    for (int u = 0; !rc && u < nu; u++) {
      rc = shardrt_begin_forward(ctx, u);
      if (!rc) rc = shardrt_end_forward(ctx, u);
    }
    for (int u = nu - 1; !rc && u >= 0; u--) {
      rc = shardrt_begin_backward(ctx, u);
      for (int p = 0; !rc && p < np; p++) {
        shardrt_param_info pi;
        rc = shardrt_param_info_get(ctx, p, &pi);
        if (rc || pi.unit != u || !adds) continue;
        shardrt_view pv, gv;
        rc = shardrt_param_view(ctx, p, &pv);
        if (!rc) rc = shardrt_grad_view(ctx, p, &gv);
        if (rc) break;
        if ((size_t)pi.numel > cap) {
          cap = (size_t)pi.numel;
          float *a = realloc(w, cap * sizeof(float)), *b = realloc(g, cap * sizeof(float));
          if (a) w = a;
          if (b) g = b;
          if (!a || !b) {
            rc = SHARDRT_ERR_OUT_OF_MEMORY;
            break;
          }
        }
        shardrt_convert(w, SHARDRT_F32, pv.data, pv.dtype, (size_t)pi.numel);
        shardrt_convert(g, SHARDRT_F32, gv.data, gv.dtype, (size_t)pi.numel);
        for (int64_t k = 0; k < pi.numel; k++) g[k] += synth_grad(s, p, k, w[k]) * (float)shardrt_loss_scale(ctx);
        shardrt_convert(gv.data, gv.dtype, g, SHARDRT_F32, (size_t)pi.numel);
      }
      if (!rc) rc = shardrt_end_backward(ctx, u);
    }
    shardrt_step_info info;
    if (!rc) rc = shardrt_step(ctx, &info);
    if (!rc && norms) norms[s - s0] = info.grad_norm;
  }
  free(w);
  free(g);
  return rc;
}

shardrt_status ck_weights(shardrt_ctx *ctx, float **out, int64_t *n) {
  *n = shardrt_total_numel(ctx);
  *out = malloc(sizeof(float) * (size_t)(*n ? *n : 1));
  if (!*out) return SHARDRT_ERR_OUT_OF_MEMORY;
  int64_t off = 0;
  for (int p = 0; p < shardrt_num_params(ctx); p++) {
    shardrt_param_info pi;
    shardrt_status rc = shardrt_param_info_get(ctx, p, &pi);
    if (!rc) rc = shardrt_param_get(ctx, p, *out + off);
    if (rc) return rc;
    off += pi.numel;
  }
  return SHARDRT_OK;
}
