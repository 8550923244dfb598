/* SPDX-License-Identifier: Apache-2.0 */
/* Runs everywhere (no GPU needed): asking for the cuda device or the nccl
 * backend where they cannot be served fails with SHARDRT_ERR_UNSUPPORTED and
 * a message saying why and what to use instead — never a crash. Which "why"
 * depends on the build (no CUDA compiled in) and the machine (no GPU). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "src/comm/comm.h"
#include "src/device/device.h"

static void expect_msg(const char *needle) {
  if (!strstr(shardrt_last_error(), needle))
    fail_msg("error message \"%s\" does not mention \"%s\"", shardrt_last_error(), needle);
}

static void test_device_count(void **state) {
  int n = shardrt__cuda_device_count();
  assert_true(n >= 0);
  assert_int_equal(shardrt__cuda_device_count(), n); /* stable, and no error left behind */
#ifndef SHARDRT_HAVE_CUDA
  assert_int_equal(n, 0);
#endif
}

static void test_cuda_device_refused(void **state) {
  int n = shardrt__cuda_device_count();
  shardrt__device d;
  memset(&d, 0xab, sizeof d);
  /* Index n never exists: with no GPU it is 0, with GPUs it is one past. */
  assert_int_equal(shardrt__device_cuda_create(n, &d), SHARDRT_ERR_UNSUPPORTED);
  assert_null(d.i);
  assert_null(d.self);
#ifdef SHARDRT_HAVE_CUDA
  if (n == 0) {
    expect_msg("no CUDA GPU");
    expect_msg("cpu device");
  } else {
    expect_msg("does not exist");
  }
#else
  expect_msg("-DSHARDRT_CUDA=ON");
#endif
  assert_int_equal(shardrt__device_cuda_create(-1, &d), SHARDRT_ERR_UNSUPPORTED);
  assert_null(d.i);
}

static void test_nccl_refused(void **state) {
  shardrt__device cpu;
  assert_int_equal(shardrt__device_cpu_create(&cpu), SHARDRT_OK);
  shardrt__comm_args a = {.mpi_comm = NULL, .shard_group_size = 1, .dev = &cpu};
  shardrt__comm c;
  memset(&c, 0xab, sizeof c);
  assert_int_equal(shardrt__comm_nccl_create(&a, &c), SHARDRT_ERR_UNSUPPORTED);
  assert_null(c.i);
  assert_null(c.self);
  expect_msg("--comm mpi");
#ifdef SHARDRT_HAVE_CUDA
  if (shardrt__cuda_device_count() == 0) expect_msg("no GPU is available");
  else expect_msg("needs the cuda device");
#else
  expect_msg("-DSHARDRT_CUDA=ON");
#endif
  /* The same without any device at all. */
  a.dev = NULL;
  assert_int_equal(shardrt__comm_nccl_create(&a, &c), SHARDRT_ERR_UNSUPPORTED);
  assert_null(c.i);
  shardrt__device_destroy(&cpu);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_device_count),
      cmocka_unit_test(test_cuda_device_refused),
      cmocka_unit_test(test_nccl_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
