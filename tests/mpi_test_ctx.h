/* SPDX-License-Identifier: Apache-2.0 */
/* A context on the CPU device (over the mpi backend, for the cmocka tests
 * that drive collectives through the runtime's internals, src/core/coll.c,
 * without a model). Fails the calling test when it cannot be made. */
#ifndef SHARDRT_MPI_TEST_CTX_H
#define SHARDRT_MPI_TEST_CTX_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "shardrt.h"

/* plan: NULL for the defaults; comm: NULL for the runtime's choice. */
static inline shardrt_ctx *shardrt_test_cpu_ctx(const shardrt_plan *plan, const char *comm) {
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  if (comm) cp.comm = comm;
  if (plan) cp.plan = plan;
  shardrt_ctx *ctx = NULL;
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_OK);
  return ctx;
}

static inline shardrt_ctx *shardrt_test_cpu_mpi_ctx(void) { return shardrt_test_cpu_ctx(NULL, "mpi"); }

#endif
