/* SPDX-License-Identifier: Apache-2.0 */
/* Bad input to the runtime gets a status and a message naming the thing,
 * never a crash or hang: lifecycle misuse, bad ids, ranks that disagree,
 * allocation failure, devices and backends that are not there. */
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../mpi_test_main.h"

#include "shardrt.h"


static shardrt_ctx *mk(const shardrt_plan *plan, int fail_after) {
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  cp.plan = plan;
  cp.fail_alloc_after = fail_after;
  shardrt_ctx *ctx = NULL;
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_OK);
  return ctx;
}

static void two_units(shardrt_ctx *ctx, int64_t dim) {
  int m0, m1, p;
  int64_t shape[2] = {dim, 3};
  assert_int_equal(shardrt_add_module(ctx, "a", "Block", &m0), SHARDRT_OK);
  assert_int_equal(shardrt_add_param(ctx, m0, "w", 2, shape, &p), SHARDRT_OK);
  assert_int_equal(shardrt_add_module(ctx, "b", "Head", &m1), SHARDRT_OK);
  assert_int_equal(shardrt_add_param(ctx, m1, "w", 1, shape, &p), SHARDRT_OK);
}

static shardrt_plan wrap_plan(const char *cls) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
  p.num_wrap_classes = 1;
  strcpy(p.wrap_classes[0], cls);
  return p;
}

static void test_lifecycle_order(void **state) {
  shardrt_plan p = wrap_plan("Block");
  shardrt_ctx *ctx = mk(&p, -1);
  shardrt_view v;
  assert_int_equal(shardrt_begin_forward(ctx, 0), SHARDRT_ERR_STATE); /* before finalize */
  two_units(ctx, 5);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_OK);
  assert_int_equal(shardrt_num_units(ctx), 2);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_ERR_STATE);
  assert_int_equal(shardrt_add_module(ctx, "late", "X", NULL), SHARDRT_ERR_STATE);
  assert_int_equal(shardrt_param_view(ctx, 0, &v), SHARDRT_ERR_STATE);
  assert_non_null(strstr(shardrt_last_error(), "not gathered"));
  assert_int_equal(shardrt_end_forward(ctx, 0), SHARDRT_ERR_STATE);
  assert_int_equal(shardrt_begin_forward(ctx, 7), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(shardrt_last_error(), "unit 7"));
  assert_int_equal(shardrt_begin_forward(ctx, 0), SHARDRT_OK);
  assert_int_equal(shardrt_begin_forward(ctx, 0), SHARDRT_ERR_STATE);
  assert_int_equal(shardrt_grad_view(ctx, 0, &v), SHARDRT_ERR_STATE);
  assert_int_equal(shardrt_param_view(ctx, 0, &v), SHARDRT_OK);
  assert_int_equal(v.numel, 15);
  assert_int_equal(shardrt_step(ctx, NULL), SHARDRT_ERR_STATE); /* unit still in forward */
  assert_int_equal(shardrt_end_forward(ctx, 0), SHARDRT_OK);
  assert_int_equal(shardrt_begin_micro_batch(ctx, 2, 2), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_param_view(ctx, 99, &v), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_param_set(ctx, 0, NULL), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_step(ctx, NULL), SHARDRT_OK);
  shardrt_ctx_destroy(ctx);
  shardrt_ctx_destroy(NULL); /* NULL-safe */
}

static void test_registry_bad_input(void **state) {
  shardrt_ctx *ctx = mk(NULL, -1);
  int m, p;
  int64_t bad[2] = {4, 0}, ok[1] = {4};
  assert_int_equal(shardrt_add_module(ctx, "", "X", &m), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_add_module(ctx, "a", NULL, &m), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_add_module(ctx, "a", "X", &m), SHARDRT_OK);
  assert_int_equal(shardrt_add_module(ctx, "a", "X", &m), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(shardrt_last_error(), "registered twice"));
  assert_int_equal(shardrt_add_param(ctx, 5, "w", 1, ok, &p), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_add_param(ctx, m, "w", 2, bad, &p), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(shardrt_last_error(), "dimension 1"));
  assert_int_equal(shardrt_add_param(ctx, m, "w", 9, ok, &p), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_ERR_INVALID_ARGUMENT); /* no params */
  shardrt_optim_params op;
  shardrt_optim_params_default(&op);
  op.beta1 = 1.5;
  assert_int_equal(shardrt_set_optimizer(ctx, &op), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_set_lr(ctx, -1), SHARDRT_ERR_INVALID_ARGUMENT);
  shardrt_ctx_destroy(ctx);
}

static void test_wrap_class_missing(void **state) {
  shardrt_plan p = wrap_plan("GPT2Block");
  shardrt_ctx *ctx = mk(&p, -1);
  two_units(ctx, 4);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "could not find the transformer layer class 'GPT2Block'"));
  assert_non_null(strstr(shardrt_last_error(), "Block, Head"));
  shardrt_ctx_destroy(ctx);
}

static void test_ranks_disagree(void **state) {
  if (g_world < 2) skip();
  shardrt_ctx *ctx = mk(NULL, -1);
  two_units(ctx, g_rank == 1 ? 6 : 5);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_ERR_MISMATCH);
  assert_non_null(strstr(shardrt_last_error(), "'a.w'"));
  shardrt_ctx_destroy(ctx);
}

static void test_allocation_failure(void **state) {
  /* Fail each allocation in turn: finalize reports it, nothing leaks or crashes. */
  for (int n = 0; n < 6; n++) {
    shardrt_plan p = wrap_plan("Block");
    shardrt_ctx *ctx = mk(&p, n);
    two_units(ctx, 64);
    shardrt_status rc = shardrt_finalize(ctx);
    assert_int_equal(rc, SHARDRT_ERR_OUT_OF_MEMORY);
    shardrt_ctx_destroy(ctx);
  }
}

static void test_missing_device_and_backend(void **state) {
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  shardrt_ctx *ctx = (shardrt_ctx *)&cp; /* must be reset to NULL on failure */
  cp.device = "cuda";
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_ERR_UNSUPPORTED);
  assert_null(ctx);
  assert_non_null(strstr(shardrt_last_error(), "no CUDA GPU"));
  cp.device = "tpu";
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(shardrt_last_error(), "'tpu'"));
  cp.device = "cpu";
  cp.comm = "nccl";
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_ERR_UNSUPPORTED);
  assert_non_null(strstr(shardrt_last_error(), "nccl"));
  cp.comm = "gloo";
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_ERR_INVALID_ARGUMENT);
  cp.comm = "auto";
  cp.struct_size = 3;
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(shardrt_last_error(), "struct_size"));
}

static void test_world_the_config_cannot_serve(void **state) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.num_processes = g_world + 1;
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  cp.plan = &p;
  shardrt_ctx *ctx = NULL;
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "num_processes"));
}

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lifecycle_order),   cmocka_unit_test(test_registry_bad_input),
      cmocka_unit_test(test_wrap_class_missing), cmocka_unit_test(test_ranks_disagree),
      cmocka_unit_test(test_allocation_failure), cmocka_unit_test(test_missing_device_and_backend),
      cmocka_unit_test(test_world_the_config_cannot_serve),
  };
  SHARDRT_TEST_MPI_RUN("runtime_errors", tests);
}
