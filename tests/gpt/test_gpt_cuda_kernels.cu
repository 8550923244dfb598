/* SPDX-License-Identifier: Apache-2.0 */
/* Each kernel of the GPT's bf16 and fp16 paths (one template, run for
 * both storage types), and each cuBLASLt product shape and epilogue they
 * use, and the fp32 path's cross-entropy over the padded vocabulary,
 * against a CPU twin (gpt_cpu_ops.h or a double-precision loop here).
 * Inputs are values of the storage type, so the only differences are fp32
 * arithmetic order and the final 16-bit store. Exits 77 without a GPU.
 *
 * Tolerances, per dtype: a store rounds to the type's significant bits (8
 * for bf16, 11 for fp16), and an fp32 value a few ulps from a rounding
 * boundary may round the other way on the other side, so an output may
 * differ from the rounded CPU value by one ulp of its type: |d| <= 2^-7 |x|
 * for bf16, 2^-10 |x| for fp16 (an ulp of x in [2^e, 2^(e+1)) is 2^(e-7),
 * resp. 2^(e-10)); below 2^-14 fp16 is subnormal with a fixed ulp of 2^-24,
 * so fp16 adds 2^-24 absolute; plus an absolute floor for values near zero
 * where fp32 cancellation dominates, noted at each use. fp32 outputs
 * (LayerNorm statistics, log-sum-exp, losses, column sums, products with
 * fp32 output) agree to fp32 summation order: K terms accumulate at most
 * K * 2^-24 of the sum of |terms| (bound used with K up to 384 below:
 * 1e-5 relative to that sum), whatever the storage type. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <type_traits>
extern "C" {
#include <cmocka.h>
}

#include "gpt_cpu_ops.h"
#include "gpt_kernels.cuh"
#include "gpt_kernels_lp.cuh"
#include "gpt_lt.cuh"
#include "shardrt/types.h"

static uint64_t g_seed = 11;
static float urand(float lo, float hi) {
  g_seed = g_seed * 6364136223846793005ull + 1442695040888963407ull;
  return lo + (hi - lo) * (float)(g_seed >> 40) / (float)(1ull << 24);
}
/* host side of a storage type: its rounding (the runtime's, round to
 * nearest even as the device's), and the tolerance of one ulp */
template <typename LP> struct host_lp;
template <> struct host_lp<gpt_bf16> {
  static uint16_t bits(float v) { return shardrt_f32_to_bf16(v); }
  static float val(uint16_t h) { return shardrt_bf16_to_f32(h); }
  static constexpr int ulp_exp = -7;       /* one ulp <= 2^-7 |x| */
  static constexpr float ulp_floor = 0.0f; /* no subnormals in the ranges used */
  static constexpr const char *name = "bf16";
};
template <> struct host_lp<gpt_f16> {
  static uint16_t bits(float v) { return shardrt_f32_to_f16(v); }
  static float val(uint16_t h) { return shardrt_f16_to_f32(h); }
  static constexpr int ulp_exp = -10;
  static constexpr float ulp_floor = 5.9604645e-8f; /* 2^-24, the subnormal ulp */
  static constexpr const char *name = "fp16";
};
#define rb(v) host_lp<LP>::val(host_lp<LP>::bits(v))
#define to_bits(v) host_lp<LP>::bits(v)
#define from_bits(h) host_lp<LP>::val(h)

#define CU(x) assert_int_equal((int)(x), (int)cudaSuccess)

template <typename T> static T *dev_copy(const T *h, size_t n) {
  T *d = NULL;
  CU(cudaMalloc((void **)&d, n * sizeof(T) + 16));
  CU(cudaMemcpy(d, h, n * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}
template <typename T> static void host_copy(T *h, const T *d, size_t n) {
  CU(cudaDeviceSynchronize());
  CU(cudaMemcpy(h, d, n * sizeof(T), cudaMemcpyDeviceToHost));
}

/* LP output vs the rounded CPU value: one ulp of LP, plus `floor` absolute */
template <typename LP>
static void check_lp(const char *what, const uint16_t *got, const float *want, size_t n, float floor) {
  floor += host_lp<LP>::ulp_floor;
  for (size_t i = 0; i < n; i++) {
    float g = from_bits(got[i]), w = want[i];
    if (!(fabsf(g - w) <= ldexpf(fabsf(w), host_lp<LP>::ulp_exp) + floor))
      fail_msg("%s %s[%zu]: gpu %.8g cpu %.8g (allowed one ulp + %g)", host_lp<LP>::name, what, i, g, w, floor);
  }
}

template <typename LP> static void test_cast_bit_exact(void **state) {
  (void)state;
  const int n = 4099; /* not a multiple of the block */
  float *h = (float *)malloc(n * sizeof(float));
  uint16_t *got = (uint16_t *)malloc(n * 2);
  /* tiny values (0 in fp16), fp16 subnormals (below 2^-14 ~ 6e-5) and
   * values past fp16's 65504 (inf): the rounding, underflow and overflow
   * must match the host's bit for bit too */
  for (int i = 0; i < n; i++)
    h[i] = urand(-4, 4) * (i % 7 == 0 ? 1e-30f : i % 5 == 1 ? 1e-5f : i % 11 == 2 ? 3e4f : 1.0f);
  float *d = dev_copy(h, n);
  LP *o;
  CU(cudaMalloc((void **)&o, n * 2));
  CU(gpt_k_f32_to_lp(o, d, n, 0));
  host_copy(got, (const uint16_t *)o, n);
  for (int i = 0; i < n; i++) assert_int_equal(got[i], to_bits(h[i])); /* both round to nearest even */
  cudaFree(d), cudaFree(o), free(h), free(got);
}

template <typename LP> static void test_layernorm_forward(void **state) {
  (void)state;
  const int N = 37, C = 48; /* C not a multiple of the warp */
  float *x = (float *)malloc(N * C * 4), *w = (float *)malloc(C * 4), *b = (float *)malloc(C * 4);
  float *out = (float *)malloc(N * C * 4), *mean = (float *)malloc(N * 4), *rstd = (float *)malloc(N * 4);
  for (int i = 0; i < N * C; i++) x[i] = urand(-2, 2) + 3.0f; /* a mean far from 0 */
  for (int c = 0; c < C; c++) w[c] = urand(0.5f, 1.5f), b[c] = urand(-0.2f, 0.2f);
  gpt_layernorm_forward(out, mean, rstd, x, w, b, N, C);
  for (int i = 0; i < N * C; i++) out[i] = rb(out[i]);
  float *dx = dev_copy(x, N * C), *dw = dev_copy(w, C), *db = dev_copy(b, C), *dm, *dr;
  LP *dout;
  CU(cudaMalloc((void **)&dout, N * C * 2));
  CU(cudaMalloc((void **)&dm, N * 4));
  CU(cudaMalloc((void **)&dr, N * 4));
  CU(gpt_k_layernorm_forward_lp(dout, dm, dr, dx, dw, db, N, C, 0));
  uint16_t *got = (uint16_t *)malloc(N * C * 2);
  float gm[37], gr[37];
  host_copy(got, (const uint16_t *)dout, N * C);
  host_copy(gm, dm, N);
  host_copy(gr, dr, N);
  check_lp<LP>("layernorm out", got, out, N * C, 1e-6f); /* outputs are O(1) */
  for (int i = 0; i < N; i++) {
    /* fp32 statistics of 48 values around 3 vs the CPU's double: 1e-5 */
    assert_true(fabsf(gm[i] - mean[i]) <= 1e-5f * fabsf(mean[i]));
    assert_true(fabsf(gr[i] - rstd[i]) <= 1e-5f * fabsf(rstd[i]));
  }
  cudaFree(dx), cudaFree(dw), cudaFree(db), cudaFree(dm), cudaFree(dr), cudaFree(dout);
  free(x), free(w), free(b), free(out), free(mean), free(rstd), free(got);
}

/* causal softmax forward and backward, T = 37 (ragged for the warp) */
template <typename LP> static void test_softmax(void **state) {
  (void)state;
  const int BNH = 3, T = 37, n = BNH * T * T;
  const float scale = 0.25f;
  float *sc = (float *)malloc(n * 4), *p = (float *)malloc(n * 4), *da = (float *)malloc(n * 4);
  float *dp = (float *)malloc(n * 4);
  for (int i = 0; i < n; i++) sc[i] = urand(-6, 6), da[i] = urand(-1, 1);
  for (int r = 0; r < BNH * T; r++) {
    int i = r % T;
    double mx = -1e30, z = 0;
    for (int j = 0; j <= i; j++) mx = fmax(mx, (double)sc[(size_t)r * T + j] * scale);
    for (int j = 0; j <= i; j++) z += exp((double)sc[(size_t)r * T + j] * scale - mx);
    for (int j = 0; j < T; j++)
      p[(size_t)r * T + j] = j <= i ? rb((float)(exp((double)sc[(size_t)r * T + j] * scale - mx) / z)) : 0.0f;
  }
  /* backward from the bf16 probabilities the GPU stored */
  for (int r = 0; r < BNH * T; r++) {
    int i = r % T;
    double dot = 0;
    for (int j = 0; j <= i; j++) dot += (double)p[(size_t)r * T + j] * da[(size_t)r * T + j];
    for (int j = 0; j < T; j++)
      dp[(size_t)r * T + j] =
          j <= i ? rb((float)(scale * p[(size_t)r * T + j] * (da[(size_t)r * T + j] - dot))) : 0.0f;
  }
  float *dsc = dev_copy(sc, n), *dda = dev_copy(da, n);
  LP *datt, *ddp;
  CU(cudaMalloc((void **)&datt, n * 2));
  CU(cudaMalloc((void **)&ddp, n * 2));
  CU(gpt_k_softmax_causal_forward_lp(datt, dsc, scale, BNH, T, 0));
  uint16_t *got = (uint16_t *)malloc(n * 2);
  host_copy(got, (const uint16_t *)datt, n);
  /* __expf is 2 fp32 ulps: far inside one bf16 ulp; probabilities are
   * >= e^-3 / 37 here, so no absolute floor is needed */
  check_lp<LP>("softmax", got, p, n, 0.0f);
  /* the backward reads the GPU's probabilities; make them the CPU's exactly */
  uint16_t *pb = (uint16_t *)malloc(n * 2);
  for (int i = 0; i < n; i++) pb[i] = to_bits(p[i]);
  CU(cudaMemcpy(datt, pb, n * 2, cudaMemcpyHostToDevice));
  CU(gpt_k_softmax_causal_backward_lp(ddp, datt, dda, scale, BNH, T, 0));
  host_copy(got, (const uint16_t *)ddp, n);
  /* the difference (da - dot) cancels: an fp32 dot of 37 terms is off by
   * ~37 * 2^-24, times scale * p <= 0.25 -> 1e-6 absolute floor */
  check_lp<LP>("softmax backward", got, dp, n, 1e-6f);
  cudaFree(dsc), cudaFree(dda), cudaFree(datt), cudaFree(ddp);
  free(sc), free(p), free(da), free(dp), free(got), free(pb);
}

/* fused classifier over a padded vocabulary: V = 301 in rows of 384 */
template <typename LP> static void test_classifier(void **state) {
  (void)state;
  const int N = 5, V = 301, Vp = gpt_padded_vocab(V);
  assert_int_equal(Vp, 384);
  const float dloss = 1.0f / 7.0f;
  uint16_t *lg = (uint16_t *)malloc(N * Vp * 2);
  int tg[5] = {0, 300, 17, 150, 299};
  for (int i = 0; i < N * Vp; i++) lg[i] = to_bits(i % Vp < V ? urand(-8, 8) : 1e4f); /* garbage padding */
  LP *dl = dev_copy((const LP *)lg, N * Vp);
  int *dt = dev_copy(tg, N);
  float *dlse, *dloss_v;
  CU(cudaMalloc((void **)&dlse, N * 4));
  CU(cudaMalloc((void **)&dloss_v, N * 4));
  CU(gpt_k_classifier_forward_lp(dlse, dloss_v, dl, dt, N, V, Vp, 0));
  CU(gpt_k_classifier_backward_lp(dl, dlse, dt, dloss, N, V, Vp, 0));
  float lse[5], loss[5];
  uint16_t *got = (uint16_t *)malloc(N * Vp * 2);
  host_copy(lse, dlse, N);
  host_copy(loss, dloss_v, N);
  host_copy(got, (const uint16_t *)dl, N * Vp);
  float *want = (float *)malloc(N * Vp * 4);
  for (int r = 0; r < N; r++) {
    double mx = -1e30, z = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, from_bits(lg[r * Vp + v]));
    for (int v = 0; v < V; v++) z += exp(from_bits(lg[r * Vp + v]) - mx);
    double l = log(z) + mx;
    /* fp32 sum of 301 exps (<= 1 each) and expf/logf: 1e-5 relative */
    assert_true(fabs(lse[r] - l) <= 1e-5 * fabs(l));
    assert_true(fabs(loss[r] - (l - from_bits(lg[r * Vp + tg[r]]))) <= 1e-5 * fabs(l));
    for (int v = 0; v < Vp; v++)
      want[r * Vp + v] =
          v < V ? rb((float)((exp(from_bits(lg[r * Vp + v]) - l) - (v == tg[r])) * dloss)) : 0.0f;
  }
  /* exp(x - lse) in fp32 with lse ~1e-6 relative off: ~1e-5 relative on
   * each probability, inside one bf16 ulp except near 0: floor 1e-7 */
  check_lp<LP>("dlogits", got, want, N * Vp, 1e-7f);
  for (int r = 0; r < N; r++)
    for (int v = V; v < Vp; v++) assert_int_equal(got[r * Vp + v], 0); /* padding: exactly no gradient */
  cudaFree(dl), cudaFree(dt), cudaFree(dlse), cudaFree(dloss_v);
  free(lg), free(got), free(want);
}

/* The fp32 path's cross-entropy over the padded vocabulary (V = 301 in
 * rows of 384, garbage in the padding): the padding must stay out of the
 * log-sum-exp, come out as probability 0 and get exactly no gradient.
 * fp32 throughout: expf/logf and a 301-term fp32 sum, 1e-5 relative (the
 * file's fp32 bound). */
static void test_crossentropy_f32_padded(void **state) {
  (void)state;
  const int N = 5, V = 301, Vp = gpt_padded_vocab(V);
  const float dloss = 1.0f / 7.0f;
  float *lg = (float *)malloc(N * Vp * 4), *got = (float *)malloc(N * Vp * 4);
  int tg[5] = {0, 300, 17, 150, 299};
  for (int i = 0; i < N * Vp; i++) lg[i] = i % Vp < V ? urand(-8, 8) : 1e4f;
  float *dl = dev_copy(lg, N * Vp), *dlosses;
  int *dt = dev_copy(tg, N);
  CU(cudaMalloc((void **)&dlosses, N * 4));
  CU(gpt_k_crossentropy_forward(dl, dlosses, dt, N, V, Vp, 0));
  float loss[5];
  host_copy(loss, dlosses, N);
  host_copy(got, dl, N * Vp);
  double p[384];
  for (int r = 0; r < N; r++) {
    double mx = -1e30, z = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, lg[r * Vp + v]);
    for (int v = 0; v < V; v++) z += exp(lg[r * Vp + v] - mx);
    double l = log(z) + mx;
    assert_true(fabs(loss[r] - (l - lg[r * Vp + tg[r]])) <= 1e-5 * fabs(l));
    for (int v = 0; v < V; v++) {
      p[v] = exp(lg[r * Vp + v] - l);
      if (!(fabs(got[r * Vp + v] - p[v]) <= 1e-5 * p[v] + 1e-12))
        fail_msg("probs[%d][%d]: gpu %.9g cpu %.9g", r, v, got[r * Vp + v], p[v]);
    }
    for (int v = V; v < Vp; v++) assert_true(got[r * Vp + v] == 0.0f);
  }
  CU(gpt_k_crossentropy_backward(dl, dt, dloss, N, V, Vp, 0));
  host_copy(got, dl, N * Vp);
  for (int r = 0; r < N; r++) {
    double mx = -1e30, z = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, lg[r * Vp + v]);
    for (int v = 0; v < V; v++) z += exp(lg[r * Vp + v] - mx);
    for (int v = 0; v < V; v++) {
      double want = (exp(lg[r * Vp + v] - mx) / z - (v == tg[r])) * dloss;
      if (!(fabs(got[r * Vp + v] - want) <= 1e-5 * fabs(want) + 1e-12))
        fail_msg("dlogits[%d][%d]: gpu %.9g cpu %.9g", r, v, got[r * Vp + v], want);
    }
    for (int v = V; v < Vp; v++) assert_true(got[r * Vp + v] == 0.0f); /* padding: exactly no gradient */
  }
  cudaFree(dl), cudaFree(dt), cudaFree(dlosses);
  free(lg), free(got);
}

template <typename LP> static void test_bias_backward_and_gelu(void **state) {
  (void)state;
  const int N = 111, OC = 144;
  uint16_t *d = (uint16_t *)malloc(N * OC * 2), *pre = (uint16_t *)malloc(N * OC * 2);
  float *pref = (float *)malloc(N * OC * 4), *gl = (float *)malloc(N * OC * 4), *want = (float *)malloc(N * OC * 4);
  float db[144], start[144];
  for (int i = 0; i < N * OC; i++) d[i] = to_bits(urand(-1, 1)), pre[i] = to_bits(urand(-4, 4));
  for (int c = 0; c < OC; c++) start[c] = urand(-1, 1);
  LP *dd = dev_copy((const LP *)d, N * OC), *dpre = dev_copy((const LP *)pre, N * OC), *dout;
  float *ddb = dev_copy(start, OC);
  CU(cudaMalloc((void **)&dout, N * OC * 2));
  CU(gpt_k_bias_backward_lp(ddb, dd, N, OC, 0));
  host_copy(db, ddb, OC);
  for (int c = 0; c < OC; c++) {
    double s = start[c], mag = fabs(start[c]);
    for (int i = 0; i < N; i++) s += from_bits(d[i * OC + c]), mag += fabs(from_bits(d[i * OC + c]));
    assert_true(fabs(db[c] - s) <= 1e-5 * mag); /* ADDED to the start, fp32 sum of 111 terms */
  }
  /* GELU forward and backward (the fallbacks of the cuBLASLt epilogues) */
  for (int i = 0; i < N * OC; i++) pref[i] = from_bits(pre[i]);
  gpt_gelu_forward(gl, pref, N * OC);
  for (int i = 0; i < N * OC; i++) want[i] = rb(gl[i]);
  CU(gpt_k_gelu_forward_lp(dout, dpre, N * OC, 0));
  uint16_t *got = (uint16_t *)malloc(N * OC * 2);
  host_copy(got, (const uint16_t *)dout, N * OC);
  check_lp<LP>("gelu", got, want, N * OC, 1e-6f); /* tanhf vs the CPU's tanhf: ~1 fp32 ulp */
  float *dy = (float *)malloc(N * OC * 4);
  for (int i = 0; i < N * OC; i++) dy[i] = from_bits(d[i]);
  gpt_gelu_backward(gl, pref, dy, N * OC);
  for (int i = 0; i < N * OC; i++) want[i] = rb(gl[i]);
  CU(gpt_k_gelu_backward_inplace_lp(dd, dpre, N * OC, 0));
  host_copy(got, (const uint16_t *)dd, N * OC);
  check_lp<LP>("gelu backward", got, want, N * OC, 1e-6f);
  cudaFree(dd), cudaFree(dpre), cudaFree(dout), cudaFree(ddb);
  free(d), free(pre), free(pref), free(gl), free(want), free(got), free(dy);
}

/* cuBLASLt: LP operands (bf16 or fp16), fp32 or LP output (OUT), every
 * epilogue and transpose the model uses, against a double-precision
 * row-major loop. GELU here is the tanh form: an erf-based GELU differs by
 * up to ~1e-3 and fails. Tolerance: fp32 accumulation order (1e-5 of the
 * sum of |terms|, as above), plus one ulp of LP when the output is LP. */
template <typename OUT> struct out_type;
template <> struct out_type<float> {
  static float val(float v) { return v; }
  static float store(float v) { return v; }
};
template <> struct out_type<gpt_bf16> {
  static float val(uint16_t h) { return host_lp<gpt_bf16>::val(h); }
  static uint16_t store(float v) { return host_lp<gpt_bf16>::bits(v); }
};
template <> struct out_type<gpt_f16> {
  static float val(uint16_t h) { return host_lp<gpt_f16>::val(h); }
  static uint16_t store(float v) { return host_lp<gpt_f16>::bits(v); }
};
template <typename T> struct cuda_type;
template <> struct cuda_type<float> { static constexpr cudaDataType_t v = CUDA_R_32F; };
template <> struct cuda_type<gpt_bf16> { static constexpr cudaDataType_t v = CUDA_R_16BF; };
template <> struct cuda_type<gpt_f16> { static constexpr cudaDataType_t v = CUDA_R_16F; };

template <typename LP, typename OUT>
static void run_lt_case(gpt_lt *lt, bool ta, bool tb, int M, int N, int K, int ldpad, gpt_epi epi, float beta) {
  /* host images of OUT tensors: float, or the 16-bit bits */
  typedef typename std::conditional<std::is_same<OUT, float>::value, float, uint16_t>::type HO;
  const bool lp_out = !std::is_same<OUT, float>::value;
  gpt_rm_gemm g = {ta, tb, M, N, K, (ta ? M : K) + ldpad, (tb ? K : N), N};
  const int arows = ta ? K : M, brows = tb ? N : K;
  uint16_t *A = (uint16_t *)malloc((size_t)arows * g.lda * 2), *B = (uint16_t *)malloc((size_t)brows * g.ldb * 2);
  HO *C = (HO *)malloc((size_t)M * N * sizeof(HO)), *bias = (HO *)malloc(N * sizeof(HO));
  HO *aux = (HO *)malloc((size_t)M * N * sizeof(HO));
  for (int i = 0; i < arows * g.lda; i++) A[i] = to_bits(urand(-1, 1));
  for (int i = 0; i < brows * g.ldb; i++) B[i] = to_bits(urand(-1, 1));
  /* the DGELU input is an LP value either way (the model saves it in LP) */
  for (int i = 0; i < M * N; i++) C[i] = out_type<OUT>::store(urand(-1, 1)), aux[i] = out_type<OUT>::store(rb(urand(-3, 3)));
  for (int i = 0; i < N; i++) bias[i] = out_type<OUT>::store(urand(-0.5f, 0.5f));
  LP *dA = dev_copy((const LP *)A, (size_t)arows * g.lda), *dB = dev_copy((const LP *)B, (size_t)brows * g.ldb);
  HO *dC = dev_copy(C, (size_t)M * N), *dbias = dev_copy(bias, N), *daux = dev_copy(aux, (size_t)M * N), *dD;
  CU(cudaMalloc((void **)&dD, (size_t)M * N * sizeof(HO)));
  gpt_lt_call c;
  memset(&c, 0, sizeof c);
  c.g = g;
  c.ab = cuda_type<LP>::v;
  c.cd = cuda_type<OUT>::v;
  c.A = dA, c.B = dB, c.alpha = 1.0f, c.beta = beta, c.C = dC, c.D = dD;
  c.epi = epi, c.bias = dbias, c.aux = daux, c.ld_aux = N;
  char err[256];
  int rc = gpt_lt_matmul(lt, &c, 0, err, sizeof err);
  if (rc != 0)
    fail_msg("%s gpt_lt_matmul %dx%dx%d ta %d tb %d epi %d out %s: rc %d %s", host_lp<LP>::name, M, N, K, ta, tb, epi,
             lp_out ? host_lp<LP>::name : "fp32", rc, err);
  HO *D = (HO *)malloc((size_t)M * N * sizeof(HO)), *X = (HO *)malloc((size_t)M * N * sizeof(HO));
  host_copy(D, dD, (size_t)M * N);
  host_copy(X, daux, (size_t)M * N);
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double acc = 0, mag = 0;
      for (int l = 0; l < K; l++) {
        double a = from_bits(ta ? A[(size_t)l * g.lda + i] : A[(size_t)i * g.lda + l]);
        double b = from_bits(tb ? B[(size_t)j * g.ldb + l] : B[(size_t)l * g.ldb + j]);
        acc += a * b, mag += fabs(a * b);
      }
      double want = acc + beta * out_type<OUT>::val(C[(size_t)i * N + j]);
      double got = out_type<OUT>::val(D[(size_t)i * N + j]), tol = 1e-5 * (mag + 1);
      if (epi == GPT_EPI_BIAS || epi == GPT_EPI_GELU_AUX_BIAS) want += out_type<OUT>::val(bias[j]);
      if (epi == GPT_EPI_GELU_AUX_BIAS) {
        double x = out_type<OUT>::val(X[(size_t)i * N + j]);
        double xtol = tol + (lp_out ? ldexp(fabs(want), host_lp<LP>::ulp_exp) + host_lp<LP>::ulp_floor : 0.0);
        if (!(fabs(x - want) <= xtol)) fail_msg("aux (%d,%d): %g vs %g", i, j, x, want);
        x = want;
        want = 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
        tol *= 1.2; /* gelu' <= 1.13 carries the pre-activation's error */
        /* with LP output, GELU may be applied to the fp32 pre-activation or
         * to its LP rounding: up to gelu' <= 1.13 times one ulp of x more */
        if (lp_out) tol += 1.13 * (ldexp(fabs(x), host_lp<LP>::ulp_exp) + host_lp<LP>::ulp_floor);
      } else if (epi == GPT_EPI_DGELU) {
        double x = out_type<OUT>::val(aux[(size_t)i * N + j]), t = tanh(0.7978845608028654 * (x + 0.044715 * x * x * x));
        want *= 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * x * x);
        tol *= 1.2; /* gelu' <= 1.13 */
      }
      if (lp_out) tol += ldexp(fabs(want), host_lp<LP>::ulp_exp) + host_lp<LP>::ulp_floor; /* the final store */
      if (!(fabs(got - want) <= tol))
        fail_msg("%s %dx%dx%d ta %d tb %d epi %d beta %g out %s: D(%d,%d) gpu %.8g want %.8g", host_lp<LP>::name, M, N,
                 K, ta, tb, epi, beta, lp_out ? host_lp<LP>::name : "fp32", i, j, got, want);
    }
  cudaFree(dA), cudaFree(dB), cudaFree(dC), cudaFree(dbias), cudaFree(daux), cudaFree(dD);
  free(A), free(B), free(C), free(bias), free(aux), free(D), free(X);
}

template <typename LP> static void test_lt_products(void **state) {
  (void)state;
  gpt_lt lt;
  char err[256];
  if (gpt_lt_init(&lt, err, sizeof err)) fail_msg("%s", err);
  /* the model's products in miniature: forward (tb), dinp (none), dW (ta,
   * beta 1 accumulating), head dW with the padded logits stride; fp32
   * output where the model adds into the fp32 residual or gradients, LP
   * output where a product feeds another product */
  run_lt_case<LP, float>(&lt, false, true, 64, 96, 32, 0, GPT_EPI_BIAS, 0.0f);
  run_lt_case<LP, float>(&lt, false, true, 64, 32, 32, 0, GPT_EPI_BIAS, 1.0f); /* residual fused */
  run_lt_case<LP, float>(&lt, false, true, 64, 128, 32, 0, GPT_EPI_GELU_AUX_BIAS, 0.0f);
  run_lt_case<LP, float>(&lt, false, false, 64, 128, 32, 0, GPT_EPI_DGELU, 0.0f);
  run_lt_case<LP, float>(&lt, false, false, 64, 32, 384, 0, GPT_EPI_NONE, 0.0f);
  run_lt_case<LP, float>(&lt, true, false, 301, 32, 64, 83, GPT_EPI_NONE, 1.0f); /* lda 384 for M 301 */
  run_lt_case<LP, LP>(&lt, false, true, 64, 96, 32, 0, GPT_EPI_BIAS, 0.0f);      /* c_attn */
  run_lt_case<LP, LP>(&lt, false, true, 64, 128, 32, 0, GPT_EPI_GELU_AUX_BIAS, 0.0f); /* c_fc + GELU */
  run_lt_case<LP, LP>(&lt, false, false, 64, 128, 32, 0, GPT_EPI_DGELU, 0.0f);   /* mlp.c_proj dinp + GELU' */
  run_lt_case<LP, LP>(&lt, false, true, 64, 384, 32, 0, GPT_EPI_NONE, 0.0f);     /* logits */
  long misses = lt.cache.misses;
  run_lt_case<LP, float>(&lt, false, true, 64, 96, 32, 0, GPT_EPI_BIAS, 0.0f); /* same key: cached */
  assert_int_equal(lt.cache.misses, misses);
  assert_true(lt.cache.hits >= 1);
  gpt_lt_free(&lt);
}

int main(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n <= 0) {
    fprintf(stderr, "test_gpt_cuda_kernels: no usable GPU: skipped\n");
    return 77;
  }
#define BOTH(t) cmocka_unit_test(t<gpt_bf16>), cmocka_unit_test(t<gpt_f16>)
  const struct CMUnitTest tests[] = {
      BOTH(test_cast_bit_exact), BOTH(test_layernorm_forward),      BOTH(test_softmax),
      BOTH(test_classifier),     BOTH(test_bias_backward_and_gelu), BOTH(test_lt_products),
      cmocka_unit_test(test_crossentropy_f32_padded),
  };
#undef BOTH
  return cmocka_run_group_tests(tests, NULL, NULL);
}
