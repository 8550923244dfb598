/* SPDX-License-Identifier: Apache-2.0 */
/* A context on the CPU device over the mpi backend, for the cmocka tests that
 * drive collectives through the runtime's internals (src/core/coll.c)
 * without a model. Fails the calling test when the context cannot be made. */
#ifndef SHARDRT_MPI_TEST_CTX_H
#define SHARDRT_MPI_TEST_CTX_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "shardrt.h"

static inline shardrt_ctx *shardrt_test_cpu_mpi_ctx(void) {
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  cp.comm = "mpi";
  shardrt_ctx *ctx = NULL;
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_OK);
  return ctx;
}

#endif
