/* SPDX-License-Identifier: Apache-2.0 */
/* gpt_cuda_create_ex's checks of its options and shapes, which run before
 * any CUDA call, so they are tested on every machine (unit label): each bad
 * combination is refused with a message naming it, and a good one either
 * creates the model (a GPU is present) or fails cleanly saying cuBLAS (or
 * an allocation) could not be set up (no GPU), never crashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "gpt_cuda.h"
#include "gpt_model.h"

static gpt_config tiny(void) {
  gpt_config c;
  char err[128];
  assert_int_equal(gpt_preset("tiny", &c, err, sizeof err), 0);
  return c;
}

static void expect_refused(const gpt_config *cfg, int B, int T, const gpt_cuda_options *o, const char *want) {
  char err[256] = "";
  gpt_cuda *m = (gpt_cuda *)1; /* must be reset to NULL */
  assert_int_equal(gpt_cuda_create_ex(&m, cfg, B, T, NULL, o, err, sizeof err), -1);
  assert_null(m);
  if (!strstr(err, want)) fail_msg("message '%s' lacks '%s'", err, want);
}

static void test_bad_options(void **state) {
  (void)state;
  gpt_config c = tiny();
  gpt_cuda_options o;
  gpt_cuda_options_default(&o);
  assert_int_equal(o.compute, SHARDRT_F32);
  assert_false(o.tf32 || o.recompute || o.flash_attention || o.no_lt_epilogues);
  o.compute = (shardrt_dtype)7;
  expect_refused(&c, 1, 8, &o, "GPU compute dtype 7 is not supported (allowed: fp32, bf16, fp16)");
  gpt_cuda_options_default(&o);
  o.flash_attention = true;
  expect_refused(&c, 1, 8, &o, "flash attention is implemented by the bf16 and fp16 paths only");
  gpt_config hs24 = {.n_layer = 1, .n_embd = 48, .n_head = 2, .seq_len = 8, .vocab = 64};
  o.compute = SHARDRT_BF16;
  expect_refused(&hs24, 1, 8, &o, "head size of 16, 32, 64 or 128 (this model's is 24)");
  o.compute = SHARDRT_F16;
  expect_refused(&hs24, 1, 8, &o, "head size of 16, 32, 64 or 128 (this model's is 24)");
  gpt_cuda_options_default(&o);
  o.compute = SHARDRT_BF16;
  o.tf32 = true;
  expect_refused(&c, 1, 8, &o, "TF32 applies to fp32 compute only (compute dtype is bf16)");
  o.compute = SHARDRT_F16;
  expect_refused(&c, 1, 8, &o, "TF32 applies to fp32 compute only (compute dtype is fp16)");
}

static void test_bad_shapes(void **state) {
  (void)state;
  gpt_config c = tiny();
  gpt_cuda_options o;
  gpt_cuda_options_default(&o);
  expect_refused(&c, 1, c.seq_len + 1, &o, "B=1 T=33 is invalid");
  expect_refused(&c, 0, 8, &o, "B=0 T=8 is invalid");
  /* the padded vocabulary counts on every path: 42700 tokens x 50257
   * columns would fit in 2^31 elements, x 50304 padded columns do not */
  gpt_config g2 = {.n_layer = 1, .n_embd = 64, .n_head = 1, .seq_len = 42700, .vocab = 50257};
  const shardrt_dtype dts[3] = {SHARDRT_F32, SHARDRT_BF16, SHARDRT_F16};
  for (int i = 0; i < 3; i++) {
    o.compute = dts[i];
    expect_refused(&g2, 1, 42700, &o, "too large for this model on the GPU");
  }
  /* the scores bound: 2 x 2 heads x 42700^2 > 2^31 unless flash attention */
  gpt_config g3 = {.n_layer = 1, .n_embd = 64, .n_head = 2, .seq_len = 42700, .vocab = 64};
  gpt_cuda_options_default(&o);
  o.compute = SHARDRT_BF16;
  expect_refused(&g3, 2, 42700, &o, "too large for this model on the GPU");
  gpt_config bad = c;
  bad.n_head = 5;
  expect_refused(&bad, 1, 8, &o, "not divisible by n_head");
}

/* every dtype with every option it allows: fp32 with recompute and TF32,
 * bf16 and fp16 with flash attention and recompute */
static void test_good_options_create_or_fail_cleanly(void **state) {
  (void)state;
  gpt_config c = tiny();
  for (int k = 0; k < 3; k++) {
    gpt_cuda_options o;
    gpt_cuda_options_default(&o);
    o.compute = k == 0 ? SHARDRT_F32 : k == 1 ? SHARDRT_BF16 : SHARDRT_F16;
    o.recompute = true;
    o.tf32 = k == 0;
    o.flash_attention = k != 0;
    char err[256] = "";
    gpt_cuda *m = NULL;
    int rc = gpt_cuda_create_ex(&m, &c, 2, 16, NULL, &o, err, sizeof err);
    if (gpt_cuda_device_count() > 0) {
      if (rc != 0) fail_msg("create failed with a GPU present: %s", err);
      long fused, fallback;
      gpt_cuda_lt_counts(m, &fused, &fallback);
      assert_int_equal(fused + fallback, 0);
      assert_string_equal(gpt_cuda_lt_last_fallback(m), "");
    } else {
      assert_int_equal(rc, -1);
      assert_null(m);
      assert_true(strlen(err) > 0);
      print_message("  no GPU: create refused with '%s'\n", err);
    }
    gpt_cuda_destroy(m);
  }
  gpt_cuda_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_bad_shapes),
      cmocka_unit_test(test_good_options_create_or_fail_cleanly),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
