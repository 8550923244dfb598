/* SPDX-License-Identifier: Apache-2.0 */
/* A rank that stalls before each kind of internal blocking collective (the
 * test hook SHARDRT_TEST_STALL, src/core/sync.h) gives SHARDRT_ERR_TIMEOUT on
 * every other rank within a bounded time instead of a hang (issue #14,
 * items 3 and 11). One case per process (argv[1]): a timed-out collective
 * stays pending in MPI, so each case ends its run.
 *   grad_norm | program | state | ckpt     SHARDRT_COLL_TIMEOUT_S only
 *   setup                                  stalled in shardrt_ctx_create
 *   debug_grad_norm | debug_ckpt           with SHARDRT_DEBUG=collectives:
 *                                          the error names the stalled rank */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <time.h>

#include "ck_model.h"
#include "ck_mpi_util.h"

static int g_rank, g_world;
static const char *g_case;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void stall_case(void **state) {
  (void)state;
  if (g_world < 2) skip();
  bool debug = strncmp(g_case, "debug_", 6) == 0;
  const char *point = debug ? g_case + 6 : g_case;
  const int stalled = g_world - 1;
  char stall[64];
  snprintf(stall, sizeof stall, "%s:%d", point, stalled);
  setenv("SHARDRT_COLL_TIMEOUT_S", "1", 1);
  if (debug) setenv("SHARDRT_DEBUG", "collectives", 1);
  shardrt_plan plan = ck_plan(SHARDRT_FULL_SHARD, SHARDRT_SHARDED_STATE_DICT);
  ck_spec spec = ck_spec_small();
  shardrt_ctx *ctx;
  if (strcmp(point, "setup") == 0) {
    setenv("SHARDRT_TEST_STALL", stall, 1);
    double t0 = now();
    shardrt_status rc = ck_model_create(&plan, NULL, &spec, NULL, &ctx);
    double dt = now() - t0;
    assert_int_equal(rc, SHARDRT_ERR_TIMEOUT);
    const char *msg = shardrt_last_error();
    if (g_rank == stalled) {
      assert_non_null(strstr(msg, "SHARDRT_TEST_STALL"));
    } else {
      if (dt > 3.5) fail_msg("rank %d took %.1f s to time out", g_rank, dt);
      if (!strstr(msg, "shardrt_ctx_create")) fail_msg("the error does not name the call: %s", msg);
    }
    unsetenv("SHARDRT_TEST_STALL");
    return;
  }
  shardrt_status rc = ck_model_create(&plan, NULL, &spec, NULL, &ctx);
  if (rc) fail_msg("create: %s", shardrt_last_error());
  rc = ck_train(ctx, 0, 1, NULL); /* a healthy step first: the hook is not armed yet */
  if (rc) fail_msg("train: %s", shardrt_last_error());
  setenv("SHARDRT_TEST_STALL", stall, 1);
  char dir[4300];
  snprintf(dir, sizeof dir, "%s/ck", g_tmp);
  double t0 = now();
  const char *needle;
  if (strcmp(point, "grad_norm") == 0) {
    rc = ck_train(ctx, 1, 2, NULL);
    needle = "gradient-norm all-reduce";
  } else if (strcmp(point, "program") == 0) {
    double v[2] = {1, 2};
    rc = shardrt_allreduce_sum_f64(ctx, v, 2);
    needle = "shardrt_allreduce_sum_f64";
  } else if (strcmp(point, "state") == 0) {
    float w[63];
    rc = shardrt_param_get(ctx, 1, w);
    needle = "gather of a unit";
  } else {
    rc = shardrt_save_checkpoint(ctx, dir, NULL);
    needle = "checkpoint";
  }
  double dt = now() - t0;
  if (g_rank == stalled) {
    assert_int_equal(rc, SHARDRT_ERR_TIMEOUT);
    assert_non_null(strstr(shardrt_last_error(), "SHARDRT_TEST_STALL"));
  } else {
    if (rc != SHARDRT_ERR_TIMEOUT) fail_msg("rank %d: %s (%s), expected a timeout", g_rank, shardrt_status_str(rc), shardrt_last_error());
    /* Bounded: the 1 s limit plus scheduling on a loaded machine; the
     * stalled rank sleeps 4 s, so a wait for it would show as >= 4 s. */
    if (dt > 3.5) fail_msg("rank %d took %.1f s to time out", g_rank, dt);
    const char *msg = shardrt_last_error();
    if (debug) {
      char who[64];
      snprintf(who, sizeof who, "rank %d never arrived", stalled);
      if (!strstr(msg, who)) fail_msg("the error does not name the stalled rank: %s", msg);
    } else {
      if (!strstr(msg, needle)) fail_msg("the error does not name %s: %s", needle, msg);
      if (!strstr(msg, "Run with SHARDRT_DEBUG=collectives")) fail_msg("no hint: %s", msg);
    }
    /* The context refuses further communication instead of hanging. */
    double v = 1;
    assert_int_not_equal(shardrt_allreduce_sum_f64(ctx, &v, 1), SHARDRT_OK);
  }
  shardrt_ctx_destroy(ctx);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world);
  g_case = argc > 1 ? argv[1] : "grad_norm";
  const struct CMUnitTest tests[] = {cmocka_unit_test(stall_case)};
  return ck_mpi_run("stall", tests, 1);
}
