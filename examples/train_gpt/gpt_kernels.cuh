/* SPDX-License-Identifier: Apache-2.0 */
/* Host launchers of the GPT example's CUDA kernels. Every launcher runs on
 * the given stream and returns the launch status (cudaGetLastError), so the
 * caller can report the failing op. Layouts match the CPU twins in
 * gpt_cpu_ops.h, which are the test oracle. */
#ifndef GPT_KERNELS_CUH
#define GPT_KERNELS_CUH

#include <cuda_runtime.h>

#include "shardrt/types.h"

/* out(B,T,C) = wte[tokens] + wpe[t] */
cudaError_t gpt_k_embed_forward(float *out, const int *tokens, const float *wte, const float *wpe,
                                int B, int T, int C, cudaStream_t s);
/* dwte[tok[u]] += the sum of dout over the positions order[seg[u] ..
 * seg[u+1]) for each of the nuniq distinct tokens u (gpt_cuda_set_batch's
 * plan), dwpe[t] += the sum over b: both in a fixed order, no atomics, so
 * the same batch gives the same bits every time. */
cudaError_t gpt_k_embed_backward(float *dwte, float *dwpe, const float *dout, const int *order, const int *tok,
                                 const int *seg, int nuniq, int B, int T, int C, cudaStream_t s);

cudaError_t gpt_k_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                    const float *w, const float *b, int N, int C, cudaStream_t s);
/* dinp, dw, db are ADDED to */
cudaError_t gpt_k_layernorm_backward(float *dinp, float *dw, float *db,
                                     const float *dout, const float *inp, const float *w,
                                     const float *mean, const float *rstd, int N, int C,
                                     cudaStream_t s);

/* out(N,OC) rows = b */
cudaError_t gpt_k_bias_broadcast(float *out, const float *b, int N, int OC, cudaStream_t s);
/* db(OC) += column sums of d(N,OC) */
cudaError_t gpt_k_bias_backward(float *db, const float *d, int N, int OC, cudaStream_t s);

cudaError_t gpt_k_gelu_forward(float *out, const float *inp, int n, cudaStream_t s);
/* dinp = gelu'(inp) * dout (SET) */
cudaError_t gpt_k_gelu_backward(float *dinp, const float *inp, const float *dout, int n, cudaStream_t s);
cudaError_t gpt_k_residual_forward(float *out, const float *a, const float *b, int n, cudaStream_t s);

/* att rows (R rows of T, row i of each T x T block is causal up to i):
 * att = softmax(scale * att) in place, zero above the diagonal. */
cudaError_t gpt_k_softmax_causal_forward(float *att, float scale, int BNH, int T, cudaStream_t s);
/* dpre = scale * att * (datt - rowdot(att, datt)), zero above the diagonal */
cudaError_t gpt_k_softmax_causal_backward(float *dpre, const float *att, const float *datt,
                                          float scale, int BNH, int T, cudaStream_t s);

/* N rows of Vp >= V logits (the padded vocabulary): the first V columns
 * -> probs in place, the padding -> 0 (masked out of the loss);
 * losses[i] = logsumexp(row[:V]) - logits[target] */
cudaError_t gpt_k_crossentropy_forward(float *probs, float *losses, const int *targets, int N, int V, int Vp,
                                       cudaStream_t s);
/* probs -> (probs - onehot) * dloss in place; the padding columns -> 0 (no gradient) */
cudaError_t gpt_k_crossentropy_backward(float *probs, const int *targets, float dloss, int N, int V, int Vp,
                                        cudaStream_t s);

/* dst(f32) = src(dt) */
cudaError_t gpt_k_to_f32(float *dst, const void *src, shardrt_dtype dt, int64_t n, cudaStream_t s);
/* dst(dt) = round(dst + src): adds an fp32 gradient into a view of any dtype */
cudaError_t gpt_k_add_f32_into(void *dst, shardrt_dtype dt, const float *src, int64_t n, cudaStream_t s);

#endif
