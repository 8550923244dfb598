/* SPDX-License-Identifier: Apache-2.0 */
/* Kernels of the GPT's low-precision paths, bf16 and fp16: the same code
 * instantiated for either 16-bit storage type (LP = gpt_bf16 or gpt_f16;
 * every launcher is a template whose LP the pointer arguments fix).
 * Storage is LP where a tensor feeds a matrix product (LayerNorm outputs,
 * q/k/v, attention probabilities, GELU input and output, logits, and the
 * gradients flowing into products); every reduction and the residual
 * stream stay fp32. The math inside each kernel is fp32; only loads and
 * stores round, so the CPU twins in gpt_cpu_ops.h applied to the rounded
 * inputs are the oracle (tests/gpt/test_gpt_cuda_kernels.cu).
 *
 * fp16 differs from bf16 in range, not in code: 11 significant bits
 * instead of 8, but a largest finite value of 65504 and normal numbers
 * only down to 2^-14. Stores round to nearest even and overflow to inf
 * (never saturate), so an overflowing gradient reaches the fp32 parameter
 * gradients as inf/NaN, where the runtime's dynamic loss scaler sees it
 * (non-finite global norm: step skipped, scale halved); the loss scale
 * itself is already in the trainer's dloss (train_gpt.c). */
#ifndef GPT_KERNELS_LP_CUH
#define GPT_KERNELS_LP_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <library_types.h>

#include <stdint.h>

typedef __nv_bfloat16 gpt_bf16;
typedef __half gpt_f16;
typedef gpt_bf16 gpt_lp; /* the bf16 storage type (the name the bf16-only code used) */

/* What the host code needs to know of a storage type. */
template <typename LP> struct gpt_lp_traits;
template <> struct gpt_lp_traits<gpt_bf16> {
  static constexpr cudaDataType_t cuda = CUDA_R_16BF;
  static constexpr const char *name = "bf16";
};
template <> struct gpt_lp_traits<gpt_f16> {
  static constexpr cudaDataType_t cuda = CUDA_R_16F;
  static constexpr const char *name = "fp16";
};

/* Device loads and stores (round to nearest even; fp16 overflows to inf). */
static __device__ __forceinline__ float gpt_ld(gpt_bf16 v) { return __bfloat162float(v); }
static __device__ __forceinline__ float gpt_ld(gpt_f16 v) { return __half2float(v); }
template <typename LP> __device__ __forceinline__ LP gpt_st(float v);
template <> __device__ __forceinline__ gpt_bf16 gpt_st<gpt_bf16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ gpt_f16 gpt_st<gpt_f16>(float v) { return __float2half_rn(v); }

/* dst = round(src) */
template <typename LP> cudaError_t gpt_k_f32_to_lp(LP *dst, const float *src, int64_t n, cudaStream_t s);
/* dst = float(src) */
template <typename LP> cudaError_t gpt_k_lp_to_f32(float *dst, const LP *src, int64_t n, cudaStream_t s);

/* LayerNorm over C of N fp32 rows; out in LP; mean/rstd fp32 */
template <typename LP>
cudaError_t gpt_k_layernorm_forward_lp(LP *out, float *mean, float *rstd, const float *inp, const float *w,
                                       const float *b, int N, int C, cudaStream_t s);

/* out(N,OC) += b (fp32, in place): the fallback when cuBLASLt has no bias epilogue */
cudaError_t gpt_k_bias_add_f32(float *out, const float *b, int N, int OC, cudaStream_t s);
/* out(N,OC) = round(out + b) in LP */
template <typename LP> cudaError_t gpt_k_bias_add_lp(LP *out, const LP *b, int N, int OC, cudaStream_t s);
/* db(OC) += column sums of d(N,OC) (LP in, fp32 sums, fixed order) */
template <typename LP> cudaError_t gpt_k_bias_backward_lp(float *db, const LP *d, int N, int OC, cudaStream_t s);

/* fallbacks of the GELU epilogues: x = gelu(pre) / dx = dx * gelu'(pre) */
template <typename LP> cudaError_t gpt_k_gelu_forward_lp(LP *out, const LP *pre, int64_t n, cudaStream_t s);
template <typename LP> cudaError_t gpt_k_gelu_backward_inplace_lp(LP *d, const LP *pre, int64_t n, cudaStream_t s);

/* causal softmax of fp32 scores (BNH blocks of T x T) into LP probs
 * (0 above the diagonal) */
template <typename LP>
cudaError_t gpt_k_softmax_causal_forward_lp(LP *att, const float *scores, float scale, int BNH, int T,
                                            cudaStream_t s);
/* dpre = scale * att * (datt - rowdot(att, datt)) in LP */
template <typename LP>
cudaError_t gpt_k_softmax_causal_backward_lp(LP *dpre, const LP *att, const float *datt, float scale, int BNH,
                                             int T, cudaStream_t s);

/* Fused classifier over padded logits rows (N rows of Vp >= V).
 * forward: lse[i] = logsumexp(logits[i, :V]), losses[i] = lse - logit[target].
 * backward: logits -> dlogits in place, (softmax - onehot) * dloss over the
 * first V columns and 0 in the padding: the probabilities are never stored. */
template <typename LP>
cudaError_t gpt_k_classifier_forward_lp(float *lse, float *losses, const LP *logits, const int *targets, int N,
                                        int V, int Vp, cudaStream_t s);
template <typename LP>
cudaError_t gpt_k_classifier_backward_lp(LP *logits, const float *lse, const int *targets, float dloss, int N,
                                         int V, int Vp, cudaStream_t s);

/* Flash-style causal attention (gpt_kernels_flash.cu), for head sizes with
 * gpt_flash_supported(hs, C). forward: out (B,T,C) and the per-row
 * log-sum-exp lse (B*NH*T) from qkv (B,T,3C). backward: dqkv (B,T,3C, SET)
 * from dout (B,T,C); dq_acc (B,T,C) and D (B*NH*T) are fp32 scratch. */
int gpt_flash_supported(int hs, int C);
template <typename LP>
cudaError_t gpt_k_flash_forward(LP *out, float *lse, const LP *qkv, int B, int T, int C, int NH, cudaStream_t s);
template <typename LP>
cudaError_t gpt_k_flash_backward(LP *dqkv, float *dq_acc, float *D, const LP *qkv, const LP *out, const LP *dout,
                                 const float *lse, int B, int T, int C, int NH, cudaStream_t s);

#endif
