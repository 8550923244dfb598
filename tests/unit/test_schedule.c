/* SPDX-License-Identifier: Apache-2.0 */
/* The DeepSpeed JSON optimizer and LR schedule in the runtime:
 *  - the schedule math against DeepSpeed's values (deepspeed/runtime/
 *    lr_schedules.py worked by hand; "steps" is the number of updates
 *    applied before the one asked about, DeepSpeed's last_batch_iteration+1);
 *  - explicit config values win over the program's, "auto" ones take them;
 *  - a schedule lacking a step count fails at the first shardrt_step and says
 *    what to call; an fp16-skipped step does not advance the schedule; a
 *    restored step counter continues it. */
#include <math.h>
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../mpi_test_main.h"
#include "one_param_model.h"

#include "shardrt.h"
#include "src/core/schedule.h"
#include "src/core/state.h"

typedef struct sched_case {
  const char *name;
  shardrt__sched s;
  int64_t steps;
  double want;
} sched_case;

#define WLR(mn, mx, w, t) {.type = SHARDRT_SCHEDULE_WARMUP_LR, .warmup_type = t, .min_lr = mn, .max_lr = mx, .warmup = w}
#define DLR(mn, mx, w, t, T)                                                                                  \
  {.type = SHARDRT_SCHEDULE_WARMUP_DECAY_LR, .warmup_type = t, .min_lr = mn, .max_lr = mx, .warmup = w, .total = T}
#define CLR(base, wmr, cmr, w, t, T)                                                                          \
  {.type = SHARDRT_SCHEDULE_WARMUP_COSINE_LR, .warmup_type = t, .base_lr = base, .warmup_min_ratio = wmr,    \
   .cos_min_ratio = cmr, .warmup = w, .total = T}
#define LOG SHARDRT_WARMUP_LOG
#define LIN SHARDRT_WARMUP_LINEAR

static const sched_case cases[] = {
    /* WarmupLR log, 0 -> 0.01 over 10: lr = 0.01 * ln(it+1)/ln(10), it = steps-1. */
    {"warmup log, before the first scheduler step", WLR(0, 0.01, 10, LOG), 0, 0},
    {"warmup log, it 0", WLR(0, 0.01, 10, LOG), 1, 0},
    {"warmup log, it 1", WLR(0, 0.01, 10, LOG), 2, 0.0030102999566398113},  /* 0.01 log10(2) */
    {"warmup log, it 4", WLR(0, 0.01, 10, LOG), 5, 0.006989700043360187},   /* 0.01 log10(5) */
    {"warmup log, it 9", WLR(0, 0.01, 10, LOG), 10, 0.01},
    {"warmup log, held", WLR(0, 0.01, 10, LOG), 1000, 0.01},
    /* WarmupLR linear, 1e-3 -> 1e-2 over 4: lr = 1e-3 + 9e-3 * it/4. */
    {"warmup linear, before", WLR(1e-3, 1e-2, 4, LIN), 0, 1e-3},
    {"warmup linear, it 1", WLR(1e-3, 1e-2, 4, LIN), 2, 3.25e-3},
    {"warmup linear, it 3", WLR(1e-3, 1e-2, 4, LIN), 4, 7.75e-3},
    {"warmup linear, it 4", WLR(1e-3, 1e-2, 4, LIN), 5, 1e-2},
    /* warmup_num_steps 1: DeepSpeed warms up over max(2, 1) = 2 steps. */
    {"warmup of 1 is 2, it 1", WLR(1e-3, 1e-2, 1, LIN), 2, 5.5e-3},
    {"warmup of 1 is 2, it 2", WLR(1e-3, 1e-2, 1, LIN), 3, 1e-2},
    /* WarmupDecayLR linear, 0 -> 0.01 over 5, to 0 at 12: after warmup
     * lr = 0.01 * (12 - it) / (12 - 5). */
    {"decay linear, before", DLR(0, 0.01, 5, LIN, 12), 0, 0},
    {"decay linear, it 0", DLR(0, 0.01, 5, LIN, 12), 1, 0},
    {"decay linear, it 2", DLR(0, 0.01, 5, LIN, 12), 3, 0.004},
    {"decay linear, it 5 (peak)", DLR(0, 0.01, 5, LIN, 12), 6, 0.01},
    {"decay linear, it 6", DLR(0, 0.01, 5, LIN, 12), 7, 0.01 * 6 / 7},
    {"decay linear, it 11", DLR(0, 0.01, 5, LIN, 12), 12, 0.01 / 7},
    {"decay linear, it 12 (end)", DLR(0, 0.01, 5, LIN, 12), 13, 0},
    {"decay linear, past the end", DLR(0, 0.01, 5, LIN, 12), 20, 0},
    /* WarmupDecayLR log, 1e-4 -> 1e-3 over 3, to 1e-4 at 10. */
    {"decay log, it 1", DLR(1e-4, 1e-3, 3, LOG, 10), 2, 0.0006678367782143116}, /* 1e-4 + 9e-4 ln2/ln3 */
    {"decay log, it 2", DLR(1e-4, 1e-3, 3, LOG, 10), 3, 1e-3},
    {"decay log, it 3", DLR(1e-4, 1e-3, 3, LOG, 10), 4, 1e-3},
    {"decay log, it 7", DLR(1e-4, 1e-3, 3, LOG, 10), 8, 1e-4 + 9e-4 * 3 / 7},
    {"decay with total below warmup", DLR(1e-4, 1e-3, 5, LIN, 2), 6, 1e-4},
    /* WarmupCosineLR linear on base 0.01: ratio 0.1 -> 1 over 4, then
     * 0.01 + 0.99 (1 + cos(pi (it-3)/8)) / 2, clamped at the end. */
    {"cosine, before (DeepSpeed gives 0)", CLR(0.01, 0.1, 0.01, 4, LIN, 12), 0, 0},
    {"cosine, it 0", CLR(0.01, 0.1, 0.01, 4, LIN, 12), 1, 0.001},
    {"cosine, it 2", CLR(0.01, 0.1, 0.01, 4, LIN, 12), 3, 0.0055},
    {"cosine, it 4", CLR(0.01, 0.1, 0.01, 4, LIN, 12), 5, 0.00962320368593087}, /* progress 1/8 */
    {"cosine, it 7", CLR(0.01, 0.1, 0.01, 4, LIN, 12), 8, 0.00505},            /* progress 1/2 */
    {"cosine, it 11 (end)", CLR(0.01, 0.1, 0.01, 4, LIN, 12), 12, 1e-4},
    {"cosine, past the end stays", CLR(0.01, 0.1, 0.01, 4, LIN, 12), 20, 1e-4},
    {"cosine log warmup, it 2", CLR(1e-3, 0, 1e-4, 10, LOG, 100), 3, 0.0004771212547196624}, /* 1e-3 log10(3) */
};

static void test_schedule_values(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double got = shardrt__sched_lr(&cases[i].s, cases[i].steps);
    if (fabs(got - cases[i].want) > 1e-12 * fmax(fabs(cases[i].want), 1e-3))
      fail_msg("%s: lr %.17g, DeepSpeed gives %.17g", cases[i].name, got, cases[i].want);
  }
}

static void test_explicit_wins_auto_fills(void **state) {
  (void)state;
  shardrt_plan p;
  shardrt_plan_default(&p);
  shardrt_optim_params prog, eff;
  shardrt_optim_params_default(&prog);
  prog.lr = 0.5, prog.beta1 = 0.5, prog.beta2 = 0.6, prog.eps = 1e-3, prog.weight_decay = 0.3, prog.momentum = 0.7;
  /* No section: the program's optimizer as it is. */
  shardrt__optim_effective(&p, &prog, &eff);
  assert_memory_equal(&eff, &prog, sizeof eff);
  /* SGD with lr and momentum written, weight_decay "auto". */
  p.optimizer.type = SHARDRT_OPTIMIZER_SGD;
  p.optimizer.lr = 0.1, p.optimizer.momentum = 0.9, p.optimizer.weight_decay = 0.05;
  p.optimizer.given = SHARDRT_GIVEN_LR | SHARDRT_GIVEN_MOMENTUM;
  shardrt__optim_effective(&p, &prog, &eff);
  assert_int_equal(eff.kind, SHARDRT_OPTIM_SGD);
  assert_true(eff.lr == 0.1 && eff.momentum == 0.9 && eff.weight_decay == 0.3);
  /* AdamW with betas and eps written, lr and weight_decay "auto". */
  p.optimizer.type = SHARDRT_OPTIMIZER_ADAMW;
  p.optimizer.beta1 = 0.8, p.optimizer.beta2 = 0.95, p.optimizer.eps = 1e-6;
  p.optimizer.given = SHARDRT_GIVEN_BETAS | SHARDRT_GIVEN_EPS;
  prog.kind = SHARDRT_OPTIM_SGD;
  shardrt__optim_effective(&p, &prog, &eff);
  assert_int_equal(eff.kind, SHARDRT_OPTIM_ADAMW);
  assert_true(eff.lr == 0.5 && eff.beta1 == 0.8 && eff.beta2 == 0.95 && eff.eps == 1e-6 && eff.weight_decay == 0.3);

  /* The schedule: warmup_max_lr "auto" is the program's lr, an explicit
   * one wins; the cosine base is the optimizer's (effective) lr; counts
   * left to the program come from it. */
  p.scheduler.type = SHARDRT_SCHEDULE_WARMUP_DECAY_LR;
  p.scheduler.warmup_max_lr = 0.02;
  p.scheduler.given = SHARDRT_GIVEN_WARMUP_NUM_STEPS;
  shardrt__sched s;
  assert_int_equal(shardrt__sched_resolve(&p, 0.5, 0.25, 40, 0, &s), SHARDRT_OK);
  assert_true(s.max_lr == 0.5 && s.total == 40 && s.warmup == 1000 && s.min_lr == 0);
  p.scheduler.given |= SHARDRT_GIVEN_WARMUP_MAX_LR | SHARDRT_GIVEN_TOTAL_NUM_STEPS;
  p.scheduler.total_num_steps = 30;
  assert_int_equal(shardrt__sched_resolve(&p, 0.5, 0.25, 40, 0, &s), SHARDRT_OK);
  assert_true(s.max_lr == 0.02 && s.total == 30);
  p.scheduler.type = SHARDRT_SCHEDULE_WARMUP_COSINE_LR;
  assert_int_equal(shardrt__sched_resolve(&p, 0.5, 0.25, 0, 0, &s), SHARDRT_OK);
  assert_true(s.base_lr == 0.25);
  /* Needed and missing. */
  p.scheduler.given = SHARDRT_GIVEN_WARMUP_NUM_STEPS;
  assert_int_equal(shardrt__sched_resolve(&p, 0.5, 0.25, 0, 0, &s), SHARDRT_ERR_STATE);
  assert_non_null(strstr(shardrt_last_error(), "WarmupCosineLR scheduler needs total_num_steps"));
  p.scheduler.given = SHARDRT_GIVEN_TOTAL_NUM_STEPS;
  assert_int_equal(shardrt__sched_resolve(&p, 0.5, 0.25, 0, 0, &s), SHARDRT_ERR_STATE);
  assert_non_null(strstr(shardrt_last_error(), "warmup_num_steps"));
  assert_int_equal(shardrt__sched_resolve(&p, 0.5, 0.25, 0, 7, &s), SHARDRT_OK);
  assert_int_equal(s.warmup, 7);
  /* WarmupLR never needs total_num_steps. */
  p.scheduler.type = SHARDRT_SCHEDULE_WARMUP_LR;
  p.scheduler.given = SHARDRT_GIVEN_WARMUP_NUM_STEPS;
  assert_int_equal(shardrt__sched_resolve(&p, 0.5, 0.25, 0, 0, &s), SHARDRT_OK);
}

/* fp16 DeepSpeed plan with a config SGD (lr 0.1 written, no decay, no
 * momentum) and WarmupLR linear 0.1 -> 0.5 over 4 steps. */
static shardrt_ctx *make(int *pid, bool schedule_total) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.distributed_type = SHARDRT_DIST_DEEPSPEED;
  p.flavor = SHARDRT_FLAVOR_DEEPSPEED;
  p.strategy = SHARDRT_SHARD_GRAD_OP;
  p.mixed_precision = SHARDRT_MP_FP16;
  p.initial_scale_power = 4;
  p.optimizer.type = SHARDRT_OPTIMIZER_SGD;
  p.optimizer.lr = 0.1;
  p.optimizer.given = SHARDRT_GIVEN_LR | SHARDRT_GIVEN_WEIGHT_DECAY | SHARDRT_GIVEN_MOMENTUM;
  p.scheduler.type = schedule_total ? SHARDRT_SCHEDULE_WARMUP_DECAY_LR : SHARDRT_SCHEDULE_WARMUP_LR;
  p.scheduler.warmup_min_lr = 0.1;
  p.scheduler.warmup_max_lr = 0.5;
  p.scheduler.warmup_num_steps = 4;
  p.scheduler.warmup_type = SHARDRT_WARMUP_LINEAR;
  p.scheduler.given = SHARDRT_GIVEN_WARMUP_MAX_LR | SHARDRT_GIVEN_WARMUP_NUM_STEPS;
  shardrt_ctx *ctx = shardrt_test_cpu_ctx(&p, NULL);
  /* The program asks for AdamW at lr 1: the config's SGD and lr win. */
  shardrt_optim_params o;
  shardrt_optim_params_default(&o);
  o.lr = 1.0;
  assert_int_equal(shardrt_set_optimizer(ctx, &o), SHARDRT_OK);
  *pid = one_param_model(ctx, 64, 0.5f, 0.0f);
  return ctx;
}

/* Gradient 1/16 everywhere (summed over ranks), or +inf on one element. */
static shardrt_status grad_step(shardrt_ctx *ctx, int pid, bool overflow, shardrt_step_info *info) {
  float g[64];
  for (int i = 0; i < 64; i++) g[i] = (float)(0.0625 * shardrt_loss_scale(ctx) / g_world);
  if (overflow) g[3] = INFINITY;
  return one_param_step(ctx, pid, g, 64, NULL, info);
}

static void test_runtime_applies_schedule(void **state) {
  (void)state;
  int pid;
  shardrt_ctx *ctx = make(&pid, false);
  /* SGD without momentum keeps no optimizer state: the config's type sized it. */
  shardrt_mem_stats ms;
  shardrt_mem_stats_get(ctx, &ms);
  assert_int_equal(ms.optimizer, 0);
  assert_true(isnan(shardrt_last_lr(ctx)));
  double next;
  assert_int_equal(shardrt_next_lr(ctx, &next), SHARDRT_OK);
  assert_true(next == 0.1); /* warmup_min_lr before the first scheduler step */
  shardrt_step_info info;
  assert_int_equal(grad_step(ctx, pid, true, &info), SHARDRT_OK);
  assert_true(info.skipped);
  /* A skipped step does not move the schedule (DeepSpeed's engine). */
  assert_int_equal(shardrt_next_lr(ctx, &next), SHARDRT_OK);
  assert_true(next == 0.1 && shardrt_last_lr(ctx) == 0.1);
  float w[64];
  double expect = 0.5;
  /* Applied updates 0..3 run at iterations -1..2: 0.1, 0.1, 0.2, 0.3. */
  const double lrs[] = {0.1, 0.1, 0.2, 0.3, 0.4, 0.5};
  for (int k = 0; k < 6; k++) {
    assert_int_equal(grad_step(ctx, pid, false, &info), SHARDRT_OK);
    assert_false(info.skipped);
    assert_true(fabs(shardrt_last_lr(ctx) - lrs[k]) < 1e-15);
    expect -= lrs[k] * 0.0625;
    assert_int_equal(shardrt_param_get(ctx, pid, w), SHARDRT_OK);
    if (fabs(w[5] - expect) > 1e-6) fail_msg("update %d: weight %.9g, expected %.9g (lr %g)", k, w[5], expect, lrs[k]);
  }
  /* A restored step counter continues the schedule. */
  shardrt__train_state ts;
  shardrt__train_state_get(ctx, &ts);
  assert_int_equal(ts.step, 6);
  ts.step = 2;
  shardrt__train_state_set(ctx, &ts);
  assert_int_equal(shardrt_next_lr(ctx, &next), SHARDRT_OK);
  assert_true(fabs(next - 0.2) < 1e-15);
  shardrt_ctx_destroy(ctx);
}

static void test_missing_total_fails_at_step(void **state) {
  (void)state;
  int pid;
  shardrt_ctx *ctx = make(&pid, true); /* WarmupDecayLR with total_num_steps left to the program */
  double next;
  assert_int_equal(shardrt_next_lr(ctx, &next), SHARDRT_ERR_STATE);
  shardrt_step_info info;
  assert_int_equal(grad_step(ctx, pid, false, &info), SHARDRT_ERR_STATE);
  const char *msg = shardrt_last_error();
  if (!strstr(msg, "shardrt_step: ") || !strstr(msg, "WarmupDecayLR scheduler needs total_num_steps") ||
      !strstr(msg, "shardrt_set_train_steps(ctx, total_steps, warmup_steps)"))
    fail_msg("message does not say what to do: %s", msg);
  assert_int_equal(shardrt_set_train_steps(ctx, -1, 0), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_set_train_steps(ctx, 8, 0), SHARDRT_OK);
  assert_int_equal(shardrt_step(ctx, &info), SHARDRT_OK);
  assert_true(shardrt_last_lr(ctx) == 0.1);
  /* Iteration 4 of 8 after 4 warmup steps: 0.1 + 0.4 * (8 - 4) / (8 - 4). */
  shardrt__train_state ts;
  shardrt__train_state_get(ctx, &ts);
  ts.step = 5;
  shardrt__train_state_set(ctx, &ts);
  assert_int_equal(shardrt_next_lr(ctx, &next), SHARDRT_OK);
  assert_true(fabs(next - 0.5) < 1e-15);
  ts.step = 7; /* iteration 6: 0.1 + 0.4 * 2/4 */
  shardrt__train_state_set(ctx, &ts);
  assert_int_equal(shardrt_next_lr(ctx, &next), SHARDRT_OK);
  assert_true(fabs(next - 0.3) < 1e-15);
  shardrt_ctx_destroy(ctx);
}

/* Without a config section shardrt_set_lr drives the lr as before. */
static void test_no_section_program_lr(void **state) {
  (void)state;
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  shardrt_ctx *ctx = NULL;
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_OK);
  double next;
  assert_int_equal(shardrt_next_lr(ctx, &next), SHARDRT_OK);
  assert_true(next == 1e-3);
  assert_int_equal(shardrt_set_lr(ctx, 0.25), SHARDRT_OK);
  assert_int_equal(shardrt_next_lr(ctx, &next), SHARDRT_OK);
  assert_true(next == 0.25);
  assert_int_equal(shardrt_next_lr(ctx, NULL), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_set_train_steps(NULL, 1, 1), SHARDRT_ERR_INVALID_ARGUMENT);
  shardrt_ctx_destroy(ctx);
}

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schedule_values),
      cmocka_unit_test(test_explicit_wins_auto_fills),
      cmocka_unit_test(test_runtime_applies_schedule),
      cmocka_unit_test(test_missing_total_fails_at_step),
      cmocka_unit_test(test_no_section_program_lr),
  };
  SHARDRT_TEST_MPI_RUN("schedule", tests);
}
