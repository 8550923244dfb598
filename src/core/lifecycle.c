/* SPDX-License-Identifier: Apache-2.0 */
/* The unit lifecycle: gather before use, prefetch the next unit, hand out
 * views, reduce gradients after backward (overlapped with the next unit's
 * backward), release what the strategy does not keep. */
#include <string.h>

#include "src/core/ctx.h"
#include "src/core/trace.h"
#include "src/strategy/strategy.h"

/* Gathered elements in flight or held, against stage3_max_live_parameters. */
static int64_t live_elems(const shardrt_ctx *ctx) {
  int64_t n = 0;
  for (int i = 0; i < ctx->nunits; i++)
    if (!ctx->units[i].full_alias && ctx->units[i].full.p) n += ctx->units[i].padded;
  return n;
}

static shardrt_status start_gather(shardrt_ctx *ctx, shardrt__unit *u) {
  if (u->full_valid || u->gather_req) return SHARDRT_OK;
  SHARDRT__CHECK(u->strat->gather(ctx, u));
  if (!u->gather_req) u->full_valid = true;
  return SHARDRT_OK;
}

static shardrt_status ensure_gathered(shardrt_ctx *ctx, shardrt__unit *u) {
  SHARDRT__CHECK(start_gather(ctx, u));
  if (u->gather_req) {
    SHARDRT__CHECK(shardrt__wait(ctx, &u->gather_req, SHARDRT_COLL_ALL_GATHER));
    u->full_valid = true;
  }
  return SHARDRT_OK;
}

/* The one prefetch policy. Starting at `pos` of the recorded forward order
 * and walking in direction `dir`, starts gathers: FSDP prefetches one unit;
 * the DeepSpeed flavour keeps going while the units fit in
 * stage3_prefetch_bucket_size elements. Never past the live-parameter cap. */
static shardrt_status prefetch(shardrt_ctx *ctx, int pos, int dir) {
  if (!ctx->order_frozen) return SHARDRT_OK;
  const shardrt_plan *p = &ctx->plan;
  int64_t bucket = p->flavor == SHARDRT_FLAVOR_DEEPSPEED ? p->prefetch_bucket_size : 0, taken = 0;
  for (int q = pos; q >= 0 && q < ctx->norder; q += dir) {
    shardrt__unit *n = &ctx->units[ctx->order[q]];
    if (n->phase != SHARDRT__IDLE) break;
    if (!n->full_valid && !n->gather_req) {
      if (!n->full_alias && live_elems(ctx) + n->padded > p->max_live_parameters) break;
      SHARDRT__CHECK(start_gather(ctx, n));
    }
    taken += n->padded;
    if (taken >= bucket) break;
  }
  return SHARDRT_OK;
}

static bool forward_prefetch_on(const shardrt_plan *p) {
  return p->forward_prefetch || (p->flavor == SHARDRT_FLAVOR_DEEPSPEED && p->prefetch_bucket_size > 0);
}

/* DeepSpeed's stage3_max_reuse_distance: a unit whose next use (in backward)
 * comes within that many gathered elements stays gathered after forward.
 * The units after it are used twice before it is needed again. */
static bool keep_after_forward(const shardrt_ctx *ctx, const shardrt__unit *u) {
  const shardrt_plan *p = &ctx->plan;
  if (p->flavor != SHARDRT_FLAVOR_DEEPSPEED || !ctx->order_frozen || u->fwd_pos < 0) return false;
  int64_t distance = 0;
  for (int q = u->fwd_pos + 1; q < ctx->norder; q++) distance += 2 * ctx->units[ctx->order[q]].padded;
  return distance <= p->max_reuse_distance && live_elems(ctx) <= p->max_live_parameters;
}

/* Nudges every collective in flight (MPI moves data only inside MPI calls). */
static shardrt_status progress_all(shardrt_ctx *ctx) {
  if (!ctx->comm.i->progress) return SHARDRT_OK;
  for (int i = 0; i < ctx->nunits; i++) {
    shardrt__unit *u = &ctx->units[i];
    if (u->gather_req) SHARDRT__CHECK(ctx->comm.i->progress(ctx->comm.self, u->gather_req));
    if (u->reduce_req) SHARDRT__CHECK(ctx->comm.i->progress(ctx->comm.self, u->reduce_req));
    if (u->replica_req) SHARDRT__CHECK(ctx->comm.i->progress(ctx->comm.self, u->replica_req));
  }
  return SHARDRT_OK;
}

shardrt_status shardrt_begin_micro_batch(shardrt_ctx *ctx, int index, int count) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_begin_micro_batch: ctx is NULL");
  if (count < 1 || index < 0 || index >= count)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "shardrt_begin_micro_batch: index %d of count %d (need 0 <= index < count)", index, count);
  ctx->micro_index = index;
  ctx->micro_count = count;
  return SHARDRT_OK;
}

shardrt_status shardrt_begin_forward(shardrt_ctx *ctx, int unit) {
  SHARDRT__CHECK(shardrt__check_unit(ctx, unit, "shardrt_begin_forward"));
  shardrt__unit *u = &ctx->units[unit];
  if (u->phase != SHARDRT__IDLE)
    return shardrt__error(SHARDRT_ERR_STATE, "shardrt_begin_forward(%d '%s'): the unit is already in %s", unit,
                          u->name, u->phase == SHARDRT__FORWARD ? "forward" : "backward");
  if (!ctx->order_frozen && u->fwd_pos < 0) {
    u->fwd_pos = ctx->norder;
    ctx->order[ctx->norder++] = unit;
  }
  SHARDRT__CHECK(ensure_gathered(ctx, u));
  u->phase = SHARDRT__FORWARD;
  if (forward_prefetch_on(&ctx->plan)) SHARDRT__CHECK(prefetch(ctx, u->fwd_pos + 1, +1));
  SHARDRT__CHECK(progress_all(ctx));
  u->t_begin = shardrt__now();
  return SHARDRT_OK;
}

shardrt_status shardrt_end_forward(shardrt_ctx *ctx, int unit) {
  SHARDRT__CHECK(shardrt__check_unit(ctx, unit, "shardrt_end_forward"));
  shardrt__unit *u = &ctx->units[unit];
  if (u->phase != SHARDRT__FORWARD)
    return shardrt__error(SHARDRT_ERR_STATE, "shardrt_end_forward(%d '%s') without shardrt_begin_forward", unit,
                          u->name);
  shardrt__trace_span(ctx->trace, "forward", u->name, u->t_begin, shardrt__now(), 0);
  u->phase = SHARDRT__IDLE;
  SHARDRT__CHECK(progress_all(ctx));
  if (keep_after_forward(ctx, u)) return SHARDRT_OK;
  return u->strat->release(ctx, u, false);
}

static shardrt_status setup_grad_view(shardrt_ctx *ctx, shardrt__unit *u) {
  const shardrt_plan *p = &ctx->plan;
  shardrt_dtype cdt = p->compute_dtype;
  if (!u->gview_alias) shardrt__buf_free(ctx, &u->gview); /* left by a failed end_backward */
  u->gview.p = NULL;
  if (p->accum_mode == SHARDRT_ACCUM_NO_SYNC) {
    if (!u->accum.p) {
      /* Accumulate in the reduce dtype; reuse the grad store when it is the
       * same full buffer (DDP's footprint). */
      if (!u->shard_grads && u->grad.dt == p->reduce_dtype && u->grad.loc == SHARDRT__LOC_DEVICE) {
        u->accum = u->grad;
        u->accum_alias = true;
      } else {
        SHARDRT__CHECK(shardrt__buf_alloc(ctx, &u->accum, SHARDRT__MEM_GATHERED, SHARDRT__LOC_DEVICE,
                                          p->reduce_dtype, u->padded));
        SHARDRT__CHECK(shardrt__buf_zero(ctx, &u->accum));
        u->accum_alias = false;
      }
    }
    if (u->accum.dt == cdt) {
      u->gview = u->accum;
      u->gview_alias = true;
      return SHARDRT_OK;
    }
  }
  u->gview_alias = false;
  SHARDRT__CHECK(shardrt__buf_alloc(ctx, &u->gview, SHARDRT__MEM_GATHERED, SHARDRT__LOC_DEVICE, cdt, u->padded));
  return shardrt__buf_zero(ctx, &u->gview);
}

shardrt_status shardrt_begin_backward(shardrt_ctx *ctx, int unit) {
  SHARDRT__CHECK(shardrt__check_unit(ctx, unit, "shardrt_begin_backward"));
  shardrt__unit *u = &ctx->units[unit];
  if (u->phase != SHARDRT__IDLE)
    return shardrt__error(SHARDRT_ERR_STATE, "shardrt_begin_backward(%d '%s'): the unit is still in %s", unit,
                          u->name, u->phase == SHARDRT__FORWARD ? "forward (call shardrt_end_forward)" : "backward");
  if (!ctx->order_frozen) ctx->order_frozen = true; /* the first backward ends the recorded forward order */
  SHARDRT__CHECK(ensure_gathered(ctx, u));
  if (ctx->plan.backward_prefetch == SHARDRT_PREFETCH_BACKWARD_PRE) SHARDRT__CHECK(prefetch(ctx, u->fwd_pos - 1, -1));
  SHARDRT__CHECK(setup_grad_view(ctx, u));
  u->phase = SHARDRT__BACKWARD;
  SHARDRT__CHECK(progress_all(ctx));
  u->t_begin = shardrt__now();
  return SHARDRT_OK;
}

/* Finishes the reductions still in flight. Unless `all`, a hybrid replica
 * all-reduce is only started (shardrt__advance_reduce) and stays in flight
 * under the rest of backward; `all` completes them too (the step). */
static shardrt_status drain_reductions(shardrt_ctx *ctx, bool all) {
  for (int i = 0; i < ctx->nunits; i++) {
    shardrt__unit *o = &ctx->units[i];
    SHARDRT__CHECK(all ? shardrt__finish_reduce(ctx, o) : shardrt__advance_reduce(ctx, o));
  }
  return SHARDRT_OK;
}

shardrt_status shardrt_end_backward(shardrt_ctx *ctx, int unit) {
  SHARDRT__CHECK(shardrt__check_unit(ctx, unit, "shardrt_end_backward"));
  shardrt__unit *u = &ctx->units[unit];
  const shardrt_plan *p = &ctx->plan;
  if (u->phase != SHARDRT__BACKWARD)
    return shardrt__error(SHARDRT_ERR_STATE, "shardrt_end_backward(%d '%s') without shardrt_begin_backward", unit,
                          u->name);
  shardrt__trace_span(ctx->trace, "backward", u->name, u->t_begin, shardrt__now(), 0);
  u->phase = SHARDRT__IDLE;
  /* One reduction in flight: the previous unit's overlapped this backward;
   * finish it (and this unit's own from an earlier micro-batch) first. */
  SHARDRT__CHECK(drain_reductions(ctx, false));
  /* This unit's replica stage of an earlier micro-batch holds u->red_out. */
  SHARDRT__CHECK(shardrt__finish_reduce(ctx, u));
  shardrt__buf src = {0};
  bool reduce_now = true;
  if (p->accum_mode == SHARDRT_ACCUM_NO_SYNC) {
    if (!u->gview_alias) {
      SHARDRT__CHECK(shardrt__buf_add(ctx, &u->accum, 0, &u->gview, 0, u->padded));
      shardrt__buf_free(ctx, &u->gview);
    }
    u->gview.p = NULL;
    reduce_now = ctx->micro_index == ctx->micro_count - 1;
    if (reduce_now) {
      src = u->accum;
      memset(&u->accum, 0, sizeof u->accum);
      u->accum_alias = false;
    }
  } else if (u->gview.dt == p->reduce_dtype) {
    src = u->gview;
    memset(&u->gview, 0, sizeof u->gview);
  } else {
    shardrt_status rc = shardrt__buf_alloc(ctx, &src, SHARDRT__MEM_GATHERED, SHARDRT__LOC_DEVICE, p->reduce_dtype,
                                           u->padded);
    if (rc == SHARDRT_OK) rc = shardrt__buf_cast(ctx, &src, 0, &u->gview, 0, u->padded);
    shardrt__buf_free(ctx, &u->gview);
    if (rc != SHARDRT_OK) {
      shardrt__buf_free(ctx, &src);
      return rc;
    }
  }
  if (reduce_now) SHARDRT__CHECK(u->strat->reduce(ctx, u, &src));
  SHARDRT__CHECK(u->strat->release(ctx, u, true));
  if (p->backward_prefetch == SHARDRT_PREFETCH_BACKWARD_POST) SHARDRT__CHECK(prefetch(ctx, u->fwd_pos - 1, -1));
  return progress_all(ctx);
}

shardrt_status shardrt__finish_all_reductions(shardrt_ctx *ctx) { return drain_reductions(ctx, true); }

shardrt_status shardrt_param_view(shardrt_ctx *ctx, int pid, shardrt_view *out) {
  if (!ctx || !out || pid < 0 || pid >= ctx->nparams)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_param_view: parameter id %d out of range", pid);
  const shardrt__param *p = &ctx->params[pid];
  if (p->unit < 0) return shardrt__error(SHARDRT_ERR_STATE, "shardrt_param_view: call shardrt_finalize first");
  shardrt__unit *u = &ctx->units[p->unit];
  if (u->phase == SHARDRT__IDLE || !u->full_valid)
    return shardrt__error(SHARDRT_ERR_STATE,
                          "shardrt_param_view('%s'): unit %d '%s' is not gathered (call shardrt_begin_forward or "
                          "shardrt_begin_backward first)",
                          p->name, p->unit, u->name);
  out->data = shardrt__at(&u->full, p->offset);
  out->dtype = u->full.dt;
  out->numel = p->numel;
  return SHARDRT_OK;
}

shardrt_status shardrt_grad_view(shardrt_ctx *ctx, int pid, shardrt_view *out) {
  if (!ctx || !out || pid < 0 || pid >= ctx->nparams)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_grad_view: parameter id %d out of range", pid);
  const shardrt__param *p = &ctx->params[pid];
  if (p->unit < 0) return shardrt__error(SHARDRT_ERR_STATE, "shardrt_grad_view: call shardrt_finalize first");
  shardrt__unit *u = &ctx->units[p->unit];
  if (u->phase != SHARDRT__BACKWARD)
    return shardrt__error(SHARDRT_ERR_STATE,
                          "shardrt_grad_view('%s'): unit %d '%s' is not in backward (call shardrt_begin_backward)",
                          p->name, p->unit, u->name);
  out->data = shardrt__at(&u->gview, p->offset);
  out->dtype = u->gview.dt;
  out->numel = p->numel;
  return SHARDRT_OK;
}
