/* SPDX-License-Identifier: Apache-2.0 */
/* A multi-layer perceptron classifier: input Linear, N hidden Blocks
 * (Linear + ReLU), head Linear, mean cross-entropy. The math works on plain
 * fp32 arrays; the trainer moves data between them and libshardrt views. */
#ifndef MLP_H
#define MLP_H

#include <stdint.h>

typedef struct mlp_dims {
  int in, hidden, out, layers; /* layers = number of hidden Blocks */
} mlp_dims;

/* y[B,O] = x[B,I] W^T + b  (W is [O,I], row-major). */
void mlp_linear_fwd(const float *x, const float *W, const float *b, float *y, int nb, int ni, int no);
/* dx[B,I] = dy W ; dW[O,I] += dy^T x ; db[O] += sum dy.  dx may be NULL. */
void mlp_linear_bwd(const float *x, const float *W, const float *dy, float *dx, float *dW, float *db, int B, int I,
                    int O);
void mlp_relu_fwd(float *y, int64_t n);
void mlp_relu_bwd(const float *y, float *dy, int64_t n); /* y: the ReLU output */
/* Returns the summed cross-entropy over B rows; dlogits = (softmax - onehot) * scale. */
double mlp_xent(const float *logits, const int *labels, float *dlogits, int nb, int nc, float scale);

#endif
