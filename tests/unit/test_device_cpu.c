/* SPDX-License-Identifier: Apache-2.0 */
/* The CPU device ops (the oracle of the CUDA kernels) against double-precision
 * references of the same formulas. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "src/device/device.h"

static void test_adamw_matches_reference(void **state) {
  /* Five steps against the double formula (torch.optim.AdamW, decoupled
   * weight decay); tests/unit/test_optim_reference.c bounds one step to a few
   * ulp, this checks the moments carry over between steps. */
  shardrt__device d;
  assert_int_equal(shardrt__device_cpu_create(&d), SHARDRT_OK);
  enum { N = 257 };
  float p[N], g[N], m[N] = {0}, v[N] = {0};
  double rp[N], rm[N] = {0}, rv[N] = {0};
  for (int i = 0; i < N; i++) p[i] = (float)(rp[i] = sin(i) * 0.5), g[i] = (float)cos(i * 0.3);
  for (int t = 1; t <= 5; t++) {
    shardrt__adamw_args a;
    shardrt__adamw_args_make(&a, 1e-2, 0.9, 0.999, 1e-8, 0.1, (double)t, 0.5f);
    assert_int_equal(d.i->adamw(d.self, p, SHARDRT_F32, g, SHARDRT_F32, m, v, SHARDRT_F32, N, &a), SHARDRT_OK);
    for (int i = 0; i < N; i++) {
      double gg = g[i] * 0.5;
      rm[i] = 0.9 * rm[i] + 0.1 * gg;
      rv[i] = 0.999 * rv[i] + 0.001 * gg * gg;
      double mh = rm[i] / (1 - pow(0.9, t)), vh = rv[i] / (1 - pow(0.999, t));
      rp[i] = rp[i] * (1 - 1e-2 * 0.1) - 1e-2 * mh / (sqrt(vh) + 1e-8);
    }
  }
  /* |p| <= 0.5 and five updates of ~lr: a few ulp of 0.5 (3e-8) per step. */
  for (int i = 0; i < N; i++) assert_true(fabs(p[i] - rp[i]) < 5 * 4 * 3e-8);
}

static void test_sgd_momentum(void **state) {
  shardrt__device d;
  shardrt__device_cpu_create(&d);
  float p[3] = {1, 2, 3}, g[3] = {1, -1, 0.5f}, buf[3] = {0};
  shardrt__sgd_args a = {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.0f, .grad_scale = 1.0f};
  d.i->sgd(d.self, p, SHARDRT_F32, g, SHARDRT_F32, buf, SHARDRT_F32, 3, &a);
  d.i->sgd(d.self, p, SHARDRT_F32, g, SHARDRT_F32, buf, SHARDRT_F32, 3, &a);
  /* buf: g, then 1.9 g; p -= 0.1 * (g + 1.9 g) */
  assert_true(fabsf(p[0] - (1 - 0.29f)) < 1e-6f);
  assert_true(fabsf(p[1] - (2 + 0.29f)) < 1e-6f);
}

static void test_cast_add_scale_norm(void **state) {
  shardrt__device d;
  shardrt__device_cpu_create(&d);
  float src[4] = {1.5f, -2.0f, 0.25f, 3.0f}, back[4];
  uint16_t h[4];
  d.i->cast(d.self, h, SHARDRT_BF16, src, SHARDRT_F32, 4);
  d.i->cast(d.self, back, SHARDRT_F32, h, SHARDRT_BF16, 4);
  for (int i = 0; i < 4; i++) assert_true(back[i] == src[i]); /* exactly representable */
  d.i->add(d.self, back, SHARDRT_F32, h, SHARDRT_BF16, 4);
  assert_true(back[1] == -4.0f);
  d.i->scale(d.self, back, SHARDRT_F32, 4, 0.5f);
  assert_true(back[3] == 3.0f);
  double s;
  d.i->sqnorm(d.self, src, SHARDRT_F32, 4, &s);
  assert_true(fabs(s - (2.25 + 4 + 0.0625 + 9)) < 1e-12);
  src[2] = INFINITY;
  d.i->sqnorm(d.self, src, SHARDRT_F32, 4, &s);
  assert_true(isinf(s));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_adamw_matches_reference),
      cmocka_unit_test(test_sgd_momentum),
      cmocka_unit_test(test_cast_add_scale_norm),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
