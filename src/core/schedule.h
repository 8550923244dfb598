/* SPDX-License-Identifier: Apache-2.0 */
/* The optimizer a step runs and its learning rate: the plan's config
 * optimizer and LR schedule (DeepSpeed JSON) over the program's values. The
 * schedule math is a pure function so it can be checked against DeepSpeed's
 * numbers without a context. */
#ifndef SHARDRT_SCHEDULE_H
#define SHARDRT_SCHEDULE_H

#include "shardrt/runtime.h"

/* The program's optimizer (prog) with every hyper-parameter the plan gives
 * explicitly put over it, and the plan's optimizer type. */
void shardrt__optim_effective(const shardrt_plan *plan, const shardrt_optim_params *prog, shardrt_optim_params *out);

/* A schedule with every value known. */
typedef struct shardrt__sched {
  shardrt_lr_schedule type;
  shardrt_warmup_type warmup_type;
  double min_lr, max_lr;        /* WarmupLR, WarmupDecayLR */
  double base_lr;               /* WarmupCosineLR: the optimizer's lr */
  int64_t warmup;               /* warmup_num_steps as given (>= 1) */
  int64_t total;                /* total_num_steps (WarmupDecayLR, WarmupCosineLR) */
  double warmup_min_ratio, cos_min_ratio;
} shardrt__sched;

/* Fills s from plan->scheduler, taking what it leaves to the program from
 * prog_lr (warmup_max_lr), opt_lr (the cosine schedule's base: the effective
 * optimizer lr), total_steps and warmup_steps (<= 0: the program gave none).
 * A value that is needed and missing is SHARDRT_ERR_STATE naming the call
 * that gives it. */
shardrt_status shardrt__sched_resolve(const shardrt_plan *plan, double prog_lr, double opt_lr, int64_t total_steps,
                                      int64_t warmup_steps, shardrt__sched *s);

/* The learning rate of the update made after `steps` applied updates. */
double shardrt__sched_lr(const shardrt__sched *s, int64_t steps);

/* ---- the context's side (schedule.c) ---- */
/* At context creation: the program's optimizer starts at the defaults. */
void shardrt__optim_init(shardrt_ctx *ctx);
/* After the program changed its optimizer or lr: recompute ctx->opt. */
void shardrt__optim_refresh(shardrt_ctx *ctx);
/* The learning rate of the update made after `steps` applied updates. */
shardrt_status shardrt__lr_for_step(const shardrt_ctx *ctx, int64_t steps, double *lr);

#endif
