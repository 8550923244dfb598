/* SPDX-License-Identifier: Apache-2.0 */
/* shardrt_set_block_classes: TRANSFORMER_BASED_WRAP without class names in
 * the config wraps the classes the program declares (accelerate wraps the
 * model's _no_split_modules); names the config gives win. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../mpi_test_main.h"
#include "shardrt.h"

static shardrt_ctx *mk(const shardrt_plan *p) {
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  cp.plan = p;
  shardrt_ctx *ctx = NULL;
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_OK);
  return ctx;
}

/* embedding, two blocks (each with a child linear), a head */
static void model(shardrt_ctx *ctx) {
  int64_t shape[1] = {6};
  int m, pid;
  static const char *const names[] = {"wte", "h.0", "h.0.mlp", "h.1", "h.1.mlp", "head"};
  static const char *const cls[] = {"Embedding", "GPT2Block", "Linear", "GPT2Block", "Linear", "Linear"};
  for (int i = 0; i < 6; i++) {
    assert_int_equal(shardrt_add_module(ctx, names[i], cls[i], &m), SHARDRT_OK);
    assert_int_equal(shardrt_add_param(ctx, m, "w", 1, shape, &pid), SHARDRT_OK);
  }
}

static shardrt_plan transformer_plan(const char *cls) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
  if (cls) {
    p.num_wrap_classes = 1;
    strcpy(p.wrap_classes[0], cls);
  }
  return p;
}

static void test_declared_classes_are_wrapped(void **state) {
  (void)state;
  shardrt_plan p = transformer_plan(NULL);
  shardrt_ctx *ctx = mk(&p);
  assert_int_equal(shardrt_set_block_classes(ctx, " GPT2Block , "), SHARDRT_OK);
  model(ctx);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_OK);
  /* two blocks (with their children) and the root holding wte and head */
  assert_int_equal(shardrt_num_units(ctx), 3);
  int found = 0;
  for (int u = 0; u < 3; u++) {
    shardrt_unit_info ui;
    assert_int_equal(shardrt_unit_info_get(ctx, u, &ui), SHARDRT_OK);
    if (strcmp(ui.name, "h.0") == 0 || strcmp(ui.name, "h.1") == 0) {
      assert_int_equal(ui.num_params, 2);
      found++;
    }
  }
  assert_int_equal(found, 2);
  shardrt_ctx_destroy(ctx);
}

static void test_config_names_win(void **state) {
  (void)state;
  shardrt_plan p = transformer_plan("Linear");
  shardrt_ctx *ctx = mk(&p);
  assert_int_equal(shardrt_set_block_classes(ctx, "GPT2Block"), SHARDRT_OK);
  model(ctx);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_OK);
  /* h.0.mlp, h.1.mlp, head, and the root with the rest */
  assert_int_equal(shardrt_num_units(ctx), 4);
  shardrt_ctx_destroy(ctx);
}

static void test_nothing_to_wrap_is_an_error(void **state) {
  (void)state;
  shardrt_plan p = transformer_plan(NULL);
  shardrt_ctx *ctx = mk(&p);
  model(ctx);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "shardrt_set_block_classes"));
  shardrt_ctx_destroy(ctx);

  ctx = mk(&p);
  assert_int_equal(shardrt_set_block_classes(ctx, "Gpt2Block"), SHARDRT_OK);
  model(ctx);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "could not find the transformer layer class 'Gpt2Block'"));
  assert_non_null(strstr(shardrt_last_error(), "GPT2Block"));
  shardrt_ctx_destroy(ctx);
}

static void test_bad_arguments(void **state) {
  (void)state;
  shardrt_plan p = transformer_plan(NULL);
  shardrt_ctx *ctx = mk(&p);
  assert_int_equal(shardrt_set_block_classes(NULL, "A"), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_set_block_classes(ctx, NULL), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_set_block_classes(ctx, "A\"B"), SHARDRT_ERR_INVALID_ARGUMENT);
  char many[2048] = "";
  for (int i = 0; i < 20; i++) strcat(many, "Block,");
  assert_int_equal(shardrt_set_block_classes(ctx, many), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_set_block_classes(ctx, "GPT2Block"), SHARDRT_OK);
  model(ctx);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_OK);
  assert_int_equal(shardrt_set_block_classes(ctx, "GPT2Block"), SHARDRT_ERR_STATE);
  shardrt_ctx_destroy(ctx);
}

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_declared_classes_are_wrapped),
      cmocka_unit_test(test_config_names_win),
      cmocka_unit_test(test_nothing_to_wrap_is_an_error),
      cmocka_unit_test(test_bad_arguments),
  };
  SHARDRT_TEST_MPI_RUN("block_classes", tests);
}
