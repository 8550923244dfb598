/* SPDX-License-Identifier: Apache-2.0 */
/* The smallest model a step test needs (on a shardrt_test_cpu_ctx): one module "lin" (class Linear) with
 * one 1-D parameter "w", so one unit (id 0), and a step whose gradient the
 * test writes by hand (overflow, NaN, schedule and loss-scale tests). */
#ifndef SHARDRT_ONE_PARAM_MODEL_H
#define SHARDRT_ONE_PARAM_MODEL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "../mpi_test_ctx.h"
#include "shardrt.h"

/* Registers "lin.w" of n elements on ctx, finalizes, and sets
 * w[i] = base + slope * i. Returns the parameter id. */
static inline int one_param_model(shardrt_ctx *ctx, int n, float base, float slope) {
  int m, pid;
  int64_t shape[1] = {n};
  assert_int_equal(shardrt_add_module(ctx, "lin", "Linear", &m), SHARDRT_OK);
  assert_int_equal(shardrt_add_param(ctx, m, "w", 1, shape, &pid), SHARDRT_OK);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_OK);
  float *init = malloc(sizeof(float) * (size_t)n);
  assert_non_null(init);
  for (int i = 0; i < n; i++) init[i] = base + slope * (float)i;
  assert_int_equal(shardrt_param_set(ctx, pid, init), SHARDRT_OK);
  free(init);
  return pid;
}

/* Forward and backward of the one unit with gradient g (n fp32 values,
 * converted into the grad view's dtype, reported in *view_dt when not NULL),
 * then shardrt_step's status. */
static inline shardrt_status one_param_step(shardrt_ctx *ctx, int pid, const float *g, int n, shardrt_dtype *view_dt,
                                            shardrt_step_info *info) {
  assert_int_equal(shardrt_begin_forward(ctx, 0), SHARDRT_OK);
  assert_int_equal(shardrt_end_forward(ctx, 0), SHARDRT_OK);
  assert_int_equal(shardrt_begin_backward(ctx, 0), SHARDRT_OK);
  shardrt_view gv;
  assert_int_equal(shardrt_grad_view(ctx, pid, &gv), SHARDRT_OK);
  if (view_dt) *view_dt = gv.dtype;
  shardrt_convert(gv.data, gv.dtype, g, SHARDRT_F32, (size_t)n);
  assert_int_equal(shardrt_end_backward(ctx, 0), SHARDRT_OK);
  return shardrt_step(ctx, info);
}

#endif
