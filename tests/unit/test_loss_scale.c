/* SPDX-License-Identifier: Apache-2.0 */
/* fp16 dynamic loss scaling: an overflow on any rank skips the step on every
 * rank and leaves the weights alone; `hysteresis` overflows halve the scale
 * (not below min_loss_scale); `loss_scale_window` good steps double it. */
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


static shardrt_ctx *make(shardrt_strategy s, int *pid) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.flavor = SHARDRT_FLAVOR_DEEPSPEED;
  p.strategy = s;
  p.mixed_precision = SHARDRT_MP_FP16;
  p.initial_scale_power = 10;
  p.hysteresis = 2;
  p.loss_scale_window = 3;
  p.min_loss_scale = 256;
  p.param_persistence_threshold = 0;
  shardrt_ctx *ctx = shardrt_test_cpu_ctx(&p, NULL);
  *pid = one_param_model(ctx, 100, 0.0f, 0.01f);
  return ctx;
}

/* One step whose gradient is `g` (scaled by the loss scale), or +inf at
 * element 7 on rank `bad_rank` only. */
static shardrt_step_info one_step(shardrt_ctx *ctx, int pid, int bad_rank) {
  float g[100];
  for (int i = 0; i < 100; i++) g[i] = (float)(1e-3 * shardrt_loss_scale(ctx) / g_world);
  if (g_rank == bad_rank) g[7] = INFINITY;
  shardrt_step_info info;
  shardrt_dtype dt;
  assert_int_equal(one_param_step(ctx, pid, g, 100, &dt, &info), SHARDRT_OK);
  assert_int_equal(dt, SHARDRT_F16);
  return info;
}

static void scaler_sequence(shardrt_strategy s) {
  int pid;
  shardrt_ctx *ctx = make(s, &pid);
  float before[100], after[100];
  assert_true(shardrt_loss_scale(ctx) == 1024.0);
  assert_int_equal(shardrt_param_get(ctx, pid, before), SHARDRT_OK);
  int bad = g_world - 1; /* the overflow happens on the last rank only */
  shardrt_step_info i1 = one_step(ctx, pid, bad);
  assert_true(i1.skipped);
  assert_int_equal(i1.step, 0);
  assert_int_equal(shardrt_param_get(ctx, pid, after), SHARDRT_OK);
  assert_memory_equal(before, after, sizeof before); /* skipped: untouched */
  assert_true(shardrt_loss_scale(ctx) == 1024.0);    /* hysteresis 2: first overflow tolerated */
  shardrt_step_info i2 = one_step(ctx, pid, bad);
  assert_true(i2.skipped);
  assert_true(shardrt_loss_scale(ctx) == 512.0);
  one_step(ctx, pid, bad);
  one_step(ctx, pid, bad);
  assert_true(shardrt_loss_scale(ctx) == 256.0);
  one_step(ctx, pid, bad);
  one_step(ctx, pid, bad);
  assert_true(shardrt_loss_scale(ctx) == 256.0); /* min_loss_scale */
  for (int k = 0; k < 3; k++) {
    shardrt_step_info ok = one_step(ctx, pid, -1);
    assert_false(ok.skipped);
    assert_true(fabs(ok.grad_norm - 1e-3 * 10) < 1e-4); /* unscaled: sqrt(100) * 1e-3 */
  }
  assert_true(shardrt_loss_scale(ctx) == 512.0); /* window 3: doubled */
  assert_int_equal(shardrt_param_get(ctx, pid, after), SHARDRT_OK);
  assert_true(after[50] < before[50]); /* good steps did update */
  shardrt_ctx_destroy(ctx);
}

static void test_scaler_no_shard(void **state) { scaler_sequence(SHARDRT_NO_SHARD); }
static void test_scaler_full_shard(void **state) { scaler_sequence(SHARDRT_FULL_SHARD); }

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scaler_no_shard),
      cmocka_unit_test(test_scaler_full_shard),
  };
  SHARDRT_TEST_MPI_RUN("loss_scale", tests);
}
