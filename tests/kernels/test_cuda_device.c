/* SPDX-License-Identifier: Apache-2.0 */
/* The cuda device backend beyond its kernels: copies in every direction
 * (pageable and pinned host memory, overlapping device moves), stream
 * ordering, empty buffers, and clear errors for bad input. Needs a GPU:
 * exits 77 (skipped) without one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/device/device.h"

static shardrt__device gpu;

static void expect_error(shardrt_status got, shardrt_status want, const char *needle) {
  if (got != want)
    fail_msg("status %d (%s), wanted %d; last error: %s", got, shardrt_status_str(got), want, shardrt_last_error());
  if (!strstr(shardrt_last_error(), needle))
    fail_msg("error message \"%s\" does not mention \"%s\"", shardrt_last_error(), needle);
}

static unsigned char *pattern(size_t n, unsigned seed) {
  unsigned char *p = malloc(n);
  assert_non_null(p);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((i * 131u + seed) ^ (i >> 8));
  return p;
}

static void test_identity(void **state) {
  assert_true(gpu.is_cuda);
  assert_string_equal(gpu.i->name, "cuda");
  assert_non_null(gpu.i->stream);
  assert_non_null(gpu.i->stream(gpu.self));
  assert_int_equal(gpu.i->sync(gpu.self), SHARDRT_OK);
}

static void test_copy_pageable_and_pinned(void **state) {
  const size_t n = 3 * 1000003 + 1; /* odd, not a multiple of any vector width */
  unsigned char *src = pattern(n, 7), *back = calloc(1, n);
  void *pinned = NULL, *d = NULL;
  assert_non_null(back);
  assert_int_equal(gpu.i->alloc(gpu.self, n, &d), SHARDRT_OK);
  assert_int_equal(gpu.i->host_alloc(gpu.self, n, &pinned), SHARDRT_OK);
  /* pageable -> device -> pageable */
  assert_int_equal(gpu.i->copy(gpu.self, d, src, n, SHARDRT__H2D), SHARDRT_OK);
  memset(src, 0, n); /* the copy has consumed the source when it returns */
  assert_int_equal(gpu.i->copy(gpu.self, back, d, n, SHARDRT__D2H), SHARDRT_OK);
  unsigned char *want = pattern(n, 7);
  assert_memory_equal(back, want, n);
  /* pinned -> device -> pinned, the pinned buffer reused at once */
  unsigned char *p = pinned;
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(want[i] ^ 0x5a);
  assert_int_equal(gpu.i->copy(gpu.self, d, pinned, n, SHARDRT__H2D), SHARDRT_OK);
  memset(pinned, 0, n);
  assert_int_equal(gpu.i->copy(gpu.self, pinned, d, n, SHARDRT__D2H), SHARDRT_OK);
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(want[i] ^ 0x5a)) fail_msg("pinned round trip differs at byte %zu", i);
  gpu.i->host_free(gpu.self, pinned);
  gpu.i->free(gpu.self, d);
  free(src);
  free(back);
  free(want);
}

/* Device moves have memmove semantics, both directions of overlap. */
static void test_copy_overlapping(void **state) {
  const size_t n = 1 << 20;
  const size_t shifts[] = {1, 4096, 333333};
  for (int dir = 0; dir < 2; dir++)
    for (int s = 0; s < 3; s++) {
      unsigned char *host = pattern(n, 11 + (unsigned)s), *back = malloc(n);
      void *d = NULL;
      assert_non_null(back);
      assert_int_equal(gpu.i->alloc(gpu.self, n, &d), SHARDRT_OK);
      assert_int_equal(gpu.i->copy(gpu.self, d, host, n, SHARDRT__H2D), SHARDRT_OK);
      size_t len = n - shifts[s];
      char *dst = (char *)d + (dir ? shifts[s] : 0), *src = (char *)d + (dir ? 0 : shifts[s]);
      assert_int_equal(gpu.i->copy(gpu.self, dst, src, len, SHARDRT__D2D), SHARDRT_OK);
      memmove(host + (dir ? shifts[s] : 0), host + (dir ? 0 : shifts[s]), len);
      assert_int_equal(gpu.i->copy(gpu.self, back, d, n, SHARDRT__D2H), SHARDRT_OK);
      assert_memory_equal(back, host, n);
      gpu.i->free(gpu.self, d);
      free(host);
      free(back);
    }
}

/* A chain of asynchronous ops must run in issue order on the one stream. */
static void test_stream_order(void **state) {
  const size_t n = 1 << 22;
  float *h = malloc(n * sizeof *h), *out = malloc(n * sizeof *out);
  assert_true(h && out);
  /* Integers below 256 and their doublings are exact in bf16 too. */
  for (size_t i = 0; i < n; i++) h[i] = (float)(i % 256);
  void *a = NULL, *b = NULL;
  assert_int_equal(gpu.i->alloc(gpu.self, n * 4, &a), SHARDRT_OK);
  assert_int_equal(gpu.i->alloc(gpu.self, n * 2, &b), SHARDRT_OK);
  assert_int_equal(gpu.i->copy(gpu.self, a, h, n * 4, SHARDRT__H2D), SHARDRT_OK);
  for (int r = 0; r < 4; r++) {
    assert_int_equal(gpu.i->cast(gpu.self, b, SHARDRT_BF16, a, SHARDRT_F32, n), SHARDRT_OK);
    assert_int_equal(gpu.i->add(gpu.self, a, SHARDRT_F32, b, SHARDRT_BF16, n), SHARDRT_OK); /* a *= 2 */
  }
  assert_int_equal(gpu.i->scale(gpu.self, a, SHARDRT_F32, n, 0.0625f), SHARDRT_OK); /* back to the start */
  assert_int_equal(gpu.i->copy(gpu.self, out, a, n * 4, SHARDRT__D2H), SHARDRT_OK);
  for (size_t i = 0; i < n; i++)
    if (out[i] != h[i]) fail_msg("element %zu: %g, wanted %g", i, (double)out[i], (double)h[i]);
  gpu.i->free(gpu.self, a);
  gpu.i->free(gpu.self, b);
  free(h);
  free(out);
}

static void test_empty(void **state) {
  void *p = NULL, *q = NULL;
  assert_int_equal(gpu.i->alloc(gpu.self, 0, &p), SHARDRT_OK);
  assert_int_equal(gpu.i->alloc(gpu.self, 0, &q), SHARDRT_OK);
  assert_non_null(p);
  assert_ptr_not_equal(p, q);
  double norm = -1.0;
  assert_int_equal(gpu.i->sqnorm(gpu.self, p, SHARDRT_F32, 0, &norm), SHARDRT_OK);
  assert_true(norm == 0.0);
  assert_int_equal(gpu.i->cast(gpu.self, p, SHARDRT_F16, NULL, SHARDRT_F32, 0), SHARDRT_OK);
  assert_int_equal(gpu.i->copy(gpu.self, p, NULL, 0, SHARDRT__H2D), SHARDRT_OK);
  gpu.i->free(gpu.self, p);
  gpu.i->free(gpu.self, q);
  gpu.i->free(gpu.self, NULL);
}

static void test_bad_input(void **state) {
  void *d = NULL;
  assert_int_equal(gpu.i->alloc(gpu.self, 64, &d), SHARDRT_OK);
  expect_error(gpu.i->cast(gpu.self, d, (shardrt_dtype)9, d, SHARDRT_F32, 4), SHARDRT_ERR_INVALID_ARGUMENT,
               "dtype 9");
  expect_error(gpu.i->add(gpu.self, d, SHARDRT_F32, NULL, SHARDRT_F32, 4), SHARDRT_ERR_INVALID_ARGUMENT, "NULL");
  expect_error(gpu.i->scale(gpu.self, NULL, SHARDRT_F32, 4, 2.0f), SHARDRT_ERR_INVALID_ARGUMENT, "scale");
  expect_error(gpu.i->copy(gpu.self, d, d, 4, (shardrt__copy_kind)7), SHARDRT_ERR_INVALID_ARGUMENT, "kind 7");
  expect_error(gpu.i->sqnorm(gpu.self, d, SHARDRT_F32, 4, NULL), SHARDRT_ERR_INVALID_ARGUMENT, "out");
  shardrt__adamw_args a = {0};
  expect_error(gpu.i->adamw(gpu.self, d, SHARDRT_F32, d, SHARDRT_F16, NULL, d, SHARDRT_F32, 4, &a),
               SHARDRT_ERR_INVALID_ARGUMENT, "adamw: m is NULL");
  expect_error(gpu.i->sgd(gpu.self, d, SHARDRT_F32, d, SHARDRT_F32, d, SHARDRT_F32, 4, NULL),
               SHARDRT_ERR_INVALID_ARGUMENT, "hyper-parameters");
  /* An impossible allocation is an out-of-memory status, and the device
   * stays usable afterwards. */
  void *huge = NULL;
  expect_error(gpu.i->alloc(gpu.self, (size_t)1 << 52, &huge), SHARDRT_ERR_OUT_OF_MEMORY, "bytes");
  assert_null(huge);
  const float one[4] = {1, 2, 3, 4};
  float back[4] = {0};
  assert_int_equal(gpu.i->copy(gpu.self, d, one, sizeof one, SHARDRT__H2D), SHARDRT_OK);
  assert_int_equal(gpu.i->scale(gpu.self, d, SHARDRT_F32, 4, 2.0f), SHARDRT_OK);
  assert_int_equal(gpu.i->copy(gpu.self, back, d, sizeof back, SHARDRT__D2H), SHARDRT_OK);
  assert_true(back[0] == 2.0f && back[3] == 8.0f);
  gpu.i->free(gpu.self, d);
}

static void test_bad_index(void **state) {
  int count = shardrt__cuda_device_count();
  shardrt__device d;
  expect_error(shardrt__device_cuda_create(count, &d), SHARDRT_ERR_UNSUPPORTED, "does not exist");
  assert_null(d.i);
  expect_error(shardrt__device_cuda_create(-1, &d), SHARDRT_ERR_UNSUPPORTED, "GPU index -1");
}

static int setup(void **state) {
  if (shardrt__device_cuda_create(0, &gpu) != SHARDRT_OK) {
    fprintf(stderr, "cuda device: %s\n", shardrt_last_error());
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  shardrt__device_destroy(&gpu);
  return 0;
}

int main(void) {
  if (shardrt__cuda_device_count() == 0) {
    printf("no CUDA GPU: skipped\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identity),     cmocka_unit_test(test_copy_pageable_and_pinned),
      cmocka_unit_test(test_copy_overlapping), cmocka_unit_test(test_stream_order),
      cmocka_unit_test(test_empty),        cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_bad_index),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
