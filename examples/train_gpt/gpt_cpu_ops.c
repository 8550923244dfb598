/* SPDX-License-Identifier: Apache-2.0 */
#include "gpt_cpu_ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void gpt_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C) {
  for (int i = 0; i < N; i++) {
    const float *x = inp + (size_t)i * C;
    /* Two passes in double: the variance of a residual stream with a large
     * mean loses digits in a one-pass float formula. */
    double m = 0.0;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    double v = 0.0;
    for (int c = 0; c < C; c++) {
      double d = x[c] - m;
      v += d * d;
    }
    v /= C;
    float s = (float)(1.0 / sqrt(v + GPT_LN_EPS));
    float mf = (float)m;
    float *o = out + (size_t)i * C;
    for (int c = 0; c < C; c++) o[c] = (x[c] - mf) * s * w[c] + b[c];
    mean[i] = mf;
    rstd[i] = s;
  }
}

void gpt_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int N, int C) {
  for (int i = 0; i < N; i++) {
    const float *dy = dout + (size_t)i * C;
    const float *x = inp + (size_t)i * C;
    float *dx = dinp + (size_t)i * C;
    float m = mean[i], s = rstd[i];
    /* d(xhat) = dy * w; dx = s * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) */
    double sum_d = 0.0, sum_dx = 0.0;
    for (int c = 0; c < C; c++) {
      float xhat = (x[c] - m) * s;
      float dn = w[c] * dy[c];
      sum_d += dn;
      sum_dx += (double)dn * xhat;
    }
    float mean_d = (float)(sum_d / C), mean_dx = (float)(sum_dx / C);
    for (int c = 0; c < C; c++) {
      float xhat = (x[c] - m) * s;
      float dn = w[c] * dy[c];
      db[c] += dy[c];
      dw[c] += xhat * dy[c];
      dx[c] += s * (dn - mean_d - xhat * mean_dx);
    }
  }
}

void gpt_matmul_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                        int OC) {
  float beta = 0.0f;
  if (b) {
    for (int i = 0; i < N; i++) memcpy(out + (size_t)i * OC, b, (size_t)OC * sizeof *b);
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, beta, out, OC);
}

void gpt_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int N, int C, int OC) {
  if (dinp)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 0.0f,
                dinp, C);
  if (dw)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw,
                C);
  if (db) {
    for (int i = 0; i < N; i++) {
      const float *d = dout + (size_t)i * OC;
      for (int o = 0; o < OC; o++) db[o] += d[o];
    }
  }
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

void gpt_gelu_forward(float *out, const float *inp, int n) {
  for (int i = 0; i < n; i++) {
    float x = inp[i];
    out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
  }
}

void gpt_gelu_backward(float *dinp, const float *inp, const float *dout, int n) {
  for (int i = 0; i < n; i++) {
    float x = inp[i];
    float u = GELU_K * (x + 0.044715f * x * x * x);
    float t = tanhf(u);
    float sech2 = 1.0f - t * t;
    float grad = 0.5f * (1.0f + t) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
    dinp[i] = grad * dout[i];
  }
}

void gpt_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
  const int hs = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)hs);
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const float *q = qkv + (size_t)b * T * C3 + h * hs;
      const float *k = q + C, *v = q + 2 * C;
      float *a = att + ((size_t)b * NH + h) * T * T;
      /* scores = scale * q k^T; the upper triangle is computed and then
       * masked, which costs less than T separate row products */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C3, k, C3, 0.0f, a, T);
      for (int i = 0; i < T; i++) {
        float *row = a + (size_t)i * T;
        float mx = row[0];
        for (int j = 1; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j <= i; j++) {
          row[j] = expf(row[j] - mx);
          sum += row[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j <= i; j++) row[j] *= inv;
        for (int j = i + 1; j < T; j++) row[j] = 0.0f;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, v, C3, 0.0f,
                  out + (size_t)b * T * C + h * hs, C);
    }
  }
}

void gpt_attention_backward(float *dqkv, float *datt, float *dpre, const float *dout,
                            const float *qkv, const float *att, int B, int T, int C, int NH) {
  const int hs = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)hs);
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      const size_t qoff = (size_t)b * T * C3 + h * hs;
      const float *q = qkv + qoff, *k = q + C, *v = q + 2 * C;
      float *dq = dqkv + qoff, *dk = dq + C, *dv = dq + 2 * C;
      const float *a = att + ((size_t)b * NH + h) * T * T;
      const float *dy = dout + (size_t)b * T * C + h * hs;
      /* y = a v  ->  da = dy v^T, dv = a^T dy */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dy, C, v, C3, 0.0f, datt, T);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, a, T, dy, C, 0.0f, dv, C3);
      /* softmax: dpre_ij = a_ij (da_ij - sum_k a_ik da_ik), zero where masked */
      for (int i = 0; i < T; i++) {
        const float *ar = a + (size_t)i * T;
        const float *dr = datt + (size_t)i * T;
        float *pr = dpre + (size_t)i * T;
        float dot = 0.0f;
        for (int j = 0; j <= i; j++) dot += ar[j] * dr[j];
        for (int j = 0; j <= i; j++) pr[j] = ar[j] * (dr[j] - dot);
        for (int j = i + 1; j < T; j++) pr[j] = 0.0f;
      }
      /* scores = scale q k^T  ->  dq = scale dpre k, dk = scale dpre^T q */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, scale, dpre, T, k, C3, 0.0f, dq, C3);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, scale, dpre, T, q, C3, 0.0f, dk, C3);
    }
  }
}

void gpt_residual_forward(float *dst, const float *a, const float *b, int n) {
  for (int i = 0; i < n; i++) dst[i] = a[i] + b[i];
}
