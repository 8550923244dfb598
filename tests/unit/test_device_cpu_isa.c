/* SPDX-License-Identifier: Apache-2.0 */
/* Every ISA build of the CPU kernels (src/device/cpu_kernels.c) that this
 * machine runs, against a scalar oracle written the plain way: the core's
 * conversions (src/core/dtype.c) and the per-element order of device.h.
 * Results must be identical bit for bit (NaN counts as equal to NaN: which
 * of two NaN payloads an operation keeps is not specified), for every dtype
 * combination, at sizes and offsets that exercise the vector tails. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/device/cpu_kernels.h"
#include "src/device/device.h"

static const shardrt_dtype dts[3] = {SHARDRT_F32, SHARDRT_BF16, SHARDRT_F16};

static float rld(const void *p, shardrt_dtype dt, size_t i) {
  float f;
  shardrt_convert(&f, SHARDRT_F32, (const char *)p + i * shardrt_dtype_size(dt), dt, 1);
  return f;
}

static void rst(void *p, shardrt_dtype dt, size_t i, float v) {
  shardrt_convert((char *)p + i * shardrt_dtype_size(dt), dt, &v, SHARDRT_F32, 1);
}

static bool same(const void *a, const void *b, shardrt_dtype dt, size_t i) {
  size_t es = shardrt_dtype_size(dt);
  if (memcmp((const char *)a + i * es, (const char *)b + i * es, es) == 0) return true;
  float x = rld(a, dt, i), y = rld(b, dt, i);
  if (isnan(x) || isnan(y)) return isnan(x) && isnan(y);
  return false;
}

static void expect_same(const void *got, const void *want, shardrt_dtype dt, size_t n, const char *isa,
                        const char *what) {
  for (size_t i = 0; i < n; i++)
    if (!same(got, want, dt, i))
      fail_msg("%s %s (%s) element %zu of %zu: got %.9g, oracle %.9g", isa, what, shardrt_dtype_name(dt), i, n,
               (double)rld(got, dt, i), (double)rld(want, dt, i));
}

static uint32_t rng = 12345u;
static float urand(void) {
  rng = rng * 1664525u + 1013904223u;
  return (float)(rng >> 8) / 16777216.0f;
}

/* Values across the ranges the kernels round differently: ordinary,
 * fp16-subnormal, fp16-overflowing (with wide), and a few specials. */
static float sample(size_t i, float lo, float hi, bool wide) {
  switch (i % 29) {
    case 3: return 3e-6f * (urand() - 0.5f);
    case 7: return wide ? 7e4f * (urand() + 0.5f) : hi;
    case 11: return 0.0f;
    case 13: return -0.0f;
    default: return lo + (hi - lo) * urand();
  }
}

static void *make(shardrt_dtype dt, size_t n, float lo, float hi, bool specials) {
  void *p = malloc((n + 1) * 4);
  for (size_t i = 0; i < n; i++) rst(p, dt, i, sample(i, lo, hi, specials));
  if (specials && n > 40) {
    rst(p, dt, 31, INFINITY);
    rst(p, dt, 37, -INFINITY);
    rst(p, dt, n - 2, NAN);
  }
  return p;
}

static void *dup(const void *p, shardrt_dtype dt, size_t n) {
  void *q = malloc((n + 1) * 4);
  memcpy(q, p, n * shardrt_dtype_size(dt));
  return q;
}

static const size_t sizes[] = {0, 1, 15, 16, 17, 63, 100, 1027};
#define NSIZES (sizeof sizes / sizeof sizes[0])

#define FOR_ISA(k)                                                  \
  for (int isa_ = 0; isa_ < SHARDRT__CPU_ISA_COUNT; isa_++)         \
    for (const shardrt__cpu_kernels *k = shardrt__cpu_kernels_for((shardrt__cpu_isa)isa_); k; k = NULL)

static void test_tables(void **state) {
  /* The baseline is always there; the best is one of the tables. */
  assert_non_null(shardrt__cpu_kernels_for(SHARDRT__CPU_ISA_BASE));
  const shardrt__cpu_kernels *best = shardrt__cpu_kernels_best();
  bool found = false;
  FOR_ISA(k) {
    found |= k == best;
    print_message("cpu kernels: %s available%s\n", k->isa, k == best ? " (used)" : "");
  }
  assert_true(found);
}

/* The fp32 patterns the fp32 -> 16-bit casts are checked on, in three
 * passes: 0, a prime-stride sweep of all 2^32; 1, every sign/exponent/high
 * mantissa prefix with the low 16 bits on and next to each rounding
 * boundary of bf16 (bit 16) and fp16 normals (bit 13); 2, fp16's subnormal
 * range, which rounds at other bits: every halfway point (k + 1/2) 2^-24
 * and its fp32 neighbours, both signs. */
static const uint32_t edges[] = {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x7fff,
                                 0x8000, 0x8001, 0xefff, 0xf000, 0xf001, 0xffff};
#define NEDGES (sizeof edges / sizeof edges[0])

static uint64_t pass_count(int pass) {
  return pass == 0 ? (1ull << 32) / 4093 + 1 : pass == 1 ? (1ull << 16) * NEDGES : 2 * 1025 * 3;
}

static uint32_t pass_value(int pass, uint64_t i) {
  if (pass == 0) return (uint32_t)(i * 4093);
  if (pass == 1) return (uint32_t)((i / NEDGES) << 16) | edges[i % NEDGES];
  float half = ((float)(i / 6 % 1025) + 0.5f) * 0x1p-24f; /* exact: 11 significant bits */
  uint32_t u;
  memcpy(&u, &half, 4);
  u += (uint32_t)(i % 3) - 1u;                  /* the halfway point and its neighbours */
  return u | (uint32_t)(i / 3 % 2) << 31;       /* both signs */
}

/* All 65536 bf16 and fp16 patterns to fp32 and to each other, and fp32 to
 * both on the patterns above. */
static void test_conversions(void **state) {
  enum { CH = 1 << 16 };
  uint32_t *f = malloc(CH * 4), *want32 = malloc(CH * 4), *got32 = malloc(CH * 4);
  uint16_t *h = malloc(CH * 2), *want16 = malloc(CH * 2), *got16 = malloc(CH * 2);
  FOR_ISA(k) {
    for (int d = 1; d < 3; d++) {
      for (uint32_t i = 0; i < CH; i++) h[i] = (uint16_t)i;
      shardrt_convert(want32, SHARDRT_F32, h, dts[d], CH);
      k->cast[SHARDRT_F32][dts[d]](got32, h, CH);
      expect_same(got32, want32, SHARDRT_F32, CH, k->isa, "cast from 16-bit");
    }
    uint64_t total = 0;
    for (int pass = 0; pass < 3; pass++) {
      uint64_t count = pass_count(pass);
      for (uint64_t done = 0; done < count;) {
        uint32_t m = (uint32_t)(count - done < CH ? count - done : CH);
        for (uint32_t i = 0; i < m; i++, done++) f[i] = pass_value(pass, done);
        for (int d = 1; d < 3; d++) {
          shardrt_convert(want16, dts[d], f, SHARDRT_F32, m);
          k->cast[dts[d]][SHARDRT_F32](got16, f, m);
          expect_same(got16, want16, dts[d], m, k->isa, "cast from fp32");
        }
        total += m;
      }
    }
    assert_true(total > 1900000);
    /* bf16 <-> fp16 directly. */
    for (uint32_t i = 0; i < CH; i++) h[i] = (uint16_t)i;
    for (int d = 1; d < 3; d++) {
      shardrt_dtype to = dts[3 - d];
      shardrt_convert(want16, to, h, dts[d], CH);
      k->cast[to][dts[d]](got16, h, CH);
      expect_same(got16, want16, to, CH, k->isa, "cast 16-bit to 16-bit");
    }
  }
  free(f), free(want32), free(got32), free(h), free(want16), free(got16);
}

static void test_add_scale(void **state) {
  FOR_ISA(k)
  for (size_t s = 0; s < NSIZES; s++)
    for (size_t off = 0; off < 2; off++)
      for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
          size_t n = sizes[s] + off, es = shardrt_dtype_size(dts[a]);
          void *dst = make(dts[a], n, -4, 4, true), *src = make(dts[b], n, -4, 4, true);
          void *want = dup(dst, dts[a], n);
          for (size_t i = off; i < n; i++) rst(want, dts[a], i, rld(want, dts[a], i) + rld(src, dts[b], i));
          k->add[dts[a]][dts[b]]((char *)dst + off * es, (char *)src + off * shardrt_dtype_size(dts[b]), n - off);
          expect_same(dst, want, dts[a], n, k->isa, "add");
          if (b == 0) {
            for (size_t i = off; i < n; i++) rst(want, dts[a], i, rld(want, dts[a], i) * 0.37f);
            k->scale[dts[a]]((char *)dst + off * es, n - off, 0.37f);
            expect_same(dst, want, dts[a], n, k->isa, "scale");
          }
          free(dst), free(src), free(want);
        }
}

/* The oracle of sqnorm's fixed order: element i into sum i % 16, then a
 * pairwise tree (the order cpu_loops.h documents). */
static double ref_sqnorm(const void *p, shardrt_dtype dt, size_t n) {
  double acc[16] = {0};
  for (size_t i = 0; i < n; i++) {
    double x = rld(p, dt, i);
    acc[i % 16] += x * x;
  }
  for (size_t w = 8; w > 0; w /= 2)
    for (size_t j = 0; j < w; j++) acc[j] += acc[j + w];
  return acc[0];
}

static void test_sqnorm(void **state) {
  const size_t more[] = {4096 + 5, 100003};
  FOR_ISA(k)
  for (int a = 0; a < 3; a++)
    for (size_t s = 0; s < NSIZES + 2; s++) {
      size_t n = s < NSIZES ? sizes[s] : more[s - NSIZES];
      void *p = make(dts[a], n, -3, 3, false);
      double got = k->sqnorm[dts[a]](p, n), want = ref_sqnorm(p, dts[a], n), seq = 0;
      if (memcmp(&got, &want, sizeof got) != 0)
        fail_msg("%s sqnorm %s n=%zu: %.17g, oracle %.17g", k->isa, shardrt_dtype_name(dts[a]), n, got, want);
      /* Sanity against the plain sequential sum: squares are exact in
       * double and non-negative, so each order is within n * 2^-53 of the
       * exact sum, relative (the standard bound), and the two within twice
       * that. */
      for (size_t i = 0; i < n; i++) seq += (double)rld(p, dts[a], i) * rld(p, dts[a], i);
      if (!(fabs(got - seq) <= 2.0 * (double)n * 0x1p-53 * seq))
        fail_msg("%s sqnorm %s n=%zu: %.17g, sequential sum %.17g", k->isa, shardrt_dtype_name(dts[a]), n, got, seq);
      if (n > 40) {
        rst(p, dts[a], 33, INFINITY);
        assert_true(isinf(k->sqnorm[dts[a]](p, n)));
        rst(p, dts[a], n - 1, NAN);
        assert_true(isnan(k->sqnorm[dts[a]](p, n)));
      }
      free(p);
    }
}

static void test_adamw(void **state) {
  const double beta1s[2] = {0.9, 0.3}; /* lerp weight 0.1 and 0.7: both torch.lerp branches */
  FOR_ISA(k)
  for (int br = 0; br < 2; br++)
    for (int pa = 0; pa < 3; pa++)
      for (int ga = 0; ga < 3; ga++)
        for (int sa = 0; sa < 3; sa++)
          for (size_t s = 0; s < NSIZES; s++) {
            size_t n = sizes[s];
            shardrt_dtype pd = dts[pa], gd = dts[ga], sd = dts[sa];
            shardrt__adamw_args a;
            shardrt__adamw_args_make(&a, 1e-3, beta1s[br], 0.999, 1e-8, 0.01, 3.0, 0.5f);
            void *p = make(pd, n, -1, 1, true), *g = make(gd, n, -2, 2, true);
            void *m = make(sd, n, -0.5f, 0.5f, false), *v = make(sd, n, 0, 0.3f, false);
            void *rp = dup(p, pd, n), *rm = dup(m, sd, n), *rv = dup(v, sd, n);
            for (size_t i = 0; i < n; i++) {
              float gi = rld(g, gd, i) * a.grad_scale, w = a.one_minus_beta1, mi = rld(rm, sd, i);
              mi = fabsf(w) < 0.5f ? mi + w * (gi - mi) : gi - (gi - mi) * (1.0f - w);
              float vi = rld(rv, sd, i) * a.beta2 + (a.one_minus_beta2 * gi) * gi;
              float denom = sqrtf(vi) / a.bc2_sqrt + a.eps;
              float pi = rld(rp, pd, i) * a.decay;
              pi = pi + (a.neg_step_size * mi) / denom;
              rst(rm, sd, i, mi), rst(rv, sd, i, vi), rst(rp, pd, i, pi);
            }
            int hi = !(fabsf(a.one_minus_beta1) < 0.5f);
            assert_int_equal(hi, br);
            k->adamw[pd][gd][sd][hi](p, g, m, v, n, &a);
            expect_same(p, rp, pd, n, k->isa, "adamw param");
            expect_same(m, rm, sd, n, k->isa, "adamw m");
            expect_same(v, rv, sd, n, k->isa, "adamw v");
            free(p), free(g), free(m), free(v), free(rp), free(rm), free(rv);
          }
}

static void test_sgd(void **state) {
  FOR_ISA(k)
  for (int mom = 0; mom < 2; mom++)
    for (int pa = 0; pa < 3; pa++)
      for (int ga = 0; ga < 3; ga++)
        for (int sa = 0; sa < 3; sa++)
          for (size_t s = 0; s < NSIZES; s++) {
            size_t n = sizes[s];
            shardrt_dtype pd = dts[pa], gd = dts[ga], sd = dts[sa];
            shardrt__sgd_args a = {.lr = 0.05f, .momentum = 0.9f, .weight_decay = 0.01f, .grad_scale = 0.25f};
            void *p = make(pd, n, -1, 1, true), *g = make(gd, n, -2, 2, true), *b = make(sd, n, -1, 1, false);
            void *rp = dup(p, pd, n), *rb = dup(b, sd, n);
            for (size_t i = 0; i < n; i++) {
              float pi = rld(rp, pd, i), gi = rld(g, gd, i) * a.grad_scale + a.weight_decay * pi;
              if (mom) {
                float bi = a.momentum * rld(rb, sd, i) + gi;
                rst(rb, sd, i, bi);
                gi = bi;
              }
              rst(rp, pd, i, pi - a.lr * gi);
            }
            k->sgd[pd][gd][sd][mom](p, g, mom ? b : NULL, n, &a);
            expect_same(p, rp, pd, n, k->isa, "sgd param");
            expect_same(b, rb, sd, n, k->isa, "sgd momentum");
            free(p), free(g), free(b), free(rp), free(rb);
          }
}

/* The device interface refuses a dtype outside the tables instead of
 * indexing past them. */
static void test_bad_dtype(void **state) {
  shardrt__device d;
  assert_int_equal(shardrt__device_cpu_create(&d), SHARDRT_OK);
  float x[4] = {1, 2, 3, 4};
  double s;
  assert_int_equal(d.i->scale(d.self, x, (shardrt_dtype)7, 4, 2.0f), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(d.i->sqnorm(d.self, x, (shardrt_dtype)3, 4, &s), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(d.i->add(d.self, x, SHARDRT_F32, x, (shardrt_dtype)-1, 4), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(d.i->cast(d.self, x, (shardrt_dtype)9, x, SHARDRT_F32, 4), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_true(x[0] == 1.0f && x[3] == 4.0f); /* untouched */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tables),  cmocka_unit_test(test_conversions), cmocka_unit_test(test_add_scale),
      cmocka_unit_test(test_sqnorm),  cmocka_unit_test(test_adamw),       cmocka_unit_test(test_sgd),
      cmocka_unit_test(test_bad_dtype),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
