/* SPDX-License-Identifier: Apache-2.0 */
/* The optimizer step: finish reductions, global gradient norm, fp16 loss
 * scaling, clipping, the update of each rank's partition, and the refresh
 * of whatever copies of the parameters the strategy keeps. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/ctx.h"
#include "src/core/schedule.h"
#include "src/core/sync.h"
#include "src/core/trace.h"
#include "src/strategy/strategy.h"

bool shardrt__check_finite_on(void) {
  const char *v = getenv("SHARDRT_CHECK_FINITE");
  return v && strcmp(v, "1") == 0;
}

/* Squared L2 norm of the whole (unscaled-by-loss-scale) gradient. Sharded
 * grads are summed over the shard group; replicated grads are identical on
 * every rank and counted once. *check: SHARDRT_CHECK_FINITE=1 on any rank,
 * agreed with the overflow flag so every rank stops at the same step. */
static shardrt_status global_sqnorm(shardrt_ctx *ctx, double *out, bool *check) {
  double part[2] = {0.0, 0.0}; /* [0] sharded, [1] replicated */
  for (int i = 0; i < ctx->nunits; i++) {
    shardrt__unit *u = &ctx->units[i];
    shardrt__device *d = shardrt__ops(ctx, u->grad.loc);
    double s = 0.0;
    SHARDRT__CHECK(d->i->sqnorm(d->self, u->grad.p, u->grad.dt, (size_t)u->grad.n, &s));
    part[u->shard_grads ? 0 : 1] += s;
  }
  /* Blocking collectives of their own: bounded by the timeout like the rest. */
  SHARDRT__CHECK(shardrt__sync_point(ctx, SHARDRT__PT_GRAD_NORM));
  MPI_Request r;
  if (MPI_Iallreduce(MPI_IN_PLACE, &part[0], 1, MPI_DOUBLE, MPI_SUM, ctx->mpi_shard, &r) != MPI_SUCCESS)
    return shardrt__error(SHARDRT_ERR_COMM, "shardrt_step: gradient-norm all-reduce failed to start");
  SHARDRT__CHECK(shardrt__mpi_complete(ctx, &r, "the gradient-norm all-reduce of shardrt_step"));
  /* Every rank must take the same skip decision: agree on non-finite. */
  double total = part[0] + part[1];
  double flag[2] = {isfinite(total) ? 0.0 : 1.0, shardrt__check_finite_on() ? 1.0 : 0.0};
  if (MPI_Iallreduce(MPI_IN_PLACE, flag, 2, MPI_DOUBLE, MPI_MAX, ctx->mpi_world, &r) != MPI_SUCCESS)
    return shardrt__error(SHARDRT_ERR_COMM, "shardrt_step: overflow all-reduce failed to start");
  SHARDRT__CHECK(shardrt__mpi_complete(ctx, &r, "the overflow all-reduce of shardrt_step"));
  *out = flag[0] > 0 ? INFINITY : total;
  *check = flag[1] > 0;
  return SHARDRT_OK;
}

static shardrt_status update_unit(shardrt_ctx *ctx, shardrt__unit *u, float grad_scale) {
  const shardrt_optim_params *o = &ctx->opt;
  int64_t n = u->opt_n;
  /* The gradient of this rank's partition. */
  void *g = shardrt__at(&u->grad, u->shard_grads ? 0 : u->opt_off);
  /* The optimizer's parameter copy: master, or the stored params. */
  shardrt__buf *pb = u->master.p ? &u->master : &u->param;
  int64_t poff = u->master.p ? 0 : (u->shard_params ? 0 : u->opt_off);
  shardrt__device *d = shardrt__ops(ctx, pb->loc);
  if (o->kind == SHARDRT_OPTIM_ADAMW) {
    shardrt__adamw_args a;
    shardrt__adamw_args_make(&a, o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, (double)(ctx->step + 1),
                             grad_scale);
    SHARDRT__CHECK(d->i->adamw(d->self, shardrt__at(pb, poff), pb->dt, g, u->grad.dt, u->m.p, u->v.p, u->m.dt,
                               (size_t)n, &a));
  } else {
    shardrt__sgd_args a = {.lr = (float)o->lr, .momentum = (float)o->momentum,
                           .weight_decay = (float)o->weight_decay, .grad_scale = grad_scale};
    SHARDRT__CHECK(d->i->sgd(d->self, shardrt__at(pb, poff), pb->dt, g, u->grad.dt, u->m.p,
                             u->m.p ? u->m.dt : pb->dt, (size_t)n, &a));
  }
  if (u->master.p) SHARDRT__CHECK(shardrt__buf_cast(ctx, &u->param, u->shard_params ? 0 : u->opt_off, &u->master, 0, n));
  return u->strat->after_update(ctx, u);
}

static void update_loss_scale(shardrt_ctx *ctx, bool overflow) {
  const shardrt_plan *p = &ctx->plan;
  if (!p->loss_scaling || p->loss_scale > 0) return; /* static scale */
  if (overflow) {
    ctx->good_steps = 0;
    if (--ctx->hysteresis_left <= 0) {
      ctx->loss_scale = fmax(ctx->loss_scale / 2.0, p->min_loss_scale);
      ctx->hysteresis_left = p->hysteresis;
    }
  } else if (++ctx->good_steps % p->loss_scale_window == 0) {
    ctx->loss_scale *= 2.0;
    ctx->hysteresis_left = p->hysteresis;
  }
}

shardrt_status shardrt_step(shardrt_ctx *ctx, shardrt_step_info *out) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_step: ctx is NULL");
  if (!ctx->finalized) return shardrt__error(SHARDRT_ERR_STATE, "shardrt_step: call shardrt_finalize first");
  for (int i = 0; i < ctx->nunits; i++)
    if (ctx->units[i].phase != SHARDRT__IDLE)
      return shardrt__error(SHARDRT_ERR_STATE, "shardrt_step: unit %d '%s' is still in %s", i, ctx->units[i].name,
                            ctx->units[i].phase == SHARDRT__FORWARD ? "forward" : "backward");
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_STEP, NULL, 0, 0, 0));
  /* The lr of this update: the config's schedule at the applied-update count
   * (DeepSpeed steps its scheduler only after applied updates), else the
   * program's or the config optimizer's. Checked before any collective. */
  double lr;
  shardrt_status lrc = shardrt__lr_for_step(ctx, ctx->step, &lr);
  if (lrc != SHARDRT_OK) return shardrt__error_wrap(lrc, "shardrt_step");
  ctx->opt.lr = lr;
  ctx->last_lr = lr;
  double t0 = shardrt__now();
  SHARDRT__CHECK(shardrt__finish_all_reductions(ctx));
  for (int i = 0; i < ctx->nunits; i++)
    if (ctx->units[i].accum.p)
      return shardrt__error(SHARDRT_ERR_STATE,
                            "shardrt_step: unit '%s' holds gradients of micro-batches not reduced yet (the last "
                            "micro-batch must be index count-1 in shardrt_begin_micro_batch)",
                            ctx->units[i].name);
  /* Set so a failed collective leaves defined values (gcc's
   * -Wmaybe-uninitialized cannot see that the error returns first). */
  double sq = 0;
  bool check_finite = false;
  SHARDRT__CHECK(global_sqnorm(ctx, &sq, &check_finite));
  double scale = ctx->loss_scale;
  bool overflow = !isfinite(sq);
  /* Without loss scaling nothing skips a non-finite gradient: the update
   * would write NaN into every weight. Under SHARDRT_CHECK_FINITE=1 the step
   * refuses it first (the weights and moments stay as they were). */
  if (overflow && check_finite && !ctx->plan.loss_scaling)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "shardrt_step: step %lld: the gradient holds NaN or Inf (on some rank; its global norm is "
                          "not finite) and no loss scaling skips it; the update was not applied "
                          "(SHARDRT_CHECK_FINITE=1 stops here)",
                          (long long)ctx->step + 1);
  double norm = overflow ? INFINITY : sqrt(sq) / scale;
  if (out) {
    out->grad_norm = norm;
    out->loss_scale = scale;
    out->skipped = overflow && ctx->plan.loss_scaling;
  }
  if (!(overflow && ctx->plan.loss_scaling)) {
    double clip = 1.0;
    if (ctx->plan.gradient_clipping > 0 && norm > ctx->plan.gradient_clipping)
      clip = ctx->plan.gradient_clipping / (norm + 1e-6);
    float grad_scale = (float)(clip / scale);
    for (int i = 0; i < ctx->nunits; i++) SHARDRT__CHECK(update_unit(ctx, &ctx->units[i], grad_scale));
    ctx->step++;
  }
  update_loss_scale(ctx, overflow);
  for (int i = 0; i < ctx->nunits; i++) SHARDRT__CHECK(shardrt__buf_zero(ctx, &ctx->units[i].grad));
  SHARDRT__CHECK(ctx->dev.i->sync(ctx->dev.self));
  ctx->micro_index = 0;
  ctx->micro_count = 1;
  shardrt__trace_span(ctx->trace, "step", "optimizer", t0, shardrt__now(), 0);
  if (out) out->step = ctx->step;
  return SHARDRT_OK;
}
