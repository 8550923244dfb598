/* SPDX-License-Identifier: Apache-2.0 */
/* Every CUDA kernel against its CPU twin (the cpu device) on random inputs
 * of odd sizes, every dtype combination, aligned and misaligned buffers.
 * Needs a GPU: exits 77 (skipped) without one. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/device/device.h"

static shardrt__device cpu, gpu;

static const shardrt_dtype dts[] = {SHARDRT_F32, SHARDRT_BF16, SHARDRT_F16};
static const size_t sizes[] = {1, 7, 1000003};
#define NDT 3
#define NSIZES 3

/* ---- helpers ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(float lo, float hi) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}

static float *rand_vals(size_t n, float lo, float hi) {
  float *v = malloc((n ? n : 1) * sizeof *v);
  assert_non_null(v);
  for (size_t i = 0; i < n; i++) v[i] = frand(lo, hi);
  return v;
}

/* The same values on both sides: h is the CPU twin's buffer, d the GPU's. */
typedef struct pair {
  void *h, *d;
  shardrt_dtype dt;
  size_t n;
} pair;

static void pair_make(pair *p, shardrt_dtype dt, size_t n, const float *vals) {
  size_t bytes = (n ? n : 1) * shardrt_dtype_size(dt);
  p->dt = dt;
  p->n = n;
  p->h = malloc(bytes);
  assert_non_null(p->h);
  shardrt_convert(p->h, dt, vals, SHARDRT_F32, n);
  assert_int_equal(gpu.i->alloc(gpu.self, bytes, &p->d), SHARDRT_OK);
  assert_int_equal(gpu.i->copy(gpu.self, p->d, p->h, n * shardrt_dtype_size(dt), SHARDRT__H2D), SHARDRT_OK);
}

static void pair_free(pair *p) {
  free(p->h);
  gpu.i->free(gpu.self, p->d);
}

/* Element `off` of a buffer, for runs on misaligned sub-ranges. */
static void *at(void *base, shardrt_dtype dt, size_t off) { return (char *)base + off * shardrt_dtype_size(dt); }

static void tolerance(shardrt_dtype dt, double *rtol, double *atol) {
  switch (dt) {
    /* About one unit in the last place of each dtype; the absolute part only
     * matters next to zero, where fp16 subnormals are 6e-8 apart. */
    case SHARDRT_F32: *rtol = 1e-6, *atol = 1e-7; break;
    case SHARDRT_BF16: *rtol = 1e-2, *atol = 1e-6; break;
    default: *rtol = 1e-3, *atol = 1e-6; break;
  }
}

static bool close_enough(double got, double want, double rtol, double atol) {
  if (isnan(want)) return isnan(got);
  if (isinf(want)) return got == want;
  return fabs(got - want) <= atol + rtol * fabs(want);
}

/* Downloads the GPU side and compares it with the CPU side element-wise. */
static void expect_pair(const pair *p, const char *what) {
  size_t n = p->n;
  size_t bytes = n * shardrt_dtype_size(p->dt);
  void *raw = malloc(bytes ? bytes : 1);
  float *got = malloc((n ? n : 1) * sizeof *got), *want = malloc((n ? n : 1) * sizeof *want);
  assert_true(raw && got && want);
  assert_int_equal(gpu.i->copy(gpu.self, raw, p->d, bytes, SHARDRT__D2H), SHARDRT_OK);
  shardrt_convert(got, SHARDRT_F32, raw, p->dt, n);
  shardrt_convert(want, SHARDRT_F32, p->h, p->dt, n);
  double rtol, atol;
  tolerance(p->dt, &rtol, &atol);
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < n; i++)
    if (!close_enough(got[i], want[i], rtol, atol) && bad++ == 0) first = i;
  if (bad)
    fail_msg("%s (%s, n=%zu): %zu mismatches, first at %zu: gpu %.9g vs cpu %.9g", what, shardrt_dtype_name(p->dt),
             n, bad, first, (double)got[first], (double)want[first]);
  free(raw);
  free(got);
  free(want);
}

/* Special values placed at fixed spots so casts and norms see them. */
static void sprinkle(float *v, size_t n) {
  const float special[] = {INFINITY, -INFINITY, NAN, 70000.0f, -1e-6f, 1e-40f, 0.0f, -0.0f, 65520.0f, 3.0e38f};
  for (size_t k = 0; k < sizeof special / sizeof special[0]; k++)
    if (k * 7919 + 3 < n) v[k * 7919 + 3] = special[k];
}

/* ---- tests ---- */

static void test_cast(void **state) {
  for (int s = 0; s < NSIZES; s++)
    for (size_t off = 0; off < 2; off++)
      for (int a = 0; a < NDT; a++)
        for (int b = 0; b < NDT; b++) {
          size_t n = sizes[s];
          float *v = rand_vals(n, -300.0f, 300.0f);
          sprinkle(v, n);
          pair src, dst;
          pair_make(&src, dts[b], n, v);
          pair_make(&dst, dts[a], n, v);
          size_t m = n - off;
          assert_int_equal(cpu.i->cast(cpu.self, at(dst.h, dts[a], off), dts[a], at(src.h, dts[b], off), dts[b], m),
                           SHARDRT_OK);
          assert_int_equal(gpu.i->cast(gpu.self, at(dst.d, dts[a], off), dts[a], at(src.d, dts[b], off), dts[b], m),
                           SHARDRT_OK);
          char what[64];
          snprintf(what, sizeof what, "cast %s->%s off %zu", shardrt_dtype_name(dts[b]), shardrt_dtype_name(dts[a]),
                   off);
          expect_pair(&dst, what);
          pair_free(&src);
          pair_free(&dst);
          free(v);
        }
}

static void test_add(void **state) {
  for (int s = 0; s < NSIZES; s++)
    for (size_t off = 0; off < 2; off++)
      for (int a = 0; a < NDT; a++)
        for (int b = 0; b < NDT; b++) {
          size_t n = sizes[s];
          float *x = rand_vals(n, -4.0f, 4.0f), *y = rand_vals(n, -4.0f, 4.0f);
          pair dst, src;
          pair_make(&dst, dts[a], n, x);
          pair_make(&src, dts[b], n, y);
          size_t m = n - off;
          assert_int_equal(cpu.i->add(cpu.self, at(dst.h, dts[a], off), dts[a], at(src.h, dts[b], off), dts[b], m),
                           SHARDRT_OK);
          assert_int_equal(gpu.i->add(gpu.self, at(dst.d, dts[a], off), dts[a], at(src.d, dts[b], off), dts[b], m),
                           SHARDRT_OK);
          char what[64];
          snprintf(what, sizeof what, "add %s += %s off %zu", shardrt_dtype_name(dts[a]), shardrt_dtype_name(dts[b]),
                   off);
          expect_pair(&dst, what);
          pair_free(&dst);
          pair_free(&src);
          free(x);
          free(y);
        }
}

static void test_scale(void **state) {
  const float factors[] = {0.37f, 1.0f / 1024.0f, -3.0f};
  for (int s = 0; s < NSIZES; s++)
    for (size_t off = 0; off < 2; off++)
      for (int a = 0; a < NDT; a++)
        for (int f = 0; f < 3; f++) {
          size_t n = sizes[s];
          float *x = rand_vals(n, -100.0f, 100.0f);
          pair buf;
          pair_make(&buf, dts[a], n, x);
          assert_int_equal(cpu.i->scale(cpu.self, at(buf.h, dts[a], off), dts[a], n - off, factors[f]), SHARDRT_OK);
          assert_int_equal(gpu.i->scale(gpu.self, at(buf.d, dts[a], off), dts[a], n - off, factors[f]), SHARDRT_OK);
          char what[64];
          snprintf(what, sizeof what, "scale by %g off %zu", (double)factors[f], off);
          expect_pair(&buf, what);
          pair_free(&buf);
          free(x);
        }
}

static void test_fill_zero(void **state) {
  size_t n = 1000003;
  float *x = rand_vals(n, 1.0f, 2.0f);
  pair buf;
  pair_make(&buf, SHARDRT_BF16, n, x);
  /* An odd byte range from an odd address: every byte in it becomes 0, the
   * bytes around it keep their values. */
  size_t first = 3, bytes = 2 * n - 7;
  assert_int_equal(cpu.i->fill_zero(cpu.self, (char *)buf.h + first, bytes), SHARDRT_OK);
  assert_int_equal(gpu.i->fill_zero(gpu.self, (char *)buf.d + first, bytes), SHARDRT_OK);
  unsigned char *raw = malloc(2 * n);
  assert_non_null(raw);
  assert_int_equal(gpu.i->copy(gpu.self, raw, buf.d, 2 * n, SHARDRT__D2H), SHARDRT_OK);
  assert_memory_equal(raw, buf.h, 2 * n);
  assert_int_equal(raw[first], 0);
  assert_int_equal(raw[first + bytes - 1], 0);
  assert_int_not_equal(((uint16_t *)raw)[0], 0);
  free(raw);
  pair_free(&buf);
  free(x);
}

static void test_sqnorm(void **state) {
  for (int s = 0; s < NSIZES; s++)
    for (size_t off = 0; off < 2; off++)
      for (int a = 0; a < NDT; a++) {
        size_t n = sizes[s];
        float *x = rand_vals(n, -3.0f, 3.0f);
        pair buf;
        pair_make(&buf, dts[a], n, x);
        double want = -1, got = -1;
        assert_int_equal(cpu.i->sqnorm(cpu.self, at(buf.h, dts[a], off), dts[a], n - off, &want), SHARDRT_OK);
        assert_int_equal(gpu.i->sqnorm(gpu.self, at(buf.d, dts[a], off), dts[a], n - off, &got), SHARDRT_OK);
        /* Both accumulate exact squares in double; only the order differs. */
        if (!close_enough(got, want, 1e-9, 1e-12))
          fail_msg("sqnorm %s n=%zu off=%zu: gpu %.17g vs cpu %.17g", shardrt_dtype_name(dts[a]), n, off, got, want);
        if (n - off == 0) assert_true(got == 0.0);
        else assert_true(got > 0.0);
        pair_free(&buf);
        free(x);
      }
}

static void test_sqnorm_nonfinite(void **state) {
  const float bad[] = {INFINITY, -INFINITY, NAN};
  for (int a = 0; a < NDT; a++)
    for (int k = 0; k < 3; k++) {
      size_t n = 1000003;
      float *x = rand_vals(n, -1.0f, 1.0f);
      x[n / 2 + 1] = bad[k];
      pair buf;
      pair_make(&buf, dts[a], n, x);
      double got = 0.0;
      assert_int_equal(gpu.i->sqnorm(gpu.self, buf.d, dts[a], n, &got), SHARDRT_OK);
      if (isfinite(got)) fail_msg("sqnorm %s with %g inside is finite: %g", shardrt_dtype_name(dts[a]), (double)bad[k], got);
      if (isnan(bad[k])) assert_true(isnan(got));
      else assert_true(isinf(got) && got > 0);
      pair_free(&buf);
      free(x);
    }
}

static void test_adamw(void **state) {
  const int steps = 3;
  for (int s = 0; s < NSIZES; s++)
    for (int p = 0; p < NDT; p++)
      for (int g = 0; g < NDT; g++)
        for (int st = 0; st < NDT; st++) {
          size_t n = sizes[s], off = (s == NSIZES - 1) ? 1 : 0;
          float *pv = rand_vals(n, -1.0f, 1.0f), *mv = rand_vals(n, -0.01f, 0.01f), *vv = rand_vals(n, 0.0f, 1e-4f);
          pair param, m, v;
          pair_make(&param, dts[p], n, pv);
          pair_make(&m, dts[st], n, mv);
          pair_make(&v, dts[st], n, vv);
          for (int t = 1; t <= steps; t++) {
            float *gv = rand_vals(n, -2.0f, 2.0f);
            pair grad;
            pair_make(&grad, dts[g], n, gv);
            shardrt__adamw_args a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                     .weight_decay = 0.01f, .grad_scale = 0.5f};
            a.bias_c1 = 1.0f - powf(a.beta1, (float)t);
            a.bias_c2 = 1.0f - powf(a.beta2, (float)t);
            size_t k = n - off;
            assert_int_equal(cpu.i->adamw(cpu.self, at(param.h, dts[p], off), dts[p], at(grad.h, dts[g], off), dts[g],
                                          at(m.h, dts[st], off), at(v.h, dts[st], off), dts[st], k, &a),
                             SHARDRT_OK);
            assert_int_equal(gpu.i->adamw(gpu.self, at(param.d, dts[p], off), dts[p], at(grad.d, dts[g], off), dts[g],
                                          at(m.d, dts[st], off), at(v.d, dts[st], off), dts[st], k, &a),
                             SHARDRT_OK);
            pair_free(&grad);
            free(gv);
          }
          char what[96];
          snprintf(what, sizeof what, "adamw param %s grad %s state %s: ", shardrt_dtype_name(dts[p]),
                   shardrt_dtype_name(dts[g]), shardrt_dtype_name(dts[st]));
          char w2[128];
          snprintf(w2, sizeof w2, "%sparam", what);
          expect_pair(&param, w2);
          snprintf(w2, sizeof w2, "%sm", what);
          expect_pair(&m, w2);
          snprintf(w2, sizeof w2, "%sv", what);
          expect_pair(&v, w2);
          pair_free(&param);
          pair_free(&m);
          pair_free(&v);
          free(pv);
          free(mv);
          free(vv);
        }
}

static void test_sgd(void **state) {
  const int steps = 3;
  for (int s = 0; s < NSIZES; s++)
    for (int p = 0; p < NDT; p++)
      for (int g = 0; g < NDT; g++)
        for (int st = -1; st < NDT; st++) { /* st == -1: no momentum buffer */
          size_t n = sizes[s], off = (s == NSIZES - 1) ? 1 : 0;
          shardrt_dtype sdt = st < 0 ? SHARDRT_F32 : dts[st];
          float *pv = rand_vals(n, -1.0f, 1.0f), *bv = rand_vals(n, -0.1f, 0.1f);
          pair param, buf;
          pair_make(&param, dts[p], n, pv);
          pair_make(&buf, sdt, n, bv);
          shardrt__sgd_args a = {.lr = 0.05f, .momentum = st < 0 ? 0.0f : 0.9f, .weight_decay = 1e-3f,
                                 .grad_scale = 0.25f};
          for (int t = 1; t <= steps; t++) {
            float *gv = rand_vals(n, -2.0f, 2.0f);
            pair grad;
            pair_make(&grad, dts[g], n, gv);
            size_t k = n - off;
            void *hb = st < 0 ? NULL : at(buf.h, sdt, off), *db = st < 0 ? NULL : at(buf.d, sdt, off);
            assert_int_equal(cpu.i->sgd(cpu.self, at(param.h, dts[p], off), dts[p], at(grad.h, dts[g], off), dts[g], hb,
                                        sdt, k, &a),
                             SHARDRT_OK);
            assert_int_equal(gpu.i->sgd(gpu.self, at(param.d, dts[p], off), dts[p], at(grad.d, dts[g], off), dts[g], db,
                                        sdt, k, &a),
                             SHARDRT_OK);
            pair_free(&grad);
            free(gv);
          }
          char what[128];
          snprintf(what, sizeof what, "sgd param %s grad %s buf %s: param", shardrt_dtype_name(dts[p]),
                   shardrt_dtype_name(dts[g]), st < 0 ? "none" : shardrt_dtype_name(sdt));
          expect_pair(&param, what);
          snprintf(what, sizeof what, "sgd param %s grad %s buf %s: buf", shardrt_dtype_name(dts[p]),
                   shardrt_dtype_name(dts[g]), st < 0 ? "none" : shardrt_dtype_name(sdt));
          expect_pair(&buf, what); /* untouched on both sides when absent */
          pair_free(&param);
          pair_free(&buf);
          free(pv);
          free(bv);
        }
}

static int setup(void **state) {
  if (shardrt__device_cpu_create(&cpu) != SHARDRT_OK) return -1;
  if (shardrt__device_cuda_create(0, &gpu) != SHARDRT_OK) {
    fprintf(stderr, "cuda device: %s\n", shardrt_last_error());
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  shardrt__device_destroy(&gpu);
  shardrt__device_destroy(&cpu);
  return 0;
}

int main(void) {
  if (shardrt__cuda_device_count() == 0) {
    printf("no CUDA GPU: skipped\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cast),    cmocka_unit_test(test_add),          cmocka_unit_test(test_scale),
      cmocka_unit_test(test_fill_zero), cmocka_unit_test(test_sqnorm),     cmocka_unit_test(test_sqnorm_nonfinite),
      cmocka_unit_test(test_adamw),   cmocka_unit_test(test_sgd),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
