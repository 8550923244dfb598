/* SPDX-License-Identifier: Apache-2.0 */
#include <math.h>
#include <string.h>

#include "mlp.h"

#ifdef EX_HAVE_CBLAS
#include <cblas.h>
#endif

void mlp_linear_fwd(const float *x, const float *W, const float *b, float *y, int B, int I, int O) {
  for (int r = 0; r < B; r++) memcpy(y + (size_t)r * O, b, sizeof(float) * (size_t)O);
#ifdef EX_HAVE_CBLAS
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, O, I, 1.0f, x, I, W, I, 1.0f, y, O);
#else
  for (int r = 0; r < B; r++)
    for (int o = 0; o < O; o++) {
      float s = 0;
      for (int i = 0; i < I; i++) s += x[(size_t)r * I + i] * W[(size_t)o * I + i];
      y[(size_t)r * O + o] += s;
    }
#endif
}

void mlp_linear_bwd(const float *x, const float *W, const float *dy, float *dx, float *dW, float *db, int B, int I,
                    int O) {
#ifdef EX_HAVE_CBLAS
  if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, I, O, 1.0f, dy, O, W, I, 0.0f, dx, I);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, I, B, 1.0f, dy, O, x, I, 1.0f, dW, I);
#else
  if (dx)
    for (int r = 0; r < B; r++)
      for (int i = 0; i < I; i++) {
        float s = 0;
        for (int o = 0; o < O; o++) s += dy[(size_t)r * O + o] * W[(size_t)o * I + i];
        dx[(size_t)r * I + i] = s;
      }
  for (int o = 0; o < O; o++)
    for (int i = 0; i < I; i++) {
      float s = 0;
      for (int r = 0; r < B; r++) s += dy[(size_t)r * O + o] * x[(size_t)r * I + i];
      dW[(size_t)o * I + i] += s;
    }
#endif
  for (int r = 0; r < B; r++)
    for (int o = 0; o < O; o++) db[o] += dy[(size_t)r * O + o];
}

void mlp_relu_fwd(float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0;
}

void mlp_relu_bwd(const float *y, float *dy, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (y[i] <= 0) dy[i] = 0;
}

double mlp_xent(const float *logits, const int *labels, float *dlogits, int B, int C, float scale) {
  double total = 0;
  for (int r = 0; r < B; r++) {
    const float *l = logits + (size_t)r * C;
    float mx = l[0];
    for (int c = 1; c < C; c++) mx = l[c] > mx ? l[c] : mx;
    double z = 0;
    for (int c = 0; c < C; c++) z += exp((double)(l[c] - mx));
    total += log(z) - (double)(l[labels[r]] - mx);
    for (int c = 0; c < C; c++) {
      double p = exp((double)(l[c] - mx)) / z;
      dlogits[(size_t)r * C + c] = (float)((p - (c == labels[r] ? 1.0 : 0.0)) * scale);
    }
  }
  return total;
}
