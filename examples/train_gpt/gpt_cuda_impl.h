/* SPDX-License-Identifier: Apache-2.0 */
/* Private state of gpt_cuda, shared by the fp32 path (gpt_cuda.cu) and the
 * bf16 path (gpt_cuda_lp.cu). Not installed; C++ (CUDA) only. */
#ifndef GPT_CUDA_IMPL_H
#define GPT_CUDA_IMPL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "gpt_cuda.h"
#include "gpt_kernels_lp.cuh"
#include "gpt_lt.cuh"

/* fp32 activations (the fp32 path; the bf16 path allocates only the
 * residual stream and the fp32 reductions of them, see gpt_cuda_lp.cu) */
#define ACT_FIELDS(X)                                                                        \
  X(encoded, BTC) X(ln1, L *BTC) X(ln1_mean, L *BT) X(ln1_rstd, L *BT) X(qkv, L *BTC * 3)   \
  X(att, L *B *NH *T *T) X(atty, L *BTC) X(attproj, L *BTC) X(residual2, L *BTC)             \
  X(ln2, L *BTC) X(ln2_mean, L *BT) X(ln2_rstd, L *BT) X(fch, L *BTC * 4)                   \
  X(fch_gelu, L *BTC * 4) X(fcproj, L *BTC) X(residual3, L *BTC) X(lnf, BTC) X(lnf_mean, BT) \
  X(lnf_rstd, BT) X(probs, BT *V) X(losses, BT) X(dresidual, BTC) X(dbuf_c, BTC)             \
  X(dbuf_c2, BTC) X(dqkv, BTC * 3) X(dfch, BTC * 4) X(dfch2, BTC * 4) X(datt, B *NH *T *T)   \
  X(dpre, B *NH *T *T)

struct gpt_cuda_lp; /* gpt_cuda_lp.cu */

struct gpt_cuda {
  gpt_config cfg;
  gpt_cuda_options opt;
  int B, T;
  cudaStream_t stream;
  cublasHandle_t blas;
  gpt_lt lt;             /* bf16 path only */
  struct gpt_cuda_lp *lp; /* NULL on the fp32 path */
  long lt_fused, lt_fallback; /* gpt_cuda_lt_counts */
  char lt_last_fallback[96];  /* the last product cuBLASLt had no algorithm for */
  int *tokens, *targets; /* device (B,T) */
  float *host_losses;    /* (B,T), pinned host */
  int *host_batch;       /* (2,B,T) tokens then targets, pinned host staging */
  cudaEvent_t batch_copied, loss_copied;
#define DECL(f, n) float *f;
  ACT_FIELDS(DECL)
#undef DECL
  char err[256];
};

int gpt_cuda__fail(gpt_cuda *m, const char *fmt, ...);

/* Reports the op that failed and clears CUDA's sticky last error. */
#define CK(m, expr, what)                                                                    \
  do {                                                                                       \
    cudaError_t e__ = (expr);                                                                \
    if (e__ != cudaSuccess) {                                                                \
      (void)cudaGetLastError();                                                              \
      return gpt_cuda__fail((m), "CUDA %s failed: %s", (what), cudaGetErrorString(e__));    \
    }                                                                                        \
  } while (0)

/* Row-major C(MxN) = alpha op(A) op(B) + beta C, batched with strides,
 * operands of type ab and C of type c, fp32 accumulation (TF32 when the
 * options allow it and the operands are fp32). */
int gpt_cuda__gemm_ex(gpt_cuda *m, bool ta, bool tb, int M, int N, int K, float alpha, const void *A, int lda,
                      long long sA, const void *Bm, int ldb, long long sB, cudaDataType_t ab, float beta, void *C,
                      int ldc, long long sC, cudaDataType_t c, int batch);

/* bf16 path (gpt_cuda_lp.cu) */
int gpt_cuda__lp_create(gpt_cuda *m, char *err, size_t errlen);
void gpt_cuda__lp_destroy(gpt_cuda *m);
int gpt_cuda__lp_block_forward(gpt_cuda *m, const float *const *p, int layer);
int gpt_cuda__lp_head_forward(gpt_cuda *m, const float *const *p);
int gpt_cuda__lp_head_backward(gpt_cuda *m, const float *const *p, float *const *g, float dloss);
int gpt_cuda__lp_block_backward(gpt_cuda *m, const float *const *p, float *const *g, int layer);
const float *gpt_cuda__lp_block_input(const gpt_cuda *m, int layer);

#endif
