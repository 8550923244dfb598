/* SPDX-License-Identifier: Apache-2.0 */
/* The CPU layer primitives of the GPT model (fp32, row-major). Each forward
 * has its backward beside it; backward functions ADD into parameter
 * gradients and into the input gradient where the comment says so. */
#ifndef GPT_CPU_OPS_H
#define GPT_CPU_OPS_H

#ifdef __cplusplus
extern "C" {
#endif

#define GPT_LN_EPS 1e-5f

/* out = LayerNorm(inp) * w + b over the last dim C, N rows; saves mean and
 * 1/std per row for the backward. */
void gpt_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C);
/* dinp, dw, db are ADDED to. */
void gpt_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int N, int C);

/* out(N,OC) = inp(N,C) @ w(OC,C)^T + b (b may be NULL). */
void gpt_matmul_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                        int OC);
/* dinp is SET (may be NULL); dw and db (may be NULL) are ADDED to. */
void gpt_matmul_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, int N, int C, int OC);

/* GELU, tanh approximation (GPT-2's). dinp is SET. */
void gpt_gelu_forward(float *out, const float *inp, int n);
void gpt_gelu_backward(float *dinp, const float *inp, const float *dout, int n);

/* Causal multi-head self-attention for B sequences of T tokens, blocked
 * over GPT_ATT_ROWS query rows at a time: a block's scores cover only the
 * keys up to its last row (the causal triangle, not T x T), and only the
 * softmax's per-row max and 1/sum are kept, (B,NH,T,2) in `stats`; the
 * backward recomputes the block's probabilities from them, bit-identical
 * to the forward's. qkv: (B,T,3C) as [q | k | v], head h at columns h*hs.
 * out: (B,T,C). scratch: GPT_ATT_ROWS * T floats. */
#define GPT_ATT_ROWS 64
void gpt_attention_forward(float *out, float *stats, float *scratch, const float *qkv, int B, int T, int C,
                           int NH);
/* dqkv is SET. scratch_p and scratch_dp: GPT_ATT_ROWS * T floats each. */
void gpt_attention_backward(float *dqkv, float *scratch_p, float *scratch_dp, const float *dout,
                            const float *qkv, const float *stats, int B, int T, int C, int NH);

/* dst[i] = a[i] + b[i] */
void gpt_residual_forward(float *dst, const float *a, const float *b, int n);

/* out(N,OC) = res(N,OC) + inp(N,C) @ w(OC,C)^T + b: a projection added to
 * the residual stream in one pass, without the projection's own array. */
void gpt_matmul_residual_forward(float *out, const float *res, const float *inp, const float *w, const float *b,
                                 int N, int C, int OC);

/* Softmax cross-entropy over rows of V logits, in place: logits become
 * probabilities, losses[i] = logsumexp - logit[target]; returns the sum of
 * the losses (in double). */
double gpt_crossentropy_forward(float *logits, float *losses, const int *targets, int N, int V);

/* e^x for x in float range, the form the compiler vectorises (no libm
 * call): a Cody-Waite reduction and Cephes' degree-6 polynomial; inputs are
 * clamped to [-87, 88] (the normal range). Exposed for its test. */
float gpt_expf(float x);

#ifdef __cplusplus
}
#endif
#endif
