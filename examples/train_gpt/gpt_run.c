/* SPDX-License-Identifier: Apache-2.0 */
#include "gpt_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/trainer.h"
#ifdef GPT_HAVE_CUDA
#include "gpt_cuda.h"
#endif

/* Model param ids [lo, hi) read by stage s. */
static void stage_params(const gpt_config *c, int s, int *lo, int *hi) {
  if (s == 0) {
    *lo = GPT_P_WTE;
    *hi = GPT_P_WPE + 1;
  } else if (s <= c->n_layer) {
    *lo = gpt_pid_layer(c, s - 1, (gpt_layer_param)0);
    *hi = *lo + GPT_LAYER_PARAMS_;
  } else {
    *lo = gpt_pid_lnf_w(c);
    *hi = gpt_num_params(c);
  }
}

static shardrt_status model_error(gpt_run *r, shardrt_status rc, const char *msg) {
  snprintf(r->err, sizeof r->err, "%s", msg);
  return rc;
}

shardrt_status gpt_run_register(shardrt_ctx *ctx, const gpt_registry *reg, int *rt_pid) {
  int p = 0;
  /* the transformer block: what TRANSFORMER_BASED_WRAP wraps when the config names nothing */
  shardrt_status brc = shardrt_set_block_classes(ctx, "GPT2Block");
  if (brc) return brc;
  for (int m = 0; m < reg->num_modules; m++) {
    int mid;
    shardrt_status rc = shardrt_add_module(ctx, reg->modules[m].name, reg->modules[m].module_class, &mid);
    if (rc) return rc;
    /* a module's parameters follow it in the registry */
    for (; p < reg->num_params && reg->param_module[p] == m; p++) {
      const gpt_param_desc *d = &reg->params[p];
      if ((rc = shardrt_add_param(ctx, mid, d->name, d->ndim, d->shape, &rt_pid[p]))) return rc;
    }
  }
  return SHARDRT_OK;
}

shardrt_status gpt_run_init(gpt_run *r, shardrt_ctx *ctx, const gpt_registry *reg, const int *rt_pid,
                            int B, int T, bool tf32, bool flash, bool recompute) {
  memset(r, 0, sizeof *r);
  r->ctx = ctx;
  r->reg = reg;
  r->rt_pid = (int *)rt_pid;
  r->nstages = gpt_num_stages(&reg->cfg);
  r->nunits = shardrt_num_units(ctx);
  r->cuda = shardrt_device(ctx) == SHARDRT_DEVICE_CUDA;
  r->B = B;
  r->T = T;
  const int np = reg->num_params;
  r->param_unit = calloc((size_t)np, sizeof *r->param_unit);
  r->unit_first = malloc(sizeof(int) * (size_t)r->nunits);
  r->unit_last = malloc(sizeof(int) * (size_t)r->nunits);
  r->p = calloc((size_t)np, sizeof *r->p);
  r->g = calloc((size_t)np, sizeof *r->g);
  r->pbuf = calloc((size_t)np, sizeof *r->pbuf);
  r->gbuf = calloc((size_t)np, sizeof *r->gbuf);
  if (!r->param_unit || !r->unit_first || !r->unit_last || !r->p || !r->g || !r->pbuf || !r->gbuf)
    return model_error(r, SHARDRT_ERR_OUT_OF_MEMORY, "out of host memory for the model's bookkeeping");
  for (int u = 0; u < r->nunits; u++) r->unit_first[u] = -1, r->unit_last[u] = -1;
  for (int pid = 0; pid < np; pid++) {
    shardrt_param_info info;
    shardrt_status rc = shardrt_param_info_get(ctx, rt_pid[pid], &info);
    if (rc) return rc;
    if (info.numel != reg->params[pid].numel) {
      snprintf(r->err, sizeof r->err, "runtime param '%s' has %lld elements, the model expects %lld", info.name,
               (long long)info.numel, (long long)reg->params[pid].numel);
      return SHARDRT_ERR_INTERNAL;
    }
    int s = gpt_param_stage(&reg->cfg, pid), u = info.unit;
    r->param_unit[pid] = u;
    if (r->unit_first[u] < 0 || s < r->unit_first[u]) r->unit_first[u] = s;
    if (s > r->unit_last[u]) r->unit_last[u] = s;
  }

  char err[256];
  const shardrt_dtype dt = shardrt_get_plan(ctx)->compute_dtype;
  if (!r->cuda) {
    /* fsdp_activation_checkpointing: keep each block's input, recompute
     * the rest of the block in its backward (gpt_cpu.h) */
    gpt_cpu_options co = {.recompute = recompute};
    const int hosts = shardrt_num_hosts(ctx) > 0 ? shardrt_num_hosts(ctx) : 1;
    const int world = shardrt_world_size(ctx);
    r->threads = gpt_cpu_set_threads((world + hosts - 1) / hosts, r->threads_note, sizeof r->threads_note);
    if (gpt_cpu_acts_init_ex(&r->cpu, &reg->cfg, B, T, &co, err, sizeof err))
      return model_error(r, SHARDRT_ERR_OUT_OF_MEMORY, err);
    r->act_bytes = r->cpu.bytes;
  } else {
#ifdef GPT_HAVE_CUDA
    /* bf16 and fp16 plans compute in their dtype on tensor cores
     * (gpt_cuda.h; fp16 under the plan's loss scaling, already in dloss) */
    gpt_cuda_options go;
    gpt_cuda_options_default(&go);
    go.compute = dt;
    go.tf32 = tf32 && go.compute == SHARDRT_F32;
    /* activation checkpointing: every GPU dtype, the same bits as without */
    go.recompute = recompute;
    go.flash_attention = flash && go.compute != SHARDRT_F32;
    if (gpt_cuda_create_ex(&r->gpu, &reg->cfg, B, T, shardrt_cuda_stream(ctx), &go, err, sizeof err))
      return model_error(r, SHARDRT_ERR_DEVICE, err);
#else
    (void)tf32, (void)flash, (void)recompute;
    return model_error(r, SHARDRT_ERR_UNSUPPORTED, "train_gpt was built without CUDA: use --device cpu");
#endif
  }
  /* Views in bf16/fp16 are staged through fp32 copies; fp32 views are used
   * in place (the stages read params and ADD grads, as the runtime wants). */
  if (dt != SHARDRT_F32) {
    for (int pid = 0; pid < np; pid++) {
      size_t bytes = (size_t)reg->params[pid].numel * sizeof(float);
      if (!r->cuda) {
        r->pbuf[pid] = malloc(bytes);
        r->gbuf[pid] = malloc(bytes);
        if (!r->pbuf[pid] || !r->gbuf[pid])
          return model_error(r, SHARDRT_ERR_OUT_OF_MEMORY, "out of host memory for fp32 parameter copies");
      } else {
#ifdef GPT_HAVE_CUDA
        if (gpt_cuda_alloc(r->gpu, (void **)&r->pbuf[pid], bytes) || gpt_cuda_alloc(r->gpu, (void **)&r->gbuf[pid], bytes))
          return model_error(r, SHARDRT_ERR_OUT_OF_MEMORY, gpt_cuda_error(r->gpu));
#endif
      }
    }
  }
  return SHARDRT_OK;
}

void gpt_run_free(gpt_run *r) {
  if (!r) return;
  for (int pid = 0; r->reg && pid < r->reg->num_params; pid++) {
    if (r->cuda) {
#ifdef GPT_HAVE_CUDA
      if (r->pbuf) gpt_cuda_free(r->pbuf[pid]);
      if (r->gbuf) gpt_cuda_free(r->gbuf[pid]);
#endif
    } else {
      if (r->pbuf) free(r->pbuf[pid]);
      if (r->gbuf) free(r->gbuf[pid]);
    }
  }
  gpt_cpu_acts_free(&r->cpu);
#ifdef GPT_HAVE_CUDA
  gpt_cuda_destroy(r->gpu);
#endif
  free(r->param_unit), free(r->unit_first), free(r->unit_last);
  free(r->p), free(r->g), free(r->pbuf), free(r->gbuf);
  memset(r, 0, sizeof *r);
}

shardrt_status gpt_run_set_weights(gpt_run *r, uint64_t seed, bool from_root) {
  int64_t biggest = 0;
  for (int pid = 0; pid < r->reg->num_params; pid++)
    biggest = r->reg->params[pid].numel > biggest ? r->reg->params[pid].numel : biggest;
  float *buf = malloc((size_t)biggest * sizeof *buf);
  if (!buf) return model_error(r, SHARDRT_ERR_OUT_OF_MEMORY, "out of host memory for weight init");
  shardrt_status rc = SHARDRT_OK;
  bool root = shardrt_rank(r->ctx) == 0;
  for (int pid = 0; pid < r->reg->num_params && rc == SHARDRT_OK; pid++) {
    if (!from_root || root) gpt_param_init(r->reg, pid, seed, buf);
    rc = from_root ? shardrt_param_set_from_root(r->ctx, r->rt_pid[pid], root ? buf : NULL, 0)
                   : shardrt_param_set(r->ctx, r->rt_pid[pid], buf);
  }
  free(buf);
  return rc;
}

/* Points p[] at the stage's parameters in fp32, converting when needed. */
static shardrt_status load_params(gpt_run *r, int s) {
  int lo, hi;
  stage_params(&r->reg->cfg, s, &lo, &hi);
  for (int pid = lo; pid < hi; pid++) {
    shardrt_view v;
    shardrt_status rc = shardrt_param_view(r->ctx, r->rt_pid[pid], &v);
    if (rc) return rc;
    if (!r->pbuf[pid]) {
      r->p[pid] = v.data;
    } else if (!r->cuda) {
      ex_view_to_f32(&v, r->pbuf[pid]);
      r->p[pid] = r->pbuf[pid];
    } else {
#ifdef GPT_HAVE_CUDA
      if (gpt_cuda_to_f32(r->gpu, r->pbuf[pid], v.data, v.dtype, v.numel))
        return model_error(r, SHARDRT_ERR_DEVICE, gpt_cuda_error(r->gpu));
      r->p[pid] = r->pbuf[pid];
#endif
    }
  }
  return SHARDRT_OK;
}

/* Points g[] at the stage's gradients: the views themselves (fp32) or
 * zeroed fp32 copies that flush_grads adds back. */
static shardrt_status open_grads(gpt_run *r, int s) {
  int lo, hi;
  stage_params(&r->reg->cfg, s, &lo, &hi);
  for (int pid = lo; pid < hi; pid++) {
    size_t bytes = (size_t)r->reg->params[pid].numel * sizeof(float);
    if (!r->gbuf[pid]) {
      shardrt_view v;
      shardrt_status rc = shardrt_grad_view(r->ctx, r->rt_pid[pid], &v);
      if (rc) return rc;
      r->g[pid] = v.data;
    } else if (!r->cuda) {
      memset(r->gbuf[pid], 0, bytes);
      r->g[pid] = r->gbuf[pid];
    } else {
#ifdef GPT_HAVE_CUDA
      if (gpt_cuda_memset_zero(r->gpu, r->gbuf[pid], bytes)) return model_error(r, SHARDRT_ERR_DEVICE, gpt_cuda_error(r->gpu));
      r->g[pid] = r->gbuf[pid];
#endif
    }
  }
  return SHARDRT_OK;
}

static shardrt_status flush_grads(gpt_run *r, int s) {
  int lo, hi;
  stage_params(&r->reg->cfg, s, &lo, &hi);
  for (int pid = lo; pid < hi; pid++) {
    if (!r->gbuf[pid]) continue;
    shardrt_view v;
    shardrt_status rc = shardrt_grad_view(r->ctx, r->rt_pid[pid], &v);
    if (rc) return rc;
    if (!r->cuda) {
      ex_view_add_f32(&v, r->gbuf[pid]);
    } else {
#ifdef GPT_HAVE_CUDA
      if (gpt_cuda_add_f32_into(r->gpu, v.data, v.dtype, r->gbuf[pid], v.numel))
        return model_error(r, SHARDRT_ERR_DEVICE, gpt_cuda_error(r->gpu));
#endif
    }
  }
  return SHARDRT_OK;
}

/* Opens (or closes) the units whose interval of stages starts (or ends) at
 * stage s. Forward opens at the first stage and closes after the last;
 * backward is the mirror image. */
static shardrt_status units_at(gpt_run *r, int s, bool backward, bool begin) {
  for (int k = 0; k < r->nunits; k++) {
    int u = backward ? r->nunits - 1 - k : k;
    if (r->unit_first[u] < 0) continue;
    int edge = (begin != backward) ? r->unit_first[u] : r->unit_last[u];
    if (edge != s) continue;
    shardrt_status rc = !backward ? (begin ? shardrt_begin_forward(r->ctx, u) : shardrt_end_forward(r->ctx, u))
                                  : (begin ? shardrt_begin_backward(r->ctx, u) : shardrt_end_backward(r->ctx, u));
    if (rc) return rc;
  }
  return SHARDRT_OK;
}

/* One stage of the model, forward or backward, on the context's device. */
static shardrt_status run_stage(gpt_run *r, int s, bool backward, const int *tokens, const int *targets,
                                float dloss, double *loss) {
  const float *const *p = (const float *const *)r->p;
  float *const *g = r->g;
  const int L = r->reg->cfg.n_layer;
  if (!r->cuda) {
    gpt_cpu_acts *a = &r->cpu;
    int bad = 0;
    if (!backward) {
      if (s == 0) bad = gpt_cpu_embed_forward(a, p, tokens);
      else if (s <= L) gpt_cpu_block_forward(a, p, s - 1);
      else bad = gpt_cpu_head_forward(a, p, targets, loss);
    } else {
      if (s == 0) gpt_cpu_embed_backward(a, g, tokens);
      else if (s <= L) gpt_cpu_block_backward(a, p, g, s - 1);
      else gpt_cpu_head_backward(a, p, g, targets, dloss);
    }
    return bad ? model_error(r, SHARDRT_ERR_INVALID_ARGUMENT, a->err) : SHARDRT_OK;
  }
#ifdef GPT_HAVE_CUDA
  struct gpt_cuda *m = r->gpu;
  int bad;
  if (!backward) {
    if (s == 0) bad = gpt_cuda_embed_forward(m, p);
    else if (s <= L) bad = gpt_cuda_block_forward(m, p, s - 1);
    else bad = gpt_cuda_head_forward(m, p); /* the loss is read after the backward is enqueued */
  } else {
    if (s == 0) bad = gpt_cuda_embed_backward(m, g);
    else if (s <= L) bad = gpt_cuda_block_backward(m, p, g, s - 1);
    else bad = gpt_cuda_head_backward(m, p, g, dloss);
  }
  return bad ? model_error(r, SHARDRT_ERR_DEVICE, gpt_cuda_error(m)) : SHARDRT_OK;
#else
  (void)p, (void)g, (void)L, (void)tokens, (void)targets, (void)dloss, (void)loss;
  return model_error(r, SHARDRT_ERR_UNSUPPORTED, "train_gpt was built without CUDA: use --device cpu");
#endif
}

/* Stage spans inside the runtime's unit spans ("fwd h.3", "bwd head").
 * CPU only: on the GPU the host returns before the kernels finish, so host
 * time is not compute time. The trace writes the name at once. */
static void trace_stage(gpt_run *r, int s, bool backward, double t0, double t1) {
  if (r->cuda) return;
  char name[64];
  const int L = r->reg->cfg.n_layer;
  if (s == 0) snprintf(name, sizeof name, "%s embed", backward ? "bwd" : "fwd");
  else if (s <= L) snprintf(name, sizeof name, "%s h.%d", backward ? "bwd" : "fwd", s - 1);
  else snprintf(name, sizeof name, "%s head", backward ? "bwd" : "fwd");
  shardrt_trace_span(r->ctx, name, t0, t1);
}

shardrt_status gpt_run_micro_batch(gpt_run *r, const int *tokens, const int *targets, float dloss,
                                   double *loss_sum) {
  shardrt_status rc;
  r->err[0] = '\0';
  r->stage_time_s = 0.0;
#ifdef GPT_HAVE_CUDA
  if (r->cuda && gpt_cuda_set_batch(r->gpu, tokens, targets))
    return model_error(r, SHARDRT_ERR_INVALID_ARGUMENT, gpt_cuda_error(r->gpu));
#endif
  double loss = 0.0;
  for (int s = 0; s < r->nstages; s++) {
    if ((rc = units_at(r, s, false, true)) || (rc = load_params(r, s))) return rc;
    double t0 = shardrt_now();
    if ((rc = run_stage(r, s, false, tokens, targets, dloss, &loss))) return rc;
    double t1 = shardrt_now();
    r->stage_time_s += t1 - t0;
    trace_stage(r, s, false, t0, t1);
    if ((rc = units_at(r, s, false, false))) return rc;
  }
  for (int s = r->nstages - 1; s >= 0; s--) {
    if ((rc = units_at(r, s, true, true)) || (rc = load_params(r, s)) || (rc = open_grads(r, s))) return rc;
    double t0 = shardrt_now();
    if ((rc = run_stage(r, s, true, tokens, targets, dloss, &loss))) return rc;
    double t1 = shardrt_now();
    r->stage_time_s += t1 - t0;
    trace_stage(r, s, true, t0, t1);
    if ((rc = flush_grads(r, s)) || (rc = units_at(r, s, true, false))) return rc;
  }
#ifdef GPT_HAVE_CUDA
  /* waits for this micro-batch's forward only; its backward keeps the GPU busy */
  if (r->cuda && gpt_cuda_loss_sum(r->gpu, &loss)) return model_error(r, SHARDRT_ERR_DEVICE, gpt_cuda_error(r->gpu));
#endif
  *loss_sum += loss;
  return SHARDRT_OK;
}

int gpt_run_fail(const gpt_run *r, const char *prog, const char *what, shardrt_status rc) {
  if (r && r->err[0]) {
    fprintf(stderr, "%s: error: %s: %s: %s\n", prog, what, shardrt_status_str(rc), r->err);
    return 1;
  }
  return ex_fail(prog, what, rc);
}
