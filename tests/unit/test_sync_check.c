/* SPDX-License-Identifier: Apache-2.0 */
/* SHARDRT_DEBUG=collectives and SHARDRT_COLL_TIMEOUT_S: ranks that issue
 * different collectives get an error naming what each rank was doing
 * instead of a hang or silently mixed parameters; a rank that never arrives
 * gives a timeout error; and a consistent program trains exactly as without
 * the checks. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../mpi_test_main.h"
#include "shardrt.h"

#define N_UNITS 3
#define WIDTH 33 /* odd: padded shards */

/* Equal-size units: a mixed-up order moves the same byte counts, so MPI
 * itself would not notice. */
static shardrt_ctx *mk(shardrt_strategy s) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.strategy = s;
  p.wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
  p.num_wrap_classes = 1;
  strcpy(p.wrap_classes[0], "Block");
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  cp.plan = &p;
  shardrt_ctx *ctx = NULL;
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_OK);
  for (int b = 0; b < N_UNITS; b++) {
    char name[16];
    snprintf(name, sizeof name, "h.%d", b);
    int m, pid;
    assert_int_equal(shardrt_add_module(ctx, name, "Block", &m), SHARDRT_OK);
    int64_t shape[1] = {WIDTH};
    assert_int_equal(shardrt_add_param(ctx, m, "w", 1, shape, &pid), SHARDRT_OK);
  }
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_OK);
  for (int i = 0; i < N_UNITS; i++) {
    float v[WIDTH];
    for (int k = 0; k < WIDTH; k++) v[k] = 0.01f * (float)(i * WIDTH + k);
    assert_int_equal(shardrt_param_set(ctx, i, v), SHARDRT_OK);
  }
  assert_int_equal(shardrt_num_units(ctx), N_UNITS); /* unit i holds param i */
  return ctx;
}

static void debug_on(void) { setenv("SHARDRT_DEBUG", "collectives", 1); }
static void debug_off(void) {
  unsetenv("SHARDRT_DEBUG");
  unsetenv("SHARDRT_COLL_TIMEOUT_S");
}

/* One step of a toy loss: grad of unit i = its weights times (i + 1). */
static double train_step(shardrt_ctx *ctx) {
  double loss = 0;
  for (int i = 0; i < N_UNITS; i++) {
    assert_int_equal(shardrt_begin_forward(ctx, i), SHARDRT_OK);
    assert_int_equal(shardrt_end_forward(ctx, i), SHARDRT_OK);
  }
  for (int i = N_UNITS - 1; i >= 0; i--) {
    assert_int_equal(shardrt_begin_backward(ctx, i), SHARDRT_OK);
    shardrt_view w, g;
    assert_int_equal(shardrt_param_view(ctx, i, &w), SHARDRT_OK);
    assert_int_equal(shardrt_grad_view(ctx, i, &g), SHARDRT_OK);
    const float *wp = w.data;
    float *gp = g.data;
    for (int k = 0; k < WIDTH; k++) {
      gp[k] += (float)(i + 1) * wp[k] / (float)g_world;
      loss += 0.5 * (i + 1) * wp[k] * wp[k];
    }
    assert_int_equal(shardrt_end_backward(ctx, i), SHARDRT_OK);
  }
  assert_int_equal(shardrt_step(ctx, NULL), SHARDRT_OK);
  return loss;
}

static void consistent_program_trains_the_same(void **state) {
  (void)state;
  double with[4], without[4];
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 0) debug_on();
    shardrt_ctx *ctx = mk(SHARDRT_FULL_SHARD);
    debug_off();
    for (int s = 0; s < 4; s++) (pass == 0 ? with : without)[s] = train_step(ctx);
    shardrt_ctx_destroy(ctx);
  }
  for (int s = 0; s < 4; s++) assert_true(with[s] == without[s]);
  assert_true(with[3] < with[0]);
}

static void units_in_another_order_are_named(void **state) {
  (void)state;
  if (g_world < 2) skip();
  debug_on();
  shardrt_ctx *ctx = mk(SHARDRT_FULL_SHARD);
  debug_off();
  /* Rank 0 skips unit 0: its first gather is unit 1's, the others' unit 0's. */
  int first = g_rank == 0 ? 1 : 0;
  assert_int_equal(shardrt_begin_forward(ctx, first), SHARDRT_ERR_MISMATCH);
  const char *e = shardrt_last_error();
  assert_non_null(strstr(e, "rank 0: all_gather of unit 1 'h.1'"));
  assert_non_null(strstr(e, "rank 1: all_gather of unit 0 'h.0'"));
  shardrt_ctx_destroy(ctx);
}

static void a_rank_stepping_early_is_named(void **state) {
  (void)state;
  if (g_world < 2) skip();
  debug_on();
  shardrt_ctx *ctx = mk(SHARDRT_FULL_SHARD);
  debug_off();
  shardrt_status rc = g_rank == 0 ? shardrt_step(ctx, NULL) : shardrt_begin_forward(ctx, 0);
  assert_int_equal(rc, SHARDRT_ERR_MISMATCH);
  assert_non_null(strstr(shardrt_last_error(), "rank 0: shardrt_step"));
  assert_non_null(strstr(shardrt_last_error(), "rank 1: all_gather of unit 0"));
  shardrt_ctx_destroy(ctx);
}

static void program_collectives_are_checked_too(void **state) {
  (void)state;
  if (g_world < 2) skip();
  debug_on();
  shardrt_ctx *ctx = mk(SHARDRT_NO_SHARD);
  debug_off();
  double v[3] = {1, 2, 3};
  assert_int_equal(shardrt_allreduce_sum_f64(ctx, v, g_rank == 0 ? 2 : 3), SHARDRT_ERR_MISMATCH);
  assert_non_null(strstr(shardrt_last_error(), "rank 0: shardrt_allreduce_sum_f64 of 2 values"));
  shardrt_ctx_destroy(ctx);
}

static void bad_settings_are_refused(void **state) {
  (void)state;
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  shardrt_ctx *ctx = NULL;
  setenv("SHARDRT_DEBUG", "verbose", 1);
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "allowed: off, collectives"));
  unsetenv("SHARDRT_DEBUG");
  setenv("SHARDRT_COLL_TIMEOUT_S", "-3", 1);
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "SHARDRT_COLL_TIMEOUT_S=-3"));
  debug_off();
}

/* Rank 0 gathers a unit the other ranks never begin: a timeout error, not a
 * hang. `checked`: the check's own all-gather times out; else the
 * collective's wait does. Runs last: the context is left broken. */
static void missing_rank_times_out(int checked) {
  if (g_world < 2) skip();
  if (checked) debug_on();
  setenv("SHARDRT_COLL_TIMEOUT_S", "1", 1);
  shardrt_ctx *ctx = mk(SHARDRT_FULL_SHARD);
  debug_off();
  if (g_rank == 0) {
    assert_int_equal(shardrt_begin_forward(ctx, 0), SHARDRT_ERR_TIMEOUT);
    assert_non_null(strstr(shardrt_last_error(), checked ? "at collective #0 (all_gather of unit 0 'h.0'" : "did not complete in 1 s"));
    /* The context refuses further communication instead of hanging. */
    assert_int_not_equal(shardrt_begin_forward(ctx, 1), SHARDRT_OK);
  }
  shardrt_ctx_destroy(ctx);
}
static void missing_rank_times_out_in_check(void **state) {
  (void)state;
  missing_rank_times_out(1);
}
static void missing_rank_times_out_in_wait(void **state) {
  (void)state;
  missing_rank_times_out(0);
}

int main(int argc, char **argv) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(consistent_program_trains_the_same),
      cmocka_unit_test(units_in_another_order_are_named),
      cmocka_unit_test(a_rank_stepping_early_is_named),
      cmocka_unit_test(program_collectives_are_checked_too),
      cmocka_unit_test(bad_settings_are_refused),
  };
  /* The timeout cases leave a collective pending forever on rank 0, so each
   * runs as its own ctest entry (argv[1]) at the end of its process. */
  const struct CMUnitTest timeout_check[] = {cmocka_unit_test(missing_rank_times_out_in_check)};
  const struct CMUnitTest timeout_wait[] = {cmocka_unit_test(missing_rank_times_out_in_wait)};
  if (argc > 1 && strcmp(argv[1], "timeout_check") == 0) SHARDRT_TEST_MPI_RUN("sync_timeout_check", timeout_check);
  if (argc > 1 && strcmp(argv[1], "timeout_wait") == 0) SHARDRT_TEST_MPI_RUN("sync_timeout_wait", timeout_wait);
  SHARDRT_TEST_MPI_RUN("sync_check", tests);
}
