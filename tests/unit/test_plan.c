/* SPDX-License-Identifier: Apache-2.0 */
/* The plan's derived fields: sharding degree per strategy, the precision
 * rules of both flavours (the seed's table), offload and loading rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "shardrt.h"

static shardrt_plan mk(shardrt_flavor fl, shardrt_strategy s) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.flavor = fl;
  p.strategy = s;
  return p;
}

static void test_sharding_degree(void **state) {
  struct { shardrt_strategy s; int stage; bool sp, sg, so, hybrid; } rows[] = {
      {SHARDRT_NO_SHARD, 0, false, false, false, false},
      {SHARDRT_ZERO1, 1, false, false, true, false},
      {SHARDRT_SHARD_GRAD_OP, 2, false, true, true, false},
      {SHARDRT_FULL_SHARD, 3, true, true, true, false},
      {SHARDRT_HYBRID_SHARD, 3, true, true, true, true},
      {SHARDRT_HYBRID_SHARD_ZERO2, 2, false, true, true, true},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    shardrt_plan p = mk(SHARDRT_FLAVOR_FSDP, rows[i].s);
    p.num_machines = 2;
    assert_int_equal(shardrt_plan_resolve(&p, 4), SHARDRT_OK);
    assert_int_equal(p.zero_stage, rows[i].stage);
    assert_int_equal(p.shard_params, rows[i].sp);
    assert_int_equal(p.shard_grads, rows[i].sg);
    assert_int_equal(p.shard_optimizer, rows[i].so);
    assert_int_equal(p.hybrid, rows[i].hybrid);
    assert_int_equal(p.shard_group_size, rows[i].hybrid ? 2 : 4);
  }
}

/* The three rows of the seed's last table, plus DeepSpeed without mixed precision. */
static void test_precision_rows(void **state) {
  shardrt_plan p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD);
  p.load_dtype = SHARDRT_BF16;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_OK);
  assert_int_equal(p.flat_param_dtype, SHARDRT_BF16);
  assert_int_equal(p.compute_dtype, SHARDRT_BF16);
  assert_int_equal(p.optimizer_dtype, SHARDRT_BF16);
  assert_false(p.master_weights);

  p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD);
  p.load_dtype = SHARDRT_BF16;
  p.mixed_precision = SHARDRT_MP_BF16;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_OK);
  assert_int_equal(p.flat_param_dtype, SHARDRT_F32);
  assert_int_equal(p.compute_dtype, SHARDRT_BF16);
  assert_int_equal(p.optimizer_dtype, SHARDRT_F32);
  /* reduce in the param dtype, as accelerate's MixedPrecision policy */
  assert_int_equal(p.reduce_dtype, SHARDRT_BF16);
  p.reduce_dtype_set = true; /* fp32 reduction is an explicit choice */
  p.reduce_dtype = SHARDRT_F32;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_OK);
  assert_int_equal(p.reduce_dtype, SHARDRT_F32);

  p = mk(SHARDRT_FLAVOR_DEEPSPEED, SHARDRT_FULL_SHARD);
  p.load_dtype = SHARDRT_BF16;
  p.mixed_precision = SHARDRT_MP_BF16;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_OK);
  assert_int_equal(p.flat_param_dtype, SHARDRT_F32);
  assert_int_equal(p.compute_dtype, SHARDRT_BF16);
  assert_int_equal(p.optimizer_dtype, SHARDRT_F32);
  assert_true(p.master_weights);

  p = mk(SHARDRT_FLAVOR_DEEPSPEED, SHARDRT_NO_SHARD);
  p.load_dtype = SHARDRT_BF16; /* DeepSpeed disregards the load dtype */
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_OK);
  assert_int_equal(p.flat_param_dtype, SHARDRT_F32);
  assert_int_equal(p.compute_dtype, SHARDRT_F32);
}

static void test_fp16_scaling_and_reduce_dtype(void **state) {
  shardrt_plan p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_NO_SHARD);
  p.mixed_precision = SHARDRT_MP_FP16;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_OK);
  assert_true(p.loss_scaling);
  p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_NO_SHARD);
  p.mixed_precision = SHARDRT_MP_BF16;
  p.reduce_dtype_set = true;
  p.reduce_dtype = SHARDRT_BF16;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_OK);
  assert_false(p.loss_scaling);
  assert_int_equal(p.reduce_dtype, SHARDRT_BF16);
}

static void test_rejections(void **state) {
  shardrt_plan p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD);
  p.num_processes = 4;
  assert_int_equal(shardrt_plan_resolve(&p, 2), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "num_processes 4"));

  p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_HYBRID_SHARD);
  p.shard_group_size = 3;
  assert_int_equal(shardrt_plan_resolve(&p, 4), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "does not divide"));

  p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD);
  p.offload_params = SHARDRT_OFFLOAD_CPU;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "all-or-nothing"));

  p = mk(SHARDRT_FLAVOR_DEEPSPEED, SHARDRT_FULL_SHARD);
  p.offload_optimizer = SHARDRT_OFFLOAD_NVME;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "nvme_path"));

  p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD);
  p.cpu_ram_efficient_loading = true;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "sync_module_states"));

  /* TRANSFORMER_BASED_WRAP without names resolves: the program's declared
   * block classes are checked at shardrt_finalize (tests/unit/test_units.c). */
  p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD);
  p.wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_OK);

  p = mk(SHARDRT_FLAVOR_FSDP, (shardrt_strategy)42);
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_ERR_CONFIG);

  p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD);
  p.gradient_accumulation_steps = 0;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_ERR_CONFIG);
}

static void test_accum_mode_default(void **state) {
  shardrt_plan p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD);
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_OK);
  assert_int_equal(p.accum_mode, SHARDRT_ACCUM_REDUCE_EACH);
  p = mk(SHARDRT_FLAVOR_FSDP, SHARDRT_NO_SHARD);
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_OK);
  assert_int_equal(p.accum_mode, SHARDRT_ACCUM_NO_SYNC);
}

static void test_format_json_and_table(void **state) {
  shardrt_plan p = mk(SHARDRT_FLAVOR_DEEPSPEED, SHARDRT_SHARD_GRAD_OP);
  p.unresolved = SHARDRT_UNRESOLVED_REDUCE_BUCKET;
  assert_int_equal(shardrt_plan_resolve(&p, 2), SHARDRT_OK);
  char buf[8192];
  int n = shardrt_plan_format(&p, false, buf, sizeof buf);
  assert_true(n > 0 && n < (int)sizeof buf);
  assert_non_null(strstr(buf, "\"strategy\": \"SHARD_GRAD_OP\""));
  assert_non_null(strstr(buf, "\"zero_stage\": 2"));
  assert_non_null(strstr(buf, "\"reduce_bucket_size\": \"auto (set by the program)\""));
  n = shardrt_plan_format(&p, true, buf, sizeof buf);
  assert_non_null(strstr(buf, "shard_grads"));
  /* Truncation is reported snprintf-style. */
  char tiny[16];
  int need = shardrt_plan_format(&p, false, tiny, sizeof tiny);
  assert_true(need > (int)sizeof tiny);
  assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

static void test_dtype_conversions(void **state) {
  const float vals[] = {0.0f, 1.0f, -2.5f, 3.14159f, 65504.0f, 1e-8f, -1e-5f, 1e30f};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    float b = shardrt_bf16_to_f32(shardrt_f32_to_bf16(vals[i]));
    assert_true(fabsf(b - vals[i]) <= fabsf(vals[i]) * (1.0f / 128));
    if (fabsf(vals[i]) <= 65504.0f && fabsf(vals[i]) >= 6.1e-5f) {
      float h = shardrt_f16_to_f32(shardrt_f32_to_f16(vals[i]));
      assert_true(fabsf(h - vals[i]) <= fabsf(vals[i]) * (1.0f / 1024));
    }
  }
  assert_true(isinf(shardrt_f16_to_f32(shardrt_f32_to_f16(1e30f))));
  /* round to nearest even: 1 + 2^-8 in bf16 is a tie -> 1.0 */
  assert_true(shardrt_bf16_to_f32(shardrt_f32_to_bf16(1.0f + 1.0f / 256)) == 1.0f);
  shardrt_dtype dt;
  assert_true(shardrt_dtype_parse("bfloat16", &dt) && dt == SHARDRT_BF16);
  assert_false(shardrt_dtype_parse("int8", &dt));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sharding_degree),     cmocka_unit_test(test_precision_rows),
      cmocka_unit_test(test_fp16_scaling_and_reduce_dtype), cmocka_unit_test(test_rejections),
      cmocka_unit_test(test_accum_mode_default),  cmocka_unit_test(test_format_json_and_table),
      cmocka_unit_test(test_dtype_conversions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
