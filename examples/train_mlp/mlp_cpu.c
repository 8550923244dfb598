/* SPDX-License-Identifier: Apache-2.0 */
#include <math.h>
#include <string.h>

#include "mlp.h"

#ifdef EX_HAVE_CBLAS
#include <cblas.h>
#endif

void mlp_linear_fwd(const float *x, const float *W, const float *b, float *y, int nb, int ni, int no) {
  for (int r = 0; r < nb; r++) memcpy(y + (size_t)r * no, b, sizeof(float) * (size_t)no);
#ifdef EX_HAVE_CBLAS
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, no, ni, 1.0f, x, ni, W, ni, 1.0f, y, no);
#else
  for (int r = 0; r < nb; r++)
    for (int o = 0; o < no; o++) {
      float s = 0;
      for (int i = 0; i < ni; i++) s += x[(size_t)r * ni + i] * W[(size_t)o * ni + i];
      y[(size_t)r * no + o] += s;
    }
#endif
}

void mlp_linear_bwd(const float *x, const float *W, const float *dy, float *dx, float *dW, float *db, int nb, int ni,
                    int no) {
#ifdef EX_HAVE_CBLAS
  if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, ni, no, 1.0f, dy, no, W, ni, 0.0f, dx, ni);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, no, ni, nb, 1.0f, dy, no, x, ni, 1.0f, dW, ni);
#else
  if (dx)
    for (int r = 0; r < nb; r++)
      for (int i = 0; i < ni; i++) {
        float s = 0;
        for (int o = 0; o < no; o++) s += dy[(size_t)r * no + o] * W[(size_t)o * ni + i];
        dx[(size_t)r * ni + i] = s;
      }
  for (int o = 0; o < no; o++)
    for (int i = 0; i < ni; i++) {
      float s = 0;
      for (int r = 0; r < nb; r++) s += dy[(size_t)r * no + o] * x[(size_t)r * ni + i];
      dW[(size_t)o * ni + i] += s;
    }
#endif
  for (int r = 0; r < nb; r++)
    for (int o = 0; o < no; o++) db[o] += dy[(size_t)r * no + o];
}

void mlp_relu_fwd(float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0;
}

void mlp_relu_bwd(const float *y, float *dy, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (y[i] <= 0) dy[i] = 0;
}

double mlp_xent(const float *logits, const int *labels, float *dlogits, int nb, int nc, float scale) {
  double total = 0;
  for (int r = 0; r < nb; r++) {
    const float *l = logits + (size_t)r * nc;
    float mx = l[0];
    for (int c = 1; c < nc; c++) mx = l[c] > mx ? l[c] : mx;
    double z = 0;
    for (int c = 0; c < nc; c++) z += exp((double)(l[c] - mx));
    total += log(z) - (double)(l[labels[r]] - mx);
    for (int c = 0; c < nc; c++) {
      double p = exp((double)(l[c] - mx)) / z;
      dlogits[(size_t)r * nc + c] = (float)((p - (c == labels[r] ? 1.0 : 0.0)) * scale);
    }
  }
  return total;
}
