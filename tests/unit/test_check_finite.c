/* SPDX-License-Identifier: Apache-2.0 */
/* SHARDRT_CHECK_FINITE=1 (the trainers' --check_finite) at the step: a NaN
 * gradient with no loss scaling to skip it stops shardrt_step on every rank
 * at the same step, with an error naming the step, before the update touches
 * the weights; fp16 loss scaling still skips such a step instead; and
 * without the check the NaN reaches the weights (why the check exists). */
#include <math.h>
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../mpi_test_main.h"
#include "one_param_model.h"

#include "shardrt.h"

#define N 100

static shardrt_ctx *make(shardrt_strategy s, bool fp16, int *pid) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.strategy = s;
  if (fp16) {
    p.flavor = SHARDRT_FLAVOR_DEEPSPEED;
    p.mixed_precision = SHARDRT_MP_FP16;
  }
  shardrt_ctx *ctx = shardrt_test_cpu_ctx(&p, NULL);
  *pid = one_param_model(ctx, N, 0.0f, 0.01f);
  return ctx;
}

/* Forward and backward of the one unit; the gradient is small and finite,
 * or NaN at element 7 on rank `bad_rank` only (-1: nowhere). */
static shardrt_status one_step(shardrt_ctx *ctx, int pid, int bad_rank, shardrt_step_info *info) {
  float g[N];
  for (int i = 0; i < N; i++) g[i] = (float)(1e-3 * shardrt_loss_scale(ctx) / g_world);
  if (g_rank == bad_rank) g[7] = NAN;
  return one_param_step(ctx, pid, g, N, NULL, info);
}

static void nan_gradient_stops_naming_the_step(shardrt_strategy s) {
  setenv("SHARDRT_CHECK_FINITE", "1", 1);
  int pid;
  shardrt_ctx *ctx = make(s, false, &pid);
  shardrt_step_info info;
  assert_int_equal(one_step(ctx, pid, -1, &info), SHARDRT_OK);
  assert_int_equal(one_step(ctx, pid, -1, &info), SHARDRT_OK);
  float before[N], after[N];
  assert_int_equal(shardrt_param_get(ctx, pid, before), SHARDRT_OK);
  /* the NaN is on the last rank only: every rank stops at step 3 */
  assert_int_equal(one_step(ctx, pid, g_world - 1, &info), SHARDRT_ERR_INVALID_ARGUMENT);
  const char *e = shardrt_last_error();
  if (!strstr(e, "step 3:") || !strstr(e, "NaN or Inf") || !strstr(e, "SHARDRT_CHECK_FINITE"))
    fail_msg("unclear error: %s", e);
  assert_int_equal(shardrt_param_get(ctx, pid, after), SHARDRT_OK);
  assert_memory_equal(before, after, sizeof before); /* the update was not applied */
  shardrt_ctx_destroy(ctx);
  unsetenv("SHARDRT_CHECK_FINITE");
}

static void stops_no_shard(void **state) {
  (void)state;
  nan_gradient_stops_naming_the_step(SHARDRT_NO_SHARD);
}

static void stops_full_shard(void **state) {
  (void)state;
  nan_gradient_stops_naming_the_step(SHARDRT_FULL_SHARD);
}

/* Set on rank 0 only (an environment not passed to every rank): the ranks
 * agree on it with the overflow flag, so they stop together, not hang. */
static void one_rank_asking_stops_all(void **state) {
  (void)state;
  if (g_world < 2) skip();
  if (g_rank == 0) setenv("SHARDRT_CHECK_FINITE", "1", 1);
  else unsetenv("SHARDRT_CHECK_FINITE");
  int pid;
  shardrt_ctx *ctx = make(SHARDRT_FULL_SHARD, false, &pid);
  shardrt_step_info info;
  assert_int_equal(one_step(ctx, pid, 1, &info), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(shardrt_last_error(), "step 1:"));
  shardrt_ctx_destroy(ctx);
  unsetenv("SHARDRT_CHECK_FINITE");
}

/* fp16 loss scaling skips a non-finite step (test_loss_scale.c): the check
 * leaves that alone. */
static void loss_scaling_still_skips(void **state) {
  (void)state;
  setenv("SHARDRT_CHECK_FINITE", "1", 1);
  int pid;
  shardrt_ctx *ctx = make(SHARDRT_FULL_SHARD, true, &pid);
  shardrt_step_info info;
  assert_int_equal(one_step(ctx, pid, g_world - 1, &info), SHARDRT_OK);
  assert_true(info.skipped);
  shardrt_ctx_destroy(ctx);
  unsetenv("SHARDRT_CHECK_FINITE");
}

/* Without the check the step goes through and the NaN reaches the weights. */
static void unchecked_nan_reaches_the_weights(void **state) {
  (void)state;
  unsetenv("SHARDRT_CHECK_FINITE");
  int pid;
  shardrt_ctx *ctx = make(SHARDRT_NO_SHARD, false, &pid);
  shardrt_step_info info;
  assert_int_equal(one_step(ctx, pid, g_world - 1, &info), SHARDRT_OK);
  assert_false(isfinite(info.grad_norm));
  float w[N];
  assert_int_equal(shardrt_param_get(ctx, pid, w), SHARDRT_OK);
  assert_true(isnan(w[7]));
  shardrt_ctx_destroy(ctx);
}

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stops_no_shard),
      cmocka_unit_test(stops_full_shard),
      cmocka_unit_test(one_rank_asking_stops_all),
      cmocka_unit_test(loss_scaling_still_skips),
      cmocka_unit_test(unchecked_nan_reaches_the_weights),
  };
  SHARDRT_TEST_MPI_RUN("check_finite", tests);
}
