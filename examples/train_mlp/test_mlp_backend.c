/* SPDX-License-Identifier: Apache-2.0 */
/* The train_mlp backends: the cpu table against a naive double-precision
 * reference, its dtype views and input checks; in CUDA builds on a machine
 * with a GPU, every cuda operation against the cpu one (its oracle). The
 * cuda cases skip without a GPU. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mlp.h"
#include "mlp_backend.h"

#ifdef EX_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

static uint64_t rng = 88172645463325252ull;
static float frand(void) { /* [-1, 1) */
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((double)(rng >> 11) / 4503599627370496.0 - 1.0);
}
static void fill(float *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = frand();
}

static void assert_close(const float *a, const float *b, size_t n, double tol, const char *what) {
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (d > tol * (1.0 + fabs((double)b[i]))) fail_msg("%s[%zu]: %.9g vs %.9g (tol %g)", what, i, a[i], b[i], tol);
  }
}

static mlp_backend cpu_be(void) {
  mlp_backend be;
  char err[128];
  assert_int_equal(mlp_backend_cpu_create(&be, err, sizeof err), 0);
  assert_string_equal(be.i->name, "cpu");
  return be;
}

/* ---- cpu backend against a naive reference ---- */

static void test_cpu_linear(void **st) {
  (void)st;
  mlp_backend be = cpu_be();
  enum { NB = 5, NI = 7, NO = 3 };
  float x[NB * NI], W[NO * NI], b[NO], y[NB * NO], dy[NB * NO], dx[NB * NI], dW[NO * NI], db[NO];
  fill(x, NB * NI), fill(W, NO * NI), fill(b, NO), fill(dy, NB * NO);
  fill(dW, NO * NI), fill(db, NO); /* backward ADDS into dW and db */
  float dW0[NO * NI], db0[NO];
  memcpy(dW0, dW, sizeof dW), memcpy(db0, db, sizeof db);
  assert_int_equal(be.i->linear_fwd(be.self, x, W, b, y, NB, NI, NO), 0);
  assert_int_equal(be.i->linear_bwd(be.self, x, W, dy, dx, dW, db, NB, NI, NO), 0);
  float ry[NB * NO], rdx[NB * NI], rdW[NO * NI], rdb[NO];
  for (int r = 0; r < NB; r++)
    for (int o = 0; o < NO; o++) {
      double s = b[o];
      for (int i = 0; i < NI; i++) s += (double)x[r * NI + i] * W[o * NI + i];
      ry[r * NO + o] = (float)s;
    }
  for (int r = 0; r < NB; r++)
    for (int i = 0; i < NI; i++) {
      double s = 0;
      for (int o = 0; o < NO; o++) s += (double)dy[r * NO + o] * W[o * NI + i];
      rdx[r * NI + i] = (float)s;
    }
  for (int o = 0; o < NO; o++) {
    double sb = db0[o];
    for (int r = 0; r < NB; r++) sb += dy[r * NO + o];
    rdb[o] = (float)sb;
    for (int i = 0; i < NI; i++) {
      double s = dW0[o * NI + i];
      for (int r = 0; r < NB; r++) s += (double)dy[r * NO + o] * x[r * NI + i];
      rdW[o * NI + i] = (float)s;
    }
  }
  assert_close(y, ry, NB * NO, 1e-5, "y");
  assert_close(dx, rdx, NB * NI, 1e-5, "dx");
  assert_close(dW, rdW, NO * NI, 1e-5, "dW");
  assert_close(db, rdb, NO, 1e-5, "db");
  /* dx may be NULL (the first layer has no input gradient). */
  assert_int_equal(be.i->linear_bwd(be.self, x, W, dy, NULL, dW, db, NB, NI, NO), 0);
  mlp_backend_destroy(&be);
  assert_null(be.i);
}

static void test_cpu_relu_xent(void **st) {
  (void)st;
  mlp_backend be = cpu_be();
  float y[6] = {-1, 0, 2, -3, 4, 0.5f}, dy[6] = {1, 1, 1, 1, 1, 1};
  assert_int_equal(be.i->relu_fwd(be.self, y, 6), 0);
  const float wy[6] = {0, 0, 2, 0, 4, 0.5f}, wdy[6] = {0, 0, 1, 0, 1, 1};
  assert_memory_equal(y, wy, sizeof y);
  assert_int_equal(be.i->relu_bwd(be.self, y, dy, 6), 0);
  assert_memory_equal(dy, wdy, sizeof dy);

  const float logits[2 * 3] = {1, 2, 3, 0, 0, 0};
  const int labels[2] = {2, 0};
  float d[6];
  double loss = 1.5; /* xent adds to what is there */
  assert_int_equal(be.i->xent(be.self, logits, labels, d, 2, 3, 0.5f, &loss), 0);
  double z0 = exp(1.0) + exp(2.0) + exp(3.0);
  double want = 1.5 + (log(z0) - 3.0) + log(3.0);
  assert_true(fabs(loss - want) < 1e-9);
  assert_true(fabs(d[2] - (exp(3.0) / z0 - 1) * 0.5) < 1e-6);
  assert_true(fabs(d[0] - exp(1.0) / z0 * 0.5) < 1e-6);
  assert_true(fabs(d[3] - (1.0 / 3 - 1) * 0.5) < 1e-6);
  mlp_backend_destroy(&be);
}

static void test_cpu_views(void **st) {
  (void)st;
  mlp_backend be = cpu_be();
  float vals[4] = {1.5f, -2.25f, 3.0e-3f, 1000.0f}, scratch[4] = {0};
  const float *out = NULL;
  shardrt_view v = {.data = vals, .dtype = SHARDRT_F32, .numel = 4};
  assert_int_equal(be.i->view_f32(be.self, &v, scratch, &out), 0);
  assert_ptr_equal(out, vals); /* fp32 views are read in place */

  uint16_t h[4];
  for (shardrt_dtype dt = SHARDRT_BF16; dt <= SHARDRT_F16; dt++) {
    for (int k = 0; k < 4; k++) h[k] = dt == SHARDRT_BF16 ? shardrt_f32_to_bf16(vals[k]) : shardrt_f32_to_f16(vals[k]);
    shardrt_view hv = {.data = h, .dtype = dt, .numel = 4};
    assert_int_equal(be.i->view_f32(be.self, &hv, scratch, &out), 0);
    assert_ptr_equal(out, scratch);
    for (int k = 0; k < 4; k++)
      assert_true(scratch[k] == (dt == SHARDRT_BF16 ? shardrt_bf16_to_f32(h[k]) : shardrt_f16_to_f32(h[k])));
    const float add[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    uint16_t before[4];
    memcpy(before, h, sizeof h);
    assert_int_equal(be.i->view_add_f32(be.self, &hv, add), 0);
    for (int k = 0; k < 4; k++) {
      uint16_t w = dt == SHARDRT_BF16 ? shardrt_f32_to_bf16(shardrt_bf16_to_f32(before[k]) + 0.5f)
                                      : shardrt_f32_to_f16(shardrt_f16_to_f32(before[k]) + 0.5f);
      assert_int_equal(h[k], w);
    }
  }
  const float add[4] = {1, 2, 3, 4};
  assert_int_equal(be.i->view_add_f32(be.self, &v, add), 0);
  assert_true(vals[0] == 2.5f && vals[3] == 1004.0f);

  shardrt_view bad = {.data = vals, .dtype = (shardrt_dtype)7, .numel = 4};
  assert_int_equal(be.i->view_f32(be.self, &bad, scratch, &out), -1);
  assert_non_null(strstr(be.i->error(be.self), "allowed: fp32, bf16, fp16"));
  assert_int_equal(be.i->view_add_f32(be.self, &bad, add), -1);
  mlp_backend_destroy(&be);
}

static void test_cpu_upload(void **st) {
  (void)st;
  mlp_backend be = cpu_be();
  float hx[2 * 3] = {1, 2, 3, 4, 5, 6};
  int hl[2] = {1, 3};
  float *x;
  int *l;
  assert_int_equal(be.i->alloc(be.self, sizeof hx, (void **)&x), 0);
  assert_int_equal(be.i->alloc(be.self, sizeof hl, (void **)&l), 0);
  assert_true(x[0] == 0 && x[5] == 0); /* zero-filled */
  assert_int_equal(be.i->upload(be.self, x, l, hx, hl, 2, 3, 4), 0);
  assert_memory_equal(x, hx, sizeof hx);
  assert_memory_equal(l, hl, sizeof hl);
  hl[1] = 4;
  assert_int_equal(be.i->upload(be.self, x, l, hx, hl, 2, 3, 4), -1);
  assert_string_equal(be.i->error(be.self), "batch row 1 has label 4, outside [0, 4)");
  be.i->release(be.self, x);
  be.i->release(be.self, l);
  be.i->release(be.self, NULL);
  mlp_backend_destroy(&be);
  mlp_backend_destroy(&be); /* twice and on NULL: no-ops */
  mlp_backend_destroy(NULL);
}

/* ---- cuda backend against the cpu one ---- */

#ifdef EX_HAVE_CUDA
static bool have_gpu(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

static mlp_backend gpu_be(void) {
  mlp_backend be;
  char err[256];
  if (mlp_backend_cuda_create(&be, NULL, err, sizeof err)) fail_msg("cuda backend: %s", err);
  assert_string_equal(be.i->name, "cuda");
  return be;
}

static void *up(mlp_backend *g, const void *h, size_t bytes) {
  void *d;
  if (g->i->alloc(g->self, bytes, &d)) fail_msg("%s", g->i->error(g->self));
  assert_int_equal(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}
static void down(void *h, const void *d, size_t bytes) {
  assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
  assert_int_equal(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
}

/* One layer forward, ReLU, cross-entropy and backward on both backends.
 * The backward adds into nonzero dW and db. */
static void layer_case(int NB, int NI, int NO) {
  mlp_backend c = cpu_be(), g = gpu_be();
  const size_t nx = (size_t)NB * NI, nw = (size_t)NO * NI, ny = (size_t)NB * NO;
  float *x = malloc(nx * sizeof *x), *W = malloc(nw * sizeof *W), *b = malloc(NO * sizeof *b);
  float *y = malloc(ny * sizeof *y), *d = malloc(ny * sizeof *d), *dx = malloc(nx * sizeof *dx);
  float *dW = malloc(nw * sizeof *dW), *db = malloc(NO * sizeof *db);
  float *gy = malloc(ny * sizeof *gy), *gd = malloc(ny * sizeof *gd), *gdx = malloc(nx * sizeof *gdx);
  float *gdW = malloc(nw * sizeof *gdW), *gdb = malloc(NO * sizeof *gdb);
  int *lab = malloc(NB * sizeof *lab);
  assert_true(x && W && b && y && d && dx && dW && db && gy && gd && gdx && gdW && gdb && lab);
  fill(x, nx), fill(W, nw), fill(b, NO), fill(dW, nw), fill(db, NO);
  for (int r = 0; r < NB; r++) lab[r] = (r * 7) % NO;
  float *Dx = up(&g, x, nx * sizeof *x), *DW = up(&g, W, nw * sizeof *W), *Db = up(&g, b, NO * sizeof *b);
  float *DdW = up(&g, dW, nw * sizeof *dW), *Ddb = up(&g, db, NO * sizeof *db);
  float *Dy, *Dd, *Ddx;
  int *Dl;
  assert_int_equal(g.i->alloc(g.self, ny * sizeof *y, (void **)&Dy), 0);
  assert_int_equal(g.i->alloc(g.self, ny * sizeof *d, (void **)&Dd), 0);
  assert_int_equal(g.i->alloc(g.self, nx * sizeof *dx, (void **)&Ddx), 0);
  assert_int_equal(g.i->alloc(g.self, NB * sizeof *lab, (void **)&Dl), 0);
  assert_int_equal(g.i->upload(g.self, Dx, Dl, x, lab, NB, NI, NO), 0);

  double lc = 0, lg = 0;
  assert_int_equal(c.i->linear_fwd(c.self, x, W, b, y, NB, NI, NO), 0);
  assert_int_equal(c.i->relu_fwd(c.self, y, (int64_t)ny), 0);
  assert_int_equal(c.i->xent(c.self, y, lab, d, NB, NO, 0.25f, &lc), 0);
  assert_int_equal(c.i->relu_bwd(c.self, y, d, (int64_t)ny), 0);
  assert_int_equal(c.i->linear_bwd(c.self, x, W, d, dx, dW, db, NB, NI, NO), 0);
  if (g.i->linear_fwd(g.self, Dx, DW, Db, Dy, NB, NI, NO) || g.i->relu_fwd(g.self, Dy, (int64_t)ny) ||
      g.i->xent(g.self, Dy, Dl, Dd, NB, NO, 0.25f, &lg) || g.i->relu_bwd(g.self, Dy, Dd, (int64_t)ny) ||
      g.i->linear_bwd(g.self, Dx, DW, Dd, Ddx, DdW, Ddb, NB, NI, NO))
    fail_msg("%s", g.i->error(g.self));
  down(gy, Dy, ny * sizeof *gy), down(gd, Dd, ny * sizeof *gd), down(gdx, Ddx, nx * sizeof *gdx);
  down(gdW, DdW, nw * sizeof *gdW), down(gdb, Ddb, NO * sizeof *gdb);
  assert_close(gy, y, ny, 1e-5, "y");
  assert_close(gd, d, ny, 1e-5, "dlogits");
  assert_close(gdx, dx, nx, 1e-5, "dx");
  assert_close(gdW, dW, nw, 1e-5, "dW");
  assert_close(gdb, db, NO, 1e-5, "db");
  assert_true(fabs(lg - lc) <= 1e-5 * fabs(lc));
  /* A bad label is refused before anything reaches the GPU. */
  lab[3] = NO;
  assert_int_equal(g.i->upload(g.self, Dx, Dl, x, lab, NB, NI, NO), -1);
  char want[64];
  snprintf(want, sizeof want, "batch row 3 has label %d", NO);
  assert_non_null(strstr(g.i->error(g.self), want));
  void *bufs[] = {Dx, DW, Db, DdW, Ddb, Dy, Dd, Ddx, Dl};
  for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++) g.i->release(g.self, bufs[k]);
  void *host[] = {x, W, b, y, d, dx, dW, db, gy, gd, gdx, gdW, gdb, lab};
  for (size_t k = 0; k < sizeof host / sizeof *host; k++) free(host[k]);
  mlp_backend_destroy(&g);
  mlp_backend_destroy(&c);
}

/* Shapes that are neither square nor a multiple of any tile; the second
 * has more classes than the cross-entropy block has threads. */
static void test_cuda_layer(void **st) {
  (void)st;
  if (!have_gpu()) skip();
  layer_case(37, 53, 29);
  layer_case(9, 17, 300);
}

/* Views of every dtype: the cast and the gradient add round exactly as the host. */
static void test_cuda_views(void **st) {
  (void)st;
  if (!have_gpu()) skip();
  mlp_backend g = gpu_be();
  enum { N = 1000 };
  static float v[N], add[N], out[N], scratch_h[N];
  static uint16_t h[N], hh[N];
  fill(v, N), fill(add, N);
  float *Dadd = up(&g, add, sizeof add), *Dscr;
  assert_int_equal(g.i->alloc(g.self, sizeof scratch_h, (void **)&Dscr), 0);
  const float *res = NULL;
  for (shardrt_dtype dt = SHARDRT_BF16; dt <= SHARDRT_F16; dt++) {
    for (int k = 0; k < N; k++) h[k] = dt == SHARDRT_BF16 ? shardrt_f32_to_bf16(v[k] * 100) : shardrt_f32_to_f16(v[k] * 100);
    void *Dh = up(&g, h, sizeof h);
    shardrt_view hv = {.data = Dh, .dtype = dt, .numel = N};
    assert_int_equal(g.i->view_f32(g.self, &hv, Dscr, &res), 0);
    assert_ptr_equal(res, Dscr);
    down(scratch_h, Dscr, sizeof scratch_h);
    for (int k = 0; k < N; k++)
      assert_true(scratch_h[k] == (dt == SHARDRT_BF16 ? shardrt_bf16_to_f32(h[k]) : shardrt_f16_to_f32(h[k])));
    assert_int_equal(g.i->view_add_f32(g.self, &hv, Dadd), 0);
    down(hh, Dh, sizeof hh);
    for (int k = 0; k < N; k++) {
      uint16_t w = dt == SHARDRT_BF16 ? shardrt_f32_to_bf16(shardrt_bf16_to_f32(h[k]) + add[k])
                                      : shardrt_f32_to_f16(shardrt_f16_to_f32(h[k]) + add[k]);
      if (hh[k] != w) fail_msg("%s add [%d]: 0x%04x vs 0x%04x", shardrt_dtype_name(dt), k, hh[k], w);
    }
    g.i->release(g.self, Dh);
  }
  float *Dv = up(&g, v, sizeof v);
  shardrt_view fv = {.data = Dv, .dtype = SHARDRT_F32, .numel = N};
  assert_int_equal(g.i->view_f32(g.self, &fv, Dscr, &res), 0);
  assert_ptr_equal(res, Dv);
  assert_int_equal(g.i->view_add_f32(g.self, &fv, Dadd), 0);
  down(out, Dv, sizeof out);
  for (int k = 0; k < N; k++) assert_true(out[k] == v[k] + add[k]);
  shardrt_view bad = {.data = Dv, .dtype = (shardrt_dtype)9, .numel = N};
  assert_int_equal(g.i->view_add_f32(g.self, &bad, Dadd), -1);
  assert_non_null(strstr(g.i->error(g.self), "allowed: fp32, bf16, fp16"));
  g.i->release(g.self, Dv), g.i->release(g.self, Dadd), g.i->release(g.self, Dscr);
  mlp_backend_destroy(&g);
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cpu_linear),
      cmocka_unit_test(test_cpu_relu_xent),
      cmocka_unit_test(test_cpu_views),
      cmocka_unit_test(test_cpu_upload),
#ifdef EX_HAVE_CUDA
      cmocka_unit_test(test_cuda_layer),
      cmocka_unit_test(test_cuda_views),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
