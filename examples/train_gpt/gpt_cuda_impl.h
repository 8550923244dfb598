/* SPDX-License-Identifier: Apache-2.0 */
/* Private state of gpt_cuda, shared by the fp32 path (gpt_cuda.cu) and the
 * bf16/fp16 paths (gpt_cuda_lp.cu). Not installed; C++ (CUDA) only. */
#ifndef GPT_CUDA_IMPL_H
#define GPT_CUDA_IMPL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "gpt_cuda.h"
#include "gpt_kernels_lp.cuh"
#include "gpt_lt.cuh"

/* fp32 tensors: X(name, slots, elements per slot). L: one slot per layer;
 * LA: one per layer, or a single slot reused by every layer with
 * activation checkpointing (recompute), where each block's backward re-runs
 * its forward into it first; 1: one. The fp32 path allocates all of them;
 * the LP paths only those gpt_cuda.cu's lp_keeps lists (the residual
 * stream, LayerNorm statistics, losses and the fp32 backward buffers) and
 * their own (gpt_cuda_lp.cu). Vp: the padded vocabulary (gpt_padded_vocab);
 * w_head_pad is the fp32 path's lm_head weight in Vp rows, the padding rows
 * zero. */
#define ACT_FIELDS(X)                                                                                         \
  X(encoded, 1, BTC) X(ln1, LA, BTC) X(ln1_mean, L, BT) X(ln1_rstd, L, BT) X(qkv, LA, BTC * 3)                \
  X(att, LA, BNH *T *T) X(atty, LA, BTC) X(attproj, LA, BTC) X(residual2, L, BTC) X(ln2, LA, BTC)             \
  X(ln2_mean, L, BT) X(ln2_rstd, L, BT) X(fch, LA, BTC * 4) X(fch_gelu, LA, BTC * 4) X(fcproj, LA, BTC)       \
  X(residual3, L, BTC) X(lnf, 1, BTC) X(lnf_mean, 1, BT) X(lnf_rstd, 1, BT) X(probs, 1, BT *Vp)              \
  X(losses, 1, BT) X(dresidual, 1, BTC) X(dbuf_c, 1, BTC) X(dbuf_c2, 1, BTC) X(dqkv, 1, BTC * 3)            \
  X(dfch, 1, BTC * 4) X(dfch2, 1, BTC * 4) X(datt, 1, BNH *T *T) X(dpre, 1, BNH *T *T) X(w_head_pad, 1, Vp *C)

/* per-layer slots: 256-byte aligned (gpt_lt.h's gpt_act_slot, tested on the CPU) */
static inline size_t gpt_cuda__slot(long long n) { return gpt_act_slot(n); }

struct gpt_cuda_lp; /* gpt_cuda_lp.cu */

struct gpt_cuda {
  gpt_config cfg;
  gpt_cuda_options opt;
  int B, T;
  cudaStream_t stream;
  cublasHandle_t blas;
  gpt_lt lt;             /* bf16/fp16 paths only */
  struct gpt_cuda_lp *lp; /* NULL on the fp32 path */
  long lt_fused, lt_fallback; /* gpt_cuda_lt_counts */
  char lt_last_fallback[96];  /* the last product cuBLASLt had no algorithm for */
  /* The batch on the device, one buffer copied at once: tokens, targets
   * (B,T each), then the embedding backward's plan (gpt_cuda_set_batch):
   * the positions sorted by token (stable), the distinct tokens, and where
   * each one's positions start (nuniq + 1 entries). */
  int *batch_dev;
  int *tokens, *targets, *emb_order, *emb_tok, *emb_seg; /* into batch_dev */
  int nuniq;             /* distinct tokens of the current batch */
  int *host_count;       /* (vocab + 1) counting-sort scratch */
  float *host_losses;    /* (B,T), pinned host */
  int *host_batch;       /* batch_dev's image, pinned host staging */
  cudaEvent_t batch_copied, loss_copied;
#define DECL(f, k, n) float *f;
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

/* bf16 and fp16 paths (gpt_cuda_lp.cu) */
int gpt_cuda__lp_create(gpt_cuda *m, char *err, size_t errlen);
void gpt_cuda__lp_destroy(gpt_cuda *m);
int gpt_cuda__lp_block_forward(gpt_cuda *m, const float *const *p, int layer);
int gpt_cuda__lp_head_forward(gpt_cuda *m, const float *const *p);
int gpt_cuda__lp_head_backward(gpt_cuda *m, const float *const *p, float *const *g, float dloss);
int gpt_cuda__lp_block_backward(gpt_cuda *m, const float *const *p, float *const *g, int layer);
const float *gpt_cuda__lp_block_input(const gpt_cuda *m, int layer);

#endif
