/* SPDX-License-Identifier: Apache-2.0 */
/* The launch shape of the flat-buffer kernels (kernels/launch.h), checked on
 * the CPU: the grid is never empty and never past its cap, sizes past 2^32
 * do not overflow, and the two grid-stride loops every kernel runs (replayed
 * here thread by thread) visit each element exactly once, aligned or not,
 * whether threads loop or not. Runs everywhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "kernels/launch.h"

static void test_grid_bounds(void **state) {
  const int T = SHARDRT__K_THREADS, P = SHARDRT__K_BLOCKS_PER_SM;
  assert_int_equal(shardrt__k_grid(0, 132), 1);
  assert_int_equal(shardrt__k_grid(1, 132), 1);
  assert_int_equal(shardrt__k_grid((size_t)T, 132), 1);
  assert_int_equal(shardrt__k_grid((size_t)T + 1, 132), 2);
  assert_int_equal(shardrt__k_grid((size_t)T * 100, 132), 100);
  assert_int_equal(shardrt__k_grid((size_t)T * 132 * P, 132), 132 * P);
  assert_int_equal(shardrt__k_grid((size_t)T * 132 * P + 1, 132), 132 * P);
  assert_int_equal(shardrt__k_grid((size_t)1 << 40, 132), 132 * P); /* no unsigned overflow */
  assert_int_equal(shardrt__k_grid(SIZE_MAX, 132), 132 * P);
  assert_int_equal(shardrt__k_grid((size_t)1 << 20, 0), P); /* unknown SM count: one SM's worth */
  assert_int_equal(shardrt__k_grid((size_t)1 << 20, -3), P);
}

static void test_items(void **state) {
  const size_t big = ((size_t)1 << 33) + 7; /* elements past 2^32 */
  assert_true(shardrt__k_nvec(big, true) == big / 4);
  assert_true(shardrt__k_nvec(big, false) == 0);
  assert_true(shardrt__k_items(big, shardrt__k_nvec(big, true)) == big / 4 + 3);
  assert_true(shardrt__k_items(big, 0) == big);
  for (size_t n = 0; n < 9; n++) {
    assert_true(shardrt__k_items(n, shardrt__k_nvec(n, true)) == n / 4 + n % 4);
    assert_true(shardrt__k_items(n, shardrt__k_nvec(n, false)) == n);
  }
}

/* Replays the kernels' loops over every thread of the grid. */
static void expect_cover(size_t n, bool aligned, int sms) {
  size_t nvec = shardrt__k_nvec(n, aligned);
  unsigned grid = shardrt__k_grid(shardrt__k_items(n, nvec), sms);
  size_t stride = (size_t)grid * SHARDRT__K_THREADS;
  unsigned char *seen = calloc(n ? n : 1, 1);
  assert_non_null(seen);
  for (size_t t = 0; t < stride; t++) {
    for (size_t vi = t; vi < nvec; vi += stride)
      for (size_t k = 0; k < 4; k++) seen[4 * vi + k]++;
    for (size_t i = nvec * 4 + t; i < n; i += stride) seen[i]++;
  }
  for (size_t i = 0; i < n; i++)
    if (seen[i] != 1)
      fail_msg("n=%zu %s, %d SMs (grid %u): element %zu visited %u times", n, aligned ? "aligned" : "misaligned", sms,
               grid, i, (unsigned)seen[i]);
  free(seen);
}

static void test_cover(void **state) {
  const size_t sizes[] = {0, 1, 3, 4, 5, 255, 256, 257, 1023, 1024, 1025, 65539, 1000003, 4194309};
  const int sms[] = {1, 3, 132};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (size_t k = 0; k < sizeof sms / sizeof sms[0]; k++)
      for (int a = 0; a < 2; a++) expect_cover(sizes[s], a, sms[k]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grid_bounds),
      cmocka_unit_test(test_items),
      cmocka_unit_test(test_cover),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
