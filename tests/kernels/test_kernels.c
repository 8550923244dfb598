/* SPDX-License-Identifier: Apache-2.0 */
/* Every CUDA kernel against its CPU twin (the cpu device) on random inputs
 * of odd sizes, every dtype combination, aligned and misaligned buffers.
 * cast, add and scale do one rounding each, the same on both sides, so they
 * must agree bit for bit; the optimizers to an ulp or so (the host compiler
 * may contract a*b+c into an FMA). Sizes reach past the launch cap so the
 * grid-stride loops run more than once on both the vector and the scalar
 * path, and one test indexes past 2^31 elements. Needs a GPU: exits 77
 * (skipped) without one. */
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
/* 4194309 is past the grid cap (8 blocks of 256 threads per SM, 4 elements a
 * thread on the vector path) of any current GPU, so every thread loops. */
static const size_t sizes[] = {1, 7, 1000003, 4194309};
#define NDT 3
#define NSIZES 4

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

static bool close_enough(double got, double want, double rtol, double atol) {
  if (isnan(want)) return isnan(got);
  if (isinf(want)) return got == want;
  return fabs(got - want) <= atol + rtol * fabs(want);
}

/* Distance in units in the last place between two raw values of dt: 0 for
 * equal bits, for +0/-0 and for two NaNs; huge when only one is NaN. */
static uint64_t ulps(shardrt_dtype dt, const void *a, const void *b, size_t i) {
  int64_t x, y;
  bool nx, ny;
  if (dt == SHARDRT_F32) {
    uint32_t u, v;
    memcpy(&u, (const char *)a + 4 * i, 4);
    memcpy(&v, (const char *)b + 4 * i, 4);
    nx = (u & 0x7fffffffu) > 0x7f800000u, ny = (v & 0x7fffffffu) > 0x7f800000u;
    x = (u & 0x80000000u) ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
    y = (v & 0x80000000u) ? -(int64_t)(v & 0x7fffffffu) : (int64_t)v;
  } else {
    uint16_t u, v;
    memcpy(&u, (const char *)a + 2 * i, 2);
    memcpy(&v, (const char *)b + 2 * i, 2);
    uint16_t inf = dt == SHARDRT_BF16 ? 0x7f80u : 0x7c00u;
    nx = (u & 0x7fffu) > inf, ny = (v & 0x7fffu) > inf;
    x = (u & 0x8000u) ? -(int64_t)(u & 0x7fffu) : (int64_t)u;
    y = (v & 0x8000u) ? -(int64_t)(v & 0x7fffu) : (int64_t)v;
  }
  if (nx || ny) return nx && ny ? 0 : UINT64_MAX;
  return (uint64_t)(x > y ? x - y : y - x);
}

/* Downloads the GPU side and compares raw values: every element within
 * max_ulp, and at most max_off_frac of them differing at all (a wrong
 * rounding mode moves about half the elements by one ulp). NaN payloads and
 * signs are not compared. */
static void expect_pair_ulp(const pair *p, uint64_t max_ulp, double max_off_frac, const char *what) {
  size_t n = p->n, bytes = n * shardrt_dtype_size(p->dt);
  void *raw = malloc(bytes ? bytes : 1);
  assert_non_null(raw);
  assert_int_equal(gpu.i->copy(gpu.self, raw, p->d, bytes, SHARDRT__D2H), SHARDRT_OK);
  size_t off = 0, bad = 0, first = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t d = ulps(p->dt, raw, p->h, i);
    if (d) off++;
    if (d > max_ulp && bad++ == 0) first = i;
  }
  float got = 0, want = 0;
  if (bad) {
    shardrt_convert(&got, SHARDRT_F32, (const char *)raw + first * shardrt_dtype_size(p->dt), p->dt, 1);
    shardrt_convert(&want, SHARDRT_F32, (const char *)p->h + first * shardrt_dtype_size(p->dt), p->dt, 1);
  }
  free(raw);
  if (bad)
    fail_msg("%s (%s, n=%zu): %zu elements more than %llu ulp off, first at %zu: gpu %.9g vs cpu %.9g", what,
             shardrt_dtype_name(p->dt), n, bad, (unsigned long long)max_ulp, first, (double)got, (double)want);
  if ((double)off > max_off_frac * (double)n)
    fail_msg("%s (%s, n=%zu): %zu elements differ from the CPU twin (allowed %.3g of them)", what,
             shardrt_dtype_name(p->dt), n, off, max_off_frac);
}

/* One rounding on each side, the same one: equal bits. */
static void expect_pair_exact(const pair *p, const char *what) { expect_pair_ulp(p, 0, 0.0, what); }

/* The optimizers: fp32 results may differ by a few ulp where the host
 * contracts into FMAs; a 16-bit result only where that lands on a rounding
 * boundary, so rarely. */
static void expect_pair_optim(const pair *p, const char *what) {
  if (p->dt == SHARDRT_F32) expect_pair_ulp(p, 4, 1.0, what);
  else expect_pair_ulp(p, 1, 0.01, what);
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
          expect_pair_exact(&dst, what);
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
          expect_pair_exact(&dst, what);
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
          expect_pair_exact(&buf, what);
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
          /* 1000003 misaligned (scalar path), every other size aligned (vector path) */
          size_t n = sizes[s], off = (s == 2) ? 1 : 0;
          float *pv = rand_vals(n, -1.0f, 1.0f), *mv = rand_vals(n, -0.01f, 0.01f), *vv = rand_vals(n, 0.0f, 1e-4f);
          pair param, m, v;
          pair_make(&param, dts[p], n, pv);
          pair_make(&m, dts[st], n, mv);
          pair_make(&v, dts[st], n, vv);
          for (int t = 1; t <= steps; t++) {
            float *gv = rand_vals(n, -2.0f, 2.0f);
            pair grad;
            pair_make(&grad, dts[g], n, gv);
            shardrt__adamw_args a;
            shardrt__adamw_args_make(&a, 1e-3, 0.9, 0.999, 1e-8, 0.01, (double)t, 0.5f);
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
          expect_pair_optim(&param, w2);
          snprintf(w2, sizeof w2, "%sm", what);
          expect_pair_optim(&m, w2);
          snprintf(w2, sizeof w2, "%sv", what);
          expect_pair_optim(&v, w2);
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
          size_t n = sizes[s], off = (s == 2) ? 1 : 0;
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
          expect_pair_optim(&param, what);
          snprintf(what, sizeof what, "sgd param %s grad %s buf %s: buf", shardrt_dtype_name(dts[p]),
                   shardrt_dtype_name(dts[g]), st < 0 ? "none" : shardrt_dtype_name(sdt));
          if (st < 0) expect_pair_exact(&buf, what); /* untouched on both sides when absent */
          else expect_pair_optim(&buf, what);
          pair_free(&param);
          pair_free(&buf);
          free(pv);
          free(bv);
        }
}

/* Same-dtype casts are moves with memmove semantics (overlap allowed), and
 * add may take its destination as source (doubling), as on the CPU. */
static void test_aliasing(void **state) {
  const size_t n = 1000003;
  const size_t shifts[] = {1, 3, 4097};
  for (int a = 0; a < NDT; a++)
    for (int s = 0; s < 3; s++)
      for (int dir = 0; dir < 2; dir++) {
        float *v = rand_vals(n, -10.0f, 10.0f);
        pair buf;
        pair_make(&buf, dts[a], n, v);
        size_t k = shifts[s], m = n - k;
        size_t doff = dir ? k : 0, soff = dir ? 0 : k;
        assert_int_equal(cpu.i->cast(cpu.self, at(buf.h, dts[a], doff), dts[a], at(buf.h, dts[a], soff), dts[a], m),
                         SHARDRT_OK);
        assert_int_equal(gpu.i->cast(gpu.self, at(buf.d, dts[a], doff), dts[a], at(buf.d, dts[a], soff), dts[a], m),
                         SHARDRT_OK);
        char what[64];
        snprintf(what, sizeof what, "overlapping cast by %zu %s", k, dir ? "up" : "down");
        expect_pair_exact(&buf, what);
        pair_free(&buf);
        free(v);
      }
  for (int a = 0; a < NDT; a++)
    for (size_t off = 0; off < 2; off++) {
      float *v = rand_vals(n, -10.0f, 10.0f);
      pair buf;
      pair_make(&buf, dts[a], n, v);
      void *h = at(buf.h, dts[a], off), *d = at(buf.d, dts[a], off);
      assert_int_equal(cpu.i->add(cpu.self, h, dts[a], h, dts[a], n - off), SHARDRT_OK);
      assert_int_equal(gpu.i->add(gpu.self, d, dts[a], d, dts[a], n - off), SHARDRT_OK);
      char what[64];
      snprintf(what, sizeof what, "add into itself off %zu", off);
      expect_pair_exact(&buf, what);
      pair_free(&buf);
      free(v);
    }
}

/* Indices past 2^31 elements (byte offsets past 2^32): a 4 GiB bf16 buffer,
 * zero except for known values at both ends, scaled, doubled and normed on
 * the vector path and on a misaligned (scalar) sub-range. The ends are
 * compared with the CPU twin run on the same values. */
static void test_huge_index(void **state) {
  const size_t n = ((size_t)1 << 31) + 9, ends = 64;
  void *d = NULL;
  shardrt_status rc = gpu.i->alloc(gpu.self, n * 2, &d);
  if (rc == SHARDRT_ERR_OUT_OF_MEMORY) {
    print_message("  no room for a 4 GiB buffer on this GPU: skipped\n");
    skip();
  }
  assert_int_equal(rc, SHARDRT_OK);
  float *v = rand_vals(2 * ends, 0.5f, 8.0f);
  uint16_t head[64], tail[64], got[64];
  shardrt_convert(head, SHARDRT_BF16, v, SHARDRT_F32, ends);
  shardrt_convert(tail, SHARDRT_BF16, v + ends, SHARDRT_F32, ends);
  assert_int_equal(gpu.i->fill_zero(gpu.self, d, n * 2), SHARDRT_OK);
  assert_int_equal(gpu.i->copy(gpu.self, d, head, sizeof head, SHARDRT__H2D), SHARDRT_OK);
  assert_int_equal(gpu.i->copy(gpu.self, at(d, SHARDRT_BF16, n - ends), tail, sizeof tail, SHARDRT__H2D), SHARDRT_OK);
  for (int mis = 0; mis < 2; mis++) {
    /* mis: the range starts one element in, so only the scalar loop runs */
    size_t o = (size_t)mis, m = n - o;
    void *dd = at(d, SHARDRT_BF16, o);
    assert_int_equal(gpu.i->scale(gpu.self, dd, SHARDRT_BF16, m, 2.0f), SHARDRT_OK);
    assert_int_equal(gpu.i->add(gpu.self, dd, SHARDRT_BF16, dd, SHARDRT_BF16, m), SHARDRT_OK);
    assert_int_equal(cpu.i->scale(cpu.self, head + o, SHARDRT_BF16, ends - o, 2.0f), SHARDRT_OK);
    assert_int_equal(cpu.i->add(cpu.self, head + o, SHARDRT_BF16, head + o, SHARDRT_BF16, ends - o), SHARDRT_OK);
    assert_int_equal(cpu.i->scale(cpu.self, tail, SHARDRT_BF16, ends, 2.0f), SHARDRT_OK);
    assert_int_equal(cpu.i->add(cpu.self, tail, SHARDRT_BF16, tail, SHARDRT_BF16, ends), SHARDRT_OK);
    assert_int_equal(gpu.i->copy(gpu.self, got, d, sizeof got, SHARDRT__D2H), SHARDRT_OK);
    if (memcmp(got, head, sizeof head) != 0) fail_msg("pass %d: the first %zu elements differ from the CPU", mis, ends);
    assert_int_equal(gpu.i->copy(gpu.self, got, at(d, SHARDRT_BF16, n - ends), sizeof got, SHARDRT__D2H), SHARDRT_OK);
    if (memcmp(got, tail, sizeof tail) != 0)
      fail_msg("pass %d: the last %zu elements (past index 2^31) differ from the CPU", mis, ends);
    double want = 0, want_h = 0, norm = -1;
    assert_int_equal(cpu.i->sqnorm(cpu.self, tail, SHARDRT_BF16, ends, &want), SHARDRT_OK);
    assert_int_equal(cpu.i->sqnorm(cpu.self, head + o, SHARDRT_BF16, ends - o, &want_h), SHARDRT_OK);
    want += want_h;
    assert_int_equal(gpu.i->sqnorm(gpu.self, dd, SHARDRT_BF16, m, &norm), SHARDRT_OK);
    if (!close_enough(norm, want, 1e-12, 0.0))
      fail_msg("pass %d: sqnorm over %zu elements is %.17g, the nonzero ends give %.17g", mis, m, norm, want);
  }
  gpu.i->free(gpu.self, d);
  free(v);
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
      cmocka_unit_test(test_adamw),   cmocka_unit_test(test_sgd),          cmocka_unit_test(test_aliasing),
      cmocka_unit_test(test_huge_index),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
