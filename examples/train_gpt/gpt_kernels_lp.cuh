/* SPDX-License-Identifier: Apache-2.0 */
/* Kernels of the GPT's low-precision (bf16) path. Storage is bf16 where a
 * tensor feeds a matrix product (LayerNorm outputs, q/k/v, attention
 * probabilities, GELU input and output, logits, and the gradients flowing
 * into products); every reduction and the residual stream stay fp32. The
 * math inside each kernel is fp32; only loads and stores round, so the
 * CPU twins in gpt_cpu_ops.h applied to the bf16-rounded inputs are the
 * oracle (tests/gpt/test_gpt_cuda_kernels.c). */
#ifndef GPT_KERNELS_LP_CUH
#define GPT_KERNELS_LP_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdint.h>

typedef __nv_bfloat16 gpt_lp;

/* dst = round_bf16(src) */
cudaError_t gpt_k_f32_to_lp(gpt_lp *dst, const float *src, int64_t n, cudaStream_t s);
/* dst = float(src) */
cudaError_t gpt_k_lp_to_f32(float *dst, const gpt_lp *src, int64_t n, cudaStream_t s);

/* LayerNorm over C of N fp32 rows; out in bf16; mean/rstd fp32 */
cudaError_t gpt_k_layernorm_forward_lp(gpt_lp *out, float *mean, float *rstd, const float *inp,
                                       const float *w, const float *b, int N, int C, cudaStream_t s);

/* out(N,OC) += b (fp32, in place): the fallback when cuBLASLt has no bias epilogue */
cudaError_t gpt_k_bias_add_f32(float *out, const float *b, int N, int OC, cudaStream_t s);
/* out(N,OC) = round(out + b) in bf16 */
cudaError_t gpt_k_bias_add_lp(gpt_lp *out, const gpt_lp *b, int N, int OC, cudaStream_t s);
/* db(OC) += column sums of d(N,OC) (bf16 in, fp32 sums, fixed order) */
cudaError_t gpt_k_bias_backward_lp(float *db, const gpt_lp *d, int N, int OC, cudaStream_t s);

/* fallbacks of the GELU epilogues: x = gelu(pre) / dx = dx * gelu'(pre), bf16 */
cudaError_t gpt_k_gelu_forward_lp(gpt_lp *out, const gpt_lp *pre, int64_t n, cudaStream_t s);
cudaError_t gpt_k_gelu_backward_inplace_lp(gpt_lp *d, const gpt_lp *pre, int64_t n, cudaStream_t s);

/* causal softmax of fp32 scores (BNH blocks of T x T) into bf16 probs
 * (0 above the diagonal) */
cudaError_t gpt_k_softmax_causal_forward_lp(gpt_lp *att, const float *scores, float scale, int BNH, int T,
                                            cudaStream_t s);
/* dpre = scale * att * (datt - rowdot(att, datt)) in bf16 */
cudaError_t gpt_k_softmax_causal_backward_lp(gpt_lp *dpre, const gpt_lp *att, const float *datt, float scale,
                                             int BNH, int T, cudaStream_t s);

/* Fused classifier over padded logits rows (N rows of Vp >= V, bf16).
 * forward: lse[i] = logsumexp(logits[i, :V]), losses[i] = lse - logit[target].
 * backward: logits -> dlogits in place, (softmax - onehot) * dloss over the
 * first V columns and 0 in the padding: the probabilities are never stored. */
cudaError_t gpt_k_classifier_forward_lp(float *lse, float *losses, const gpt_lp *logits, const int *targets, int N,
                                        int V, int Vp, cudaStream_t s);
cudaError_t gpt_k_classifier_backward_lp(gpt_lp *logits, const float *lse, const int *targets, float dloss, int N,
                                         int V, int Vp, cudaStream_t s);

/* Flash-style causal attention (gpt_kernels_flash.cu), for head sizes with
 * gpt_flash_supported(hs, C). forward: out (B,T,C) and the per-row
 * log-sum-exp lse (B*NH*T) from qkv (B,T,3C). backward: dqkv (B,T,3C, SET)
 * from dout (B,T,C); dq_acc (B,T,C) and D (B*NH*T) are fp32 scratch. */
int gpt_flash_supported(int hs, int C);
cudaError_t gpt_k_flash_forward(gpt_lp *out, float *lse, const gpt_lp *qkv, int B, int T, int C, int NH,
                                cudaStream_t s);
cudaError_t gpt_k_flash_backward(gpt_lp *dqkv, float *dq_acc, float *D, const gpt_lp *qkv, const gpt_lp *out,
                                 const gpt_lp *dout, const float *lse, int B, int T, int C, int NH, cudaStream_t s);

#endif
