/* SPDX-License-Identifier: Apache-2.0 */
/* The CPU primitives. Elementwise passes are written as plain loops that
 * GCC vectorises at -O3 (no libm calls inside them: gpt_expf), built for
 * several ISAs with target_clones and picked at load time by the CPU, so
 * the shipped build runs anywhere and uses AVX-512 where it exists. The
 * file is compiled with -ffp-contract=off: no clone fuses a multiply-add
 * the baseline does not, so every clone gives the same bits. Loops over
 * rows are split across OpenMP threads (when built with OpenMP) only in
 * ways that keep each output's order of operations, so results do not
 * depend on the thread count either. Chunks are handed out dynamically: on
 * a shared machine a preempted thread then delays only its own chunk. */
#include "gpt_cpu_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define GPT_VEC __attribute__((target_clones("avx512f", "avx2", "default"), noinline))
#endif
#endif
#ifndef GPT_VEC
#define GPT_VEC
#endif

#ifdef _OPENMP
#define GPT_OMP(x) _Pragma(x)
#else
#define GPT_OMP(x)
#endif

/* Elements (or rows x width) per parallel chunk: below this a thread
 * hand-off costs more than the work. */
#define CHUNK 16384

static inline float clampf(float x, float lo, float hi) {
  x = x < lo ? lo : x;
  return x > hi ? hi : x;
}

/* e^x: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n ln2 is
 * exact), e^r from Cephes' expf polynomial, 2^n built in the exponent
 * bits. n is rounded with the 1.5 * 2^23 trick (SSE2 has no vector
 * round). Accuracy: tests/gpt/test_gpt_cpu_ops.c measures it against
 * double exp (max 2 ulp). */
static inline float exp_inline(float x) {
  x = clampf(x, -87.0f, 88.0f);
  const float big = 12582912.0f; /* 1.5 * 2^23 */
  float n = (x * 1.44269504088896341f + big) - big;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * z + r + 1.0f;
  /* A NaN input passes the clamp and makes y NaN, which is the result; its n
   * must not reach the integer conversion (undefined for NaN), so it
   * becomes 0 there. Otherwise n is in [-126, 127]: the biased exponent is
   * positive and the shift defined. */
  const float nn = n == n ? n : 0.0f;
  int32_t bits = ((int32_t)nn + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

float gpt_expf(float x) { return exp_inline(x); }

/* ---- LayerNorm ---- */

/* Sum and sum of squares about the mean in double, with eight partial sums
 * so the compiler can keep them in vector lanes: the variance of a
 * residual stream with a large mean loses digits in a one-pass float
 * formula. */
GPT_VEC static void ln_fwd_rows(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                const float *b, int r0, int r1, int C) {
  for (int i = r0; i < r1; i++) {
    const float *x = inp + (size_t)i * C;
    double acc[8] = {0};
    int c = 0;
    for (; c + 8 <= C; c += 8)
      for (int k = 0; k < 8; k++) acc[k] += x[c + k];
    for (; c < C; c++) acc[0] += x[c];
    double m = ((acc[0] + acc[1]) + (acc[2] + acc[3]) + (acc[4] + acc[5]) + (acc[6] + acc[7])) / C;
    double vacc[8] = {0};
    for (c = 0; c + 8 <= C; c += 8)
      for (int k = 0; k < 8; k++) {
        double d = x[c + k] - m;
        vacc[k] += d * d;
      }
    for (; c < C; c++) {
      double d = x[c] - m;
      vacc[0] += d * d;
    }
    double v = ((vacc[0] + vacc[1]) + (vacc[2] + vacc[3]) + (vacc[4] + vacc[5]) + (vacc[6] + vacc[7])) / C;
    float s = (float)(1.0 / sqrt(v + GPT_LN_EPS));
    float mf = (float)m;
    float *o = out + (size_t)i * C;
    for (c = 0; c < C; c++) o[c] = (x[c] - mf) * s * w[c] + b[c];
    mean[i] = mf;
    rstd[i] = s;
  }
}

void gpt_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C) {
  const int rows = C >= CHUNK ? 1 : CHUNK / C, nch = (N + rows - 1) / rows;
  GPT_OMP("omp parallel for schedule(dynamic) if (nch > 1)")
  for (int ch = 0; ch < nch; ch++) {
    int r0 = ch * rows, r1 = r0 + rows < N ? r0 + rows : N;
    ln_fwd_rows(out, mean, rstd, inp, w, b, r0, r1, C);
  }
}

/* dx rows: d(xhat) = dy * w; dx = s * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) */
GPT_VEC static void ln_bwd_rows(float *dinp, const float *dout, const float *inp, const float *w,
                                const float *mean, const float *rstd, int r0, int r1, int C) {
  for (int i = r0; i < r1; i++) {
    const float *dy = dout + (size_t)i * C, *x = inp + (size_t)i * C;
    float *dx = dinp + (size_t)i * C;
    const float m = mean[i], s = rstd[i];
    double ad[8] = {0}, adx[8] = {0};
    int c = 0;
    for (; c + 8 <= C; c += 8)
      for (int k = 0; k < 8; k++) {
        float xhat = (x[c + k] - m) * s, dn = w[c + k] * dy[c + k];
        ad[k] += dn;
        adx[k] += (double)dn * xhat;
      }
    for (; c < C; c++) {
      float xhat = (x[c] - m) * s, dn = w[c] * dy[c];
      ad[0] += dn;
      adx[0] += (double)dn * xhat;
    }
    double sum_d = (ad[0] + ad[1]) + (ad[2] + ad[3]) + (ad[4] + ad[5]) + (ad[6] + ad[7]);
    double sum_dx = (adx[0] + adx[1]) + (adx[2] + adx[3]) + (adx[4] + adx[5]) + (adx[6] + adx[7]);
    const float mean_d = (float)(sum_d / C), mean_dx = (float)(sum_dx / C);
    for (c = 0; c < C; c++) {
      float xhat = (x[c] - m) * s, dn = w[c] * dy[c];
      dx[c] += s * (dn - mean_d - xhat * mean_dx);
    }
  }
}

/* dw, db over columns [c0, c1): rows in order, so the sums do not depend
 * on how the columns are split among threads. */
GPT_VEC static void ln_bwd_params(float *dw, float *db, const float *dout, const float *inp, const float *mean,
                                  const float *rstd, int N, int C, int c0, int c1) {
  for (int i = 0; i < N; i++) {
    const float *dy = dout + (size_t)i * C, *x = inp + (size_t)i * C;
    const float m = mean[i], s = rstd[i];
    for (int c = c0; c < c1; c++) {
      db[c] += dy[c];
      dw[c] += (x[c] - m) * s * dy[c];
    }
  }
}

void gpt_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int N, int C) {
  const int rows = C >= CHUNK ? 1 : CHUNK / C, nch = (N + rows - 1) / rows;
  const int cols = 64, ncc = (C + cols - 1) / cols;
  GPT_OMP("omp parallel")
  {
    GPT_OMP("omp for schedule(dynamic) nowait")
    for (int ch = 0; ch < nch; ch++) {
      int r0 = ch * rows, r1 = r0 + rows < N ? r0 + rows : N;
      ln_bwd_rows(dinp, dout, inp, w, mean, rstd, r0, r1, C);
    }
    GPT_OMP("omp for schedule(dynamic)")
    for (int cc = 0; cc < ncc; cc++) {
      int c0 = cc * cols, c1 = c0 + cols < C ? c0 + cols : C;
      ln_bwd_params(dw, db, dout, inp, mean, rstd, N, C, c0, c1);
    }
  }
}

/* ---- matrix products ---- */

void gpt_matmul_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                        int OC) {
  float beta = 0.0f;
  if (b) {
    for (int i = 0; i < N; i++) memcpy(out + (size_t)i * OC, b, (size_t)OC * sizeof *b);
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, beta, out, OC);
}

GPT_VEC static void add_bias_rows(float *out, const float *res, const float *b, int r0, int r1, int OC) {
  for (int i = r0; i < r1; i++) {
    const float *r = res + (size_t)i * OC;
    float *o = out + (size_t)i * OC;
    for (int c = 0; c < OC; c++) o[c] = r[c] + b[c];
  }
}

void gpt_matmul_residual_forward(float *out, const float *res, const float *inp, const float *w, const float *b,
                                 int N, int C, int OC) {
  add_bias_rows(out, res, b, 0, N, OC);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, 1.0f, out, OC);
}

GPT_VEC static void bias_grad(float *db, const float *dout, int N, int OC) {
  for (int i = 0; i < N; i++) {
    const float *d = dout + (size_t)i * OC;
    for (int o = 0; o < OC; o++) db[o] += d[o];
  }
}

void gpt_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int N, int C, int OC) {
  if (dinp)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 0.0f,
                dinp, C);
  if (dw)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw,
                C);
  if (db) bias_grad(db, dout, N, OC);
}

/* ---- GELU (tanh approximation) ----
 * 0.5 x (1 + tanh(u)) = x * sigmoid(2u) = x / (1 + e^{-2u}), u = k (x + 0.044715 x^3):
 * the same function with no tanh and no cancellation in 1 + tanh(u) for
 * negative u. The argument of e is clamped to +-80 so 1/(1+e) stays a
 * normal float. Accuracy against double tanh: test_gpt_cpu_ops.c. */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f

GPT_VEC static void gelu_fwd_range(float *out, const float *inp, int n) {
  for (int i = 0; i < n; i++) {
    float x = inp[i];
    float u = GELU_K * (x + GELU_C * x * x * x);
    float e = exp_inline(clampf(-2.0f * u, -80.0f, 80.0f));
    out[i] = x / (1.0f + e);
  }
}

/* d/dx [x s(2u)] = s + 2 x s (1 - s) u', with 1 - s = e s (no cancellation). */
GPT_VEC static void gelu_bwd_range(float *dinp, const float *inp, const float *dout, int n) {
  for (int i = 0; i < n; i++) {
    float x = inp[i];
    float u = GELU_K * (x + GELU_C * x * x * x);
    float e = exp_inline(clampf(-2.0f * u, -80.0f, 80.0f));
    float s = 1.0f / (1.0f + e);
    float du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    dinp[i] = s * (1.0f + 2.0f * x * e * s * du) * dout[i];
  }
}

void gpt_gelu_forward(float *out, const float *inp, int n) {
  const int nch = (n + CHUNK - 1) / CHUNK;
  GPT_OMP("omp parallel for schedule(dynamic) if (nch > 1)")
  for (int ch = 0; ch < nch; ch++) {
    int lo = ch * CHUNK, len = n - lo < CHUNK ? n - lo : CHUNK;
    gelu_fwd_range(out + lo, inp + lo, len);
  }
}

void gpt_gelu_backward(float *dinp, const float *inp, const float *dout, int n) {
  const int nch = (n + CHUNK - 1) / CHUNK;
  GPT_OMP("omp parallel for schedule(dynamic) if (nch > 1)")
  for (int ch = 0; ch < nch; ch++) {
    int lo = ch * CHUNK, len = n - lo < CHUNK ? n - lo : CHUNK;
    gelu_bwd_range(dinp + lo, inp + lo, dout + lo, len);
  }
}

/* ---- residual ---- */

GPT_VEC static void add_range(float *dst, const float *a, const float *b, int n) {
  for (int i = 0; i < n; i++) dst[i] = a[i] + b[i];
}

void gpt_residual_forward(float *dst, const float *a, const float *b, int n) { add_range(dst, a, b, n); }

/* ---- softmax cross-entropy ---- */

GPT_VEC static double xent_rows(float *logits, float *losses, const int *targets, int r0, int r1, int V) {
  double total = 0.0;
  for (int i = r0; i < r1; i++) {
    float *row = logits + (size_t)i * V;
    float mx = row[0];
    for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
    /* loss = log-sum-exp - target logit, not -log(prob): finite even when
     * the target's probability underflows */
    const float logit_t = row[targets[i]];
    for (int v = 0; v < V; v++) row[v] = exp_inline(row[v] - mx);
    double acc[8] = {0};
    int v = 0;
    for (; v + 8 <= V; v += 8)
      for (int k = 0; k < 8; k++) acc[k] += row[v + k];
    for (; v < V; v++) acc[0] += row[v];
    double z = (acc[0] + acc[1]) + (acc[2] + acc[3]) + (acc[4] + acc[5]) + (acc[6] + acc[7]);
    const float inv = (float)(1.0 / z);
    losses[i] = (float)(log(z) + mx - logit_t);
    for (v = 0; v < V; v++) row[v] *= inv;
    total += losses[i];
  }
  return total;
}

double gpt_crossentropy_forward(float *logits, float *losses, const int *targets, int N, int V) {
  const int rows = V >= CHUNK ? 1 : CHUNK / V, nch = (N + rows - 1) / rows;
  GPT_OMP("omp parallel for schedule(dynamic) if (nch > 1)")
  for (int ch = 0; ch < nch; ch++) {
    int r0 = ch * rows, r1 = r0 + rows < N ? r0 + rows : N;
    xent_rows(logits, losses, targets, r0, r1, V);
  }
  /* summed in row order after the parallel part: the same total at any
   * thread count */
  double sum = 0.0;
  for (int i = 0; i < N; i++) sum += losses[i];
  return sum;
}

/* ---- attention ---- */

/* Softmax of rows [i0, i0 + nr) of a score block (row stride ld, keys
 * 0..i0+r, 0 beyond): p = e^(s - max) * (1/sum). With stats == NULL the
 * row's max and 1/sum are computed and written to st; otherwise they are
 * read from it, giving the same bits as when they were computed. */
GPT_VEC static void softmax_block(float *s, int ld, int i0, int nr, int ncols, float *st, int recompute) {
  for (int r = 0; r < nr; r++) {
    float *row = s + (size_t)r * ld;
    const int n = i0 + r + 1; /* causal: keys 0..i0+r */
    float mx, inv;
    if (recompute) {
      mx = st[2 * r];
      inv = st[2 * r + 1];
    } else {
      mx = row[0];
      for (int j = 1; j < n; j++) mx = row[j] > mx ? row[j] : mx;
    }
    for (int j = 0; j < n; j++) row[j] = exp_inline(row[j] - mx);
    if (!recompute) {
      double acc[8] = {0};
      int j = 0;
      for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) acc[k] += row[j + k];
      for (; j < n; j++) acc[0] += row[j];
      double sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      inv = (float)(1.0 / sum);
      st[2 * r] = mx;
      st[2 * r + 1] = inv;
    }
    for (int j = 0; j < n; j++) row[j] *= inv;
    for (int j = n; j < ncols; j++) row[j] = 0.0f;
  }
}

/* dS = P (dP - rowsum(P dP)) over the causal part, in place of dP. */
GPT_VEC static void softmax_grad_block(float *dp, const float *p, int ld, int i0, int nr, int ncols) {
  for (int r = 0; r < nr; r++) {
    const float *pr = p + (size_t)r * ld;
    float *dr = dp + (size_t)r * ld;
    const int n = i0 + r + 1;
    double acc[8] = {0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
      for (int k = 0; k < 8; k++) acc[k] += (double)pr[j + k] * dr[j + k];
    for (; j < n; j++) acc[0] += (double)pr[j] * dr[j];
    const float dot = (float)(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
    for (j = 0; j < n; j++) dr[j] = pr[j] * (dr[j] - dot);
    for (; j < ncols; j++) dr[j] = 0.0f;
  }
}

void gpt_attention_forward(float *out, float *stats, float *scratch, const float *qkv, int B, int T, int C,
                           int NH) {
  const int hs = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)hs);
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const float *q = qkv + (size_t)b * T * C3 + h * hs;
      const float *k = q + C, *v = q + 2 * C;
      float *st = stats + ((size_t)b * NH + h) * T * 2;
      float *y = out + (size_t)b * T * C + h * hs;
      for (int i0 = 0; i0 < T; i0 += GPT_ATT_ROWS) {
        const int nr = T - i0 < GPT_ATT_ROWS ? T - i0 : GPT_ATT_ROWS, nk = i0 + nr;
        /* scores of rows [i0, i0+nr) against keys [0, nk): the block's
         * upper triangle is computed and masked, the rest never is */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nk, hs, scale, q + (size_t)i0 * C3, C3, k, C3,
                    0.0f, scratch, nk);
        softmax_block(scratch, nk, i0, nr, nk, st + 2 * i0, 0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, hs, nk, 1.0f, scratch, nk, v, C3, 0.0f,
                    y + (size_t)i0 * C, C);
      }
    }
  }
}

void gpt_attention_backward(float *dqkv, float *scratch_p, float *scratch_dp, const float *dout,
                            const float *qkv, const float *stats, int B, int T, int C, int NH) {
  const int hs = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)hs);
  for (int b = 0; b < B; b++) {
    /* dk and dv are sums over query blocks: start them at zero */
    for (int t = 0; t < T; t++) memset(dqkv + ((size_t)b * T + t) * C3 + C, 0, sizeof(float) * 2 * (size_t)C);
    for (int h = 0; h < NH; h++) {
      const size_t qoff = (size_t)b * T * C3 + h * hs;
      const float *q = qkv + qoff, *k = q + C, *v = q + 2 * C;
      float *dq = dqkv + qoff, *dk = dq + C, *dv = dq + 2 * C;
      const float *st = stats + ((size_t)b * NH + h) * T * 2;
      const float *dy = dout + (size_t)b * T * C + h * hs;
      for (int i0 = 0; i0 < T; i0 += GPT_ATT_ROWS) {
        const int nr = T - i0 < GPT_ATT_ROWS ? T - i0 : GPT_ATT_ROWS, nk = i0 + nr;
        /* the forward's probabilities, recomputed from its row stats */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nk, hs, scale, q + (size_t)i0 * C3, C3, k, C3,
                    0.0f, scratch_p, nk);
        softmax_block(scratch_p, nk, i0, nr, nk, (float *)(st + 2 * i0), 1);
        /* y = P v  ->  dP = dy v^T, dv += P^T dy */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nk, hs, 1.0f, dy + (size_t)i0 * C, C, v, C3,
                    0.0f, scratch_dp, nk);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hs, nr, 1.0f, scratch_p, nk, dy + (size_t)i0 * C,
                    C, 1.0f, dv, C3);
        softmax_grad_block(scratch_dp, scratch_p, nk, i0, nr, nk);
        /* scores = scale q k^T  ->  dq = scale dS k, dk += scale dS^T q */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, hs, nk, scale, scratch_dp, nk, k, C3, 0.0f,
                    dq + (size_t)i0 * C3, C3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hs, nr, scale, scratch_dp, nk, q + (size_t)i0 * C3,
                    C3, 1.0f, dk, C3);
      }
    }
  }
}
