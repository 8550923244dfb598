/* SPDX-License-Identifier: Apache-2.0 */
/* The optimizer and learning rate of each step when a DeepSpeed JSON names
 * them ("optimizer", "scheduler"), following DeepSpeed:
 *  - deepspeed/runtime/lr_schedules.py (deepspeedai/DeepSpeed, commit
 *    22779f2c): WarmupLR, WarmupDecayLR, WarmupCosineLR; warmup over
 *    max(2, warmup_num_steps) steps; before the first scheduler step
 *    (last_batch_iteration -1) WarmupLR/WarmupDecayLR give warmup_min_lr and
 *    WarmupCosineLR gives 0; the cosine progress is clamped to 1.
 *  - deepspeed/runtime/engine.py, _take_model_step: the scheduler is stepped
 *    once after each applied update and not on an fp16-overflow-skipped one.
 *    So the update made after n applied updates runs at iteration n - 1:
 *    exactly the step counter checkpoints save, so a resume continues.
 *  - "auto" entries as accelerate (accelerator.py, _prepare_deepspeed) and
 *    transformers (integrations/deepspeed.py) fill them: warmup_min_lr 0,
 *    warmup_max_lr the program's lr, warmup_num_steps and total_num_steps
 *    the program's planned counts. */
#include <math.h>

#include "src/core/ctx.h"
#include "src/core/schedule.h"

void shardrt__optim_effective(const shardrt_plan *plan, const shardrt_optim_params *prog, shardrt_optim_params *out) {
  *out = *prog;
  const shardrt_plan_optimizer *o = &plan->optimizer;
  if (o->type == SHARDRT_OPTIMIZER_PROGRAM) return;
  out->kind = o->type == SHARDRT_OPTIMIZER_SGD ? SHARDRT_OPTIM_SGD : SHARDRT_OPTIM_ADAMW;
  if (o->given & SHARDRT_GIVEN_LR) out->lr = o->lr;
  if (o->given & SHARDRT_GIVEN_BETAS) out->beta1 = o->beta1, out->beta2 = o->beta2;
  if (o->given & SHARDRT_GIVEN_EPS) out->eps = o->eps;
  if (o->given & SHARDRT_GIVEN_WEIGHT_DECAY) out->weight_decay = o->weight_decay;
  if (o->given & SHARDRT_GIVEN_MOMENTUM) out->momentum = o->momentum;
}

shardrt_status shardrt__sched_resolve(const shardrt_plan *plan, double prog_lr, double opt_lr, int64_t total_steps,
                                      int64_t warmup_steps, shardrt__sched *s) {
  const shardrt_plan_scheduler *c = &plan->scheduler;
  const char *name = shardrt_lr_schedule_name(c->type);
  *s = (shardrt__sched){.type = c->type, .warmup_type = c->warmup_type, .min_lr = c->warmup_min_lr,
                        .max_lr = (c->given & SHARDRT_GIVEN_WARMUP_MAX_LR) ? c->warmup_max_lr : prog_lr,
                        .base_lr = opt_lr, .warmup = c->warmup_num_steps, .total = c->total_num_steps,
                        .warmup_min_ratio = c->warmup_min_ratio, .cos_min_ratio = c->cos_min_ratio};
  if (c->type == SHARDRT_SCHEDULE_NONE) return SHARDRT_OK;
  if (!(c->given & SHARDRT_GIVEN_WARMUP_NUM_STEPS)) {
    if (warmup_steps <= 0)
      return shardrt__error(SHARDRT_ERR_STATE,
                            "the config's %s scheduler leaves warmup_num_steps to the program (\"auto\"), which gave "
                            "none: call shardrt_set_train_steps(ctx, total_steps, warmup_steps) with warmup_steps "
                            ">= 1 before the first shardrt_step (the example trainers: --warmup_steps N), or write "
                            "a number in the JSON", name);
    s->warmup = warmup_steps;
  }
  bool needs_total = c->type == SHARDRT_SCHEDULE_WARMUP_DECAY_LR || c->type == SHARDRT_SCHEDULE_WARMUP_COSINE_LR;
  if (needs_total && !(c->given & SHARDRT_GIVEN_TOTAL_NUM_STEPS)) {
    if (total_steps <= 0)
      return shardrt__error(SHARDRT_ERR_STATE,
                            "the config's %s scheduler needs total_num_steps and leaves it to the program (\"auto\" "
                            "or absent), which gave none: call shardrt_set_train_steps(ctx, total_steps, "
                            "warmup_steps) with the planned number of optimizer steps before the first shardrt_step "
                            "(the example trainers pass --steps), or write total_num_steps in the JSON", name);
    s->total = total_steps;
  }
  return SHARDRT_OK;
}

double shardrt__sched_lr(const shardrt__sched *s, int64_t steps) {
  if (s->type == SHARDRT_SCHEDULE_NONE) return s->base_lr;
  double it = (double)(steps - 1); /* DeepSpeed's last_batch_iteration */
  if (it < 0) return s->type == SHARDRT_SCHEDULE_WARMUP_COSINE_LR ? 0.0 : s->min_lr;
  double w = (double)(s->warmup > 2 ? s->warmup : 2);
  double warm = 0; /* the warmup fraction, while it < w */
  if (it < w) warm = s->warmup_type == SHARDRT_WARMUP_LOG ? (1.0 / log(w)) * log(it + 1) : it / w;
  double total = (double)s->total;
  switch (s->type) {
    case SHARDRT_SCHEDULE_WARMUP_LR: return s->min_lr + (s->max_lr - s->min_lr) * (it < w ? warm : 1.0);
    case SHARDRT_SCHEDULE_WARMUP_DECAY_LR: {
      double gamma = it < w ? warm : fmax(0.0, (total - it) / fmax(1.0, total - w));
      return s->min_lr + (s->max_lr - s->min_lr) * gamma;
    }
    case SHARDRT_SCHEDULE_WARMUP_COSINE_LR: {
      double ratio;
      if (it < w) {
        ratio = s->warmup_min_ratio + warm * (1.0 - s->warmup_min_ratio);
      } else {
        double progress = fmin(1.0, (it - w + 1) / fmax(1.0, total - w));
        ratio = (1 + cos(M_PI * progress)) / 2;
        ratio = fmax(0.0, s->cos_min_ratio + (1.0 - s->cos_min_ratio) * ratio);
      }
      return s->base_lr * ratio;
    }
    default: return s->base_lr;
  }
}

void shardrt__optim_init(shardrt_ctx *ctx) {
  shardrt_optim_params_default(&ctx->prog_opt);
  shardrt__optim_refresh(ctx);
  ctx->last_lr = NAN;
}

void shardrt__optim_refresh(shardrt_ctx *ctx) { shardrt__optim_effective(&ctx->plan, &ctx->prog_opt, &ctx->opt); }

shardrt_status shardrt__lr_for_step(const shardrt_ctx *ctx, int64_t steps, double *lr) {
  shardrt_optim_params eff;
  shardrt__optim_effective(&ctx->plan, &ctx->prog_opt, &eff);
  shardrt__sched s;
  SHARDRT__CHECK(shardrt__sched_resolve(&ctx->plan, ctx->prog_opt.lr, eff.lr, ctx->total_steps, ctx->warmup_steps, &s));
  *lr = shardrt__sched_lr(&s, steps);
  return SHARDRT_OK;
}

/* ---- public ---- */

shardrt_status shardrt_set_train_steps(shardrt_ctx *ctx, int64_t total_steps, int64_t warmup_steps) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_set_train_steps: ctx is NULL");
  if (total_steps < 0 || warmup_steps < 0)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "shardrt_set_train_steps: total_steps %lld, warmup_steps %lld (allowed: >= 0; 0 = not "
                          "known)", (long long)total_steps, (long long)warmup_steps);
  ctx->total_steps = total_steps;
  ctx->warmup_steps = warmup_steps;
  return SHARDRT_OK;
}

double shardrt_last_lr(const shardrt_ctx *ctx) { return ctx ? ctx->last_lr : NAN; }

shardrt_status shardrt_next_lr(const shardrt_ctx *ctx, double *lr) {
  if (!ctx || !lr) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_next_lr: NULL argument");
  return shardrt__lr_for_step(ctx, ctx->step, lr);
}
