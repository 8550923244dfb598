/* SPDX-License-Identifier: Apache-2.0 */
/* The mpi backend's progress thread: a collective started before compute
 * completes while every rank stays out of MPI (the overlap the runtime's
 * prefetch relies on), its result is right, and the mode switch
 * SHARDRT_MPI_PROGRESS is checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../mpi_test_ctx.h"
#include "../mpi_test_main.h"
#include "shardrt.h"
#include "src/core/ctx.h"

/* 16 MiB per rank: far above Open MPI's eager limit, so the transfer needs
 * progress on both sides after it is started. */
#define COUNT ((size_t)4 << 20)

static void start_gather(shardrt_ctx *ctx, float **send, float **recv, shardrt__req **req) {
  *send = malloc(COUNT * sizeof(float));
  *recv = malloc(COUNT * sizeof(float) * (size_t)g_world);
  assert_non_null(*send);
  assert_non_null(*recv);
  for (size_t i = 0; i < COUNT; i++) (*send)[i] = (float)(g_rank * 1000 + (int)(i % 997));
  assert_int_equal(ctx->comm.i->all_gather(ctx->comm.self, SHARDRT__GROUP_WORLD, *send, *recv, COUNT, SHARDRT_F32, req),
                   SHARDRT_OK);
}

static void check_gather(const float *recv) {
  for (int r = 0; r < g_world; r++)
    for (size_t i = 0; i < COUNT; i += 4099) assert_true(recv[(size_t)r * COUNT + i] == (float)(r * 1000 + (int)(i % 997)));
}

/* Waits right after the start and checks the result. */
static void gather_and_check(shardrt_ctx *ctx) {
  float *send, *recv;
  shardrt__req *req = NULL;
  start_gather(ctx, &send, &recv, &req);
  assert_int_equal(ctx->comm.i->wait(ctx->comm.self, req), SHARDRT_OK);
  check_gather(recv);
  free(send);
  free(recv);
}

static void collective_moves_while_ranks_compute(void **state) {
  (void)state;
  if (g_world < 2) skip();
  shardrt_ctx *ctx = shardrt_test_cpu_mpi_ctx();
  float *send, *recv;
  shardrt__req *req = NULL;
  start_gather(ctx, &send, &recv, &req);
  assert_non_null(req);
  /* "Compute": no MPI call on this thread until the request is done. The
   * bound only guards against a hang; without the thread it never ends. */
  struct timespec ms = {0, 1000000};
  int waited = 0;
  while (!shardrt__comm_mpi_req_done(req) && waited < 60000) {
    nanosleep(&ms, NULL);
    waited++;
  }
  assert_true(shardrt__comm_mpi_req_done(req));
  assert_int_equal(ctx->comm.i->wait(ctx->comm.self, req), SHARDRT_OK);
  check_gather(recv);
  free(send);
  free(recv);
  shardrt_ctx_destroy(ctx);
}

/* wait() right after the start takes the request back from the thread. */
static void wait_before_the_thread_finishes(void **state) {
  (void)state;
  shardrt_ctx *ctx = shardrt_test_cpu_mpi_ctx();
  for (int round = 0; round < 20; round++) gather_and_check(ctx);
  shardrt_ctx_destroy(ctx);
}

static void poll_mode_still_correct(void **state) {
  (void)state;
  setenv("SHARDRT_MPI_PROGRESS", "poll", 1);
  shardrt_ctx *ctx = shardrt_test_cpu_mpi_ctx();
  unsetenv("SHARDRT_MPI_PROGRESS");
  gather_and_check(ctx);
  shardrt_ctx_destroy(ctx);
}

static void bad_settings_are_refused(void **state) {
  (void)state;
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  cp.comm = "mpi";
  shardrt_ctx *ctx = NULL;
  setenv("SHARDRT_MPI_PROGRESS", "sometimes", 1);
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_ERR_CONFIG);
  assert_null(ctx);
  assert_non_null(strstr(shardrt_last_error(), "SHARDRT_MPI_PROGRESS=sometimes"));
  assert_non_null(strstr(shardrt_last_error(), "auto, thread, poll"));
  setenv("SHARDRT_MPI_PROGRESS", "thread", 1);
  setenv("SHARDRT_MPI_PROGRESS_US", "0", 1);
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "SHARDRT_MPI_PROGRESS_US=0"));
  unsetenv("SHARDRT_MPI_PROGRESS");
  unsetenv("SHARDRT_MPI_PROGRESS_US");
}

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(collective_moves_while_ranks_compute),
      cmocka_unit_test(wait_before_the_thread_finishes),
      cmocka_unit_test(poll_mode_still_correct),
      cmocka_unit_test(bad_settings_are_refused),
  };
  SHARDRT_TEST_MPI_RUN("mpi_progress", tests);
}
