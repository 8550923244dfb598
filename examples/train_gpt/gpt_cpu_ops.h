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

/* Causal multi-head self-attention for B sequences of T tokens.
 * qkv: (B,T,3C) as [q | k | v], head h at columns h*hs. att: (B,NH,T,T)
 * softmax probabilities (0 above the diagonal). out: (B,T,C). */
void gpt_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);
/* dqkv is SET. datt and dpre are (T,T) scratch. */
void gpt_attention_backward(float *dqkv, float *datt, float *dpre, const float *dout,
                            const float *qkv, const float *att, int B, int T, int C, int NH);

/* dst[i] = a[i] + b[i] */
void gpt_residual_forward(float *dst, const float *a, const float *b, int n);

#ifdef __cplusplus
}
#endif
#endif
