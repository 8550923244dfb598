/* SPDX-License-Identifier: Apache-2.0 */
/* The mpi backend's ring reduce-scatter and all-reduce (src/comm/mpi_ring.c)
 * against the sums they must produce, at every world size the test runs
 * with (1 to 4: the chunk rotation and the output/scratch alternation
 * differ for 2, odd and even sizes), for counts that do not divide by the
 * world (all-reduce chunks of unequal length, empty ones), in fp32 and bf16,
 * in progress-thread and poll modes; and all ranks end an all-reduce with
 * the same bits even where the sum rounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../mpi_test_main.h"
#include "shardrt.h"
#include "src/core/ctx.h"

static shardrt_ctx *mk(void) {
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  cp.comm = "mpi";
  shardrt_ctx *ctx = NULL;
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_OK);
  return ctx;
}

static const size_t kCounts[] = {0, 1, 3, 5, 1000, 100003};

/* Small integers: every partial sum is exact in fp32 and bf16, so any
 * summation order must give exactly this. */
static float val(int rank, size_t i) { return (float)((int)((i * 31 + (size_t)rank * 7) % 23) - 11); }

static void put(void *p, shardrt_dtype dt, size_t i, float v) {
  if (dt == SHARDRT_F32) ((float *)p)[i] = v;
  else ((uint16_t *)p)[i] = shardrt_f32_to_bf16(v);
}
static float get(const void *p, shardrt_dtype dt, size_t i) {
  return dt == SHARDRT_F32 ? ((const float *)p)[i] : shardrt_bf16_to_f32(((const uint16_t *)p)[i]);
}

static void exact_sums(void) {
  shardrt_ctx *ctx = mk();
  const shardrt_dtype dts[] = {SHARDRT_F32, SHARDRT_BF16};
  for (int d = 0; d < 2; d++) {
    shardrt_dtype dt = dts[d];
    size_t es = dt == SHARDRT_F32 ? 4 : 2;
    for (size_t c = 0; c < sizeof kCounts / sizeof kCounts[0]; c++) {
      size_t n = kCounts[c];
      /* all-reduce in place over n elements */
      void *buf = malloc(n * es + 1);
      for (size_t i = 0; i < n; i++) put(buf, dt, i, val(g_rank, i));
      shardrt__req *req = NULL;
      assert_int_equal(ctx->comm.i->all_reduce(ctx->comm.self, SHARDRT__GROUP_WORLD, buf, n, dt, &req), SHARDRT_OK);
      assert_int_equal(ctx->comm.i->wait(ctx->comm.self, req), SHARDRT_OK);
      for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int r = 0; r < g_world; r++) want += val(r, i);
        if (get(buf, dt, i) != want)
          fail_msg("all_reduce dt %d n %zu world %d: element %zu is %g, want %g", dt, n, g_world, i, get(buf, dt, i),
                   want);
      }
      free(buf);
      /* reduce-scatter: n per rank out of n x world */
      void *send = malloc(n * es * (size_t)g_world + 1), *recv = malloc(n * es + 1);
      for (size_t i = 0; i < n * (size_t)g_world; i++) put(send, dt, i, val(g_rank, i));
      assert_int_equal(ctx->comm.i->reduce_scatter(ctx->comm.self, SHARDRT__GROUP_WORLD, send, recv, n, dt, &req),
                       SHARDRT_OK);
      assert_int_equal(ctx->comm.i->wait(ctx->comm.self, req), SHARDRT_OK);
      for (size_t i = 0; i < n; i++) {
        size_t gi = (size_t)g_rank * n + i;
        float want = 0;
        for (int r = 0; r < g_world; r++) want += val(r, gi);
        if (get(recv, dt, i) != want)
          fail_msg("reduce_scatter dt %d n %zu world %d rank %d: element %zu is %g, want %g", dt, n, g_world, g_rank,
                   i, get(recv, dt, i), want);
      }
      /* the input is left as it was */
      for (size_t i = 0; i < n * (size_t)g_world; i++) assert_true(get(send, dt, i) == val(g_rank, i));
      free(send);
      free(recv);
    }
  }
  shardrt_ctx_destroy(ctx);
}

static void test_exact_sums_thread(void **state) { exact_sums(); }

static void test_exact_sums_poll(void **state) {
  setenv("SHARDRT_MPI_PROGRESS", "poll", 1);
  exact_sums();
  unsetenv("SHARDRT_MPI_PROGRESS");
}

/* Values whose sums round: every rank must still hold identical bits (the
 * replicas of NO_SHARD's params stay identical only then). Two reductions
 * in flight at once on one communicator exercise the tags. */
static void test_identical_bits(void **state) {
  shardrt_ctx *ctx = mk();
  size_t n = 77777;
  float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
  srand(1234 + (unsigned)g_rank);
  for (size_t i = 0; i < n; i++) {
    a[i] = (float)rand() / (float)RAND_MAX * 1e3f - 5e2f;
    b[i] = (float)rand() / (float)RAND_MAX * 1e-3f;
  }
  shardrt__req *ra = NULL, *rb = NULL;
  assert_int_equal(ctx->comm.i->all_reduce(ctx->comm.self, SHARDRT__GROUP_WORLD, a, n, SHARDRT_F32, &ra), SHARDRT_OK);
  assert_int_equal(ctx->comm.i->all_reduce(ctx->comm.self, SHARDRT__GROUP_WORLD, b, n, SHARDRT_F32, &rb), SHARDRT_OK);
  assert_int_equal(ctx->comm.i->wait(ctx->comm.self, rb), SHARDRT_OK);
  assert_int_equal(ctx->comm.i->wait(ctx->comm.self, ra), SHARDRT_OK);
  float *root_a = malloc(n * sizeof(float)), *root_b = malloc(n * sizeof(float));
  memcpy(root_a, a, n * sizeof(float));
  memcpy(root_b, b, n * sizeof(float));
  MPI_Bcast(root_a, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
  MPI_Bcast(root_b, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
  assert_memory_equal(a, root_a, n * sizeof(float));
  assert_memory_equal(b, root_b, n * sizeof(float));
  /* and they are the sums: the reference adds in rank order, the ring in
   * its own; each is within (world-1) u sum|x| of the exact sum (u = 2^-24,
   * |x| <= 500), so they differ by at most twice that. */
  for (int r = 0; r < g_world; r++) {
    srand(1234 + (unsigned)r);
    for (size_t i = 0; i < n; i++) {
      float x = (float)rand() / (float)RAND_MAX * 1e3f - 5e2f;
      (void)((float)rand() / (float)RAND_MAX);
      root_b[i] = (r == 0 ? 0 : root_b[i]) + x; /* reuse as the reference of a */
    }
  }
  for (size_t i = 0; i < n; i++) {
    double tol = 2.0 * (g_world - 1) * 500.0 * g_world * 5.9604645e-8;
    if ((double)(a[i] - root_b[i]) > tol || (double)(root_b[i] - a[i]) > tol)
      fail_msg("element %zu: %.9g vs %.9g", i, a[i], root_b[i]);
  }
  free(a);
  free(b);
  free(root_a);
  free(root_b);
  shardrt_ctx_destroy(ctx);
}

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_sums_thread),
      cmocka_unit_test(test_exact_sums_poll),
      cmocka_unit_test(test_identical_bits),
  };
  SHARDRT_TEST_MPI_RUN("mpi_ring", tests);
}
