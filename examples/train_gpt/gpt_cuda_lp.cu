/* SPDX-License-Identifier: Apache-2.0 */
/* The bf16 path of the GPU GPT (gpt_cuda_options.compute = SHARDRT_BF16):
 * the same stages as gpt_cuda.cu, with every matrix product on bf16 tensor
 * cores (fp32 accumulation) through cuBLASLt, bias and GELU fused into
 * their epilogues, and the residual add fused into the projection that
 * produces it (D = residual + A W^T + b, cuBLASLt's C != D). What a product
 * reads is stored in bf16; the residual stream, LayerNorm statistics,
 * softmax sums and the parameter gradients are fp32.
 *
 * With opt.recompute (activation checkpointing) only the residual stream
 * and LayerNorm statistics are kept per layer; each block's backward
 * re-runs its forward first (one more forward per step, in exchange for
 * ~14 B*T*C*2 + B*NH*T*T*2 bytes per layer).
 *
 * Parameters arrive as fp32 (exactly the bf16 values of the runtime's
 * views when the plan computes in bf16, so the cast back is exact) and are
 * staged into one bf16 copy per block, reused by every block: stream order
 * makes the reuse safe and it costs one pass over the weights per stage. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gpt_cuda_impl.h"
#include "gpt_kernels.cuh"

#define fail gpt_cuda__fail
#define block_input gpt_cuda__lp_block_input

/* bf16 tensors: name, element count (L: per layer, TT: attention) */
/* LA: layers whose block activations are kept (1 with recompute: the
 * block being differentiated re-runs its forward into slot 0) */
/* LA: layers whose block activations are kept (1 with recompute: the
 * block being differentiated re-runs its forward into slot 0). TTM: the
 * materialised attention's T*T, 0 with flash attention (never stored). */
#define LP_FIELDS(X)                                                                                            \
  X(ln1, LA *BTC) X(qkv, LA *BTC * 3) X(att, LA *BNH *TTM) X(atty, LA *BTC) X(ln2, LA *BTC) X(fch, LA *BTC * 4)  \
  X(fch_gelu, LA *BTC * 4) X(lnf, BTC) X(logits, BT *Vp) X(dres, BTC) X(datty, BTC) X(dqkv, BTC * 3)        \
  X(dfch, BTC * 4) X(dpre, BNH *TTM) X(w_qkv, 3 * CC) X(b_qkv, 3 * C) X(w_ap, CC) X(w_fc, 4 * CC)           \
  X(b_fc, 4 * C) X(w_proj, 4 * CC) X(w_head, Vp *C)
/* fp32 scratch of the bf16 path (att_lse, dq_acc, att_dot: flash only) */
#define LP_F32_FIELDS(X)                                                                                      \
  X(lse, BT) X(scores, BNH *TTM) X(datt, BNH *TTM) X(att_lse, FL *LA *BNH *T) X(dq_acc, FL *BTC)              \
  X(att_dot, FL *BNH *T)

struct gpt_cuda_lp {
  int Vp;
#define DECL(f, n) gpt_lp *f;
  LP_FIELDS(DECL)
#undef DECL
#define DECL(f, n) float *f;
  LP_F32_FIELDS(DECL)
#undef DECL
};

int gpt_cuda__lp_create(gpt_cuda *m, char *err, size_t errlen) {
  const long long C = m->cfg.n_embd, CC = C * C, T = m->T;
  const long long LA = m->opt.recompute ? 1 : m->cfg.n_layer;
  const long long FL = m->opt.flash_attention ? 1 : 0, TTM = FL ? 0 : T * T;
  if (FL && !gpt_flash_supported(m->cfg.n_embd / m->cfg.n_head, m->cfg.n_embd)) {
    snprintf(err, errlen, "flash attention needs a head size of 16, 32, 64 or 128 (this model's is %d)",
             m->cfg.n_embd / m->cfg.n_head);
    return -1;
  }
  const long long BT = (long long)m->B * T, BTC = BT * C, BNH = (long long)m->B * m->cfg.n_head;
  const long long Vp = gpt_padded_vocab(m->cfg.vocab);
  if (BT * Vp > INT32_MAX) {
    snprintf(err, errlen, "batch B=%d x T=%d x padded vocab %lld is too large (logits must hold < 2^31 elements)",
             m->B, m->T, Vp);
    return -1;
  }
  gpt_cuda_lp *lp = (gpt_cuda_lp *)calloc(1, sizeof *lp);
  if (!lp) {
    snprintf(err, errlen, "out of host memory for the bf16 model state");
    return -1;
  }
  m->lp = lp;
  lp->Vp = (int)Vp;
  cudaError_t e;
#define ALLOC(f, n, sz)                                                                                     \
  if ((n) > 0 && (e = cudaMalloc((void **)&lp->f, (size_t)(n) * (sz))) != cudaSuccess) {                             \
    (void)cudaGetLastError();                                                                               \
    snprintf(err, errlen, "cudaMalloc of bf16-path tensor '%s' (%lld elements, B=%d T=%d) failed: %s", #f, \
             (long long)(n), m->B, m->T, cudaGetErrorString(e));                                            \
    return -1;                                                                                              \
  }
#define ALLOC_LP(f, n) ALLOC(f, n, sizeof(gpt_lp))
#define ALLOC_F32(f, n) ALLOC(f, n, sizeof(float))
  LP_FIELDS(ALLOC_LP)
  LP_F32_FIELDS(ALLOC_F32)
#undef ALLOC_LP
#undef ALLOC_F32
#undef ALLOC
  /* the padded head rows stay zero: staging writes only the first V rows */
  if ((e = cudaMemset(lp->w_head, 0, (size_t)Vp * C * sizeof(gpt_lp))) != cudaSuccess) {
    (void)cudaGetLastError();
    snprintf(err, errlen, "clearing the padded head weight failed: %s", cudaGetErrorString(e));
    return -1;
  }
  if (gpt_lt_init(&m->lt, err, errlen)) return -1;
  return 0;
}

void gpt_cuda__lp_destroy(gpt_cuda *m) {
  gpt_cuda_lp *lp = m->lp;
  if (!lp) return;
#define FREE(f, n) cudaFree(lp->f);
  LP_FIELDS(FREE)
  LP_F32_FIELDS(FREE)
#undef FREE
  gpt_lt_free(&m->lt);
  free(lp);
  m->lp = NULL;
}

/* ---- products ---- */

/* Row-major D(M,N) = A op B (+ beta C) with an epilogue, bf16 operands.
 * cuBLASLt when it has an algorithm for the shape, alignment and epilogue
 * (and the options allow it); otherwise cuBLAS + the epilogue kernels,
 * which compute the same up to one extra bf16 rounding of the product. */
static int mm(gpt_cuda *m, bool ta, bool tb, int M, int N, int K, const gpt_lp *A, int lda, const gpt_lp *B, int ldb,
              cudaDataType_t cd, float beta, const void *C, void *D, int ldd, gpt_epi epi, const void *bias,
              gpt_lp *aux, int ldaux) {
  cudaStream_t s = m->stream;
  if (!m->opt.no_lt_epilogues) {
    gpt_lt_call c;
    memset(&c, 0, sizeof c);
    c.g = (gpt_rm_gemm){.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldd};
    c.ab = CUDA_R_16BF;
    c.cd = cd;
    c.A = A;
    c.B = B;
    c.alpha = 1.0f;
    c.beta = beta;
    c.C = C;
    c.D = D;
    c.epi = epi;
    c.bias = bias;
    c.aux = aux;
    c.ld_aux = ldaux;
    int rc = gpt_lt_matmul(&m->lt, &c, s, m->err, sizeof m->err);
    if (rc < 0) return -1;
    if (rc == 0) {
      m->lt_fused++;
      return 0;
    }
    m->lt_fallback++;
    snprintf(m->lt_last_fallback, sizeof m->lt_last_fallback, "%dx%dx%d ta %d tb %d epilogue %d out %s ld %d",
             M, N, K, (int)ta, (int)tb, (int)epi, cd == CUDA_R_32F ? "fp32" : "bf16", ldd);
  }
  const size_t esz = cd == CUDA_R_32F ? sizeof(float) : sizeof(gpt_lp);
  if (beta != 0.0f && C != D)
    CK(m, cudaMemcpy2DAsync(D, (size_t)ldd * esz, C, (size_t)ldd * esz, (size_t)N * esz, (size_t)M,
                            cudaMemcpyDeviceToDevice, s),
       "residual copy");
  void *out = epi == GPT_EPI_GELU_AUX_BIAS ? (void *)aux : D;
  const int ldo = epi == GPT_EPI_GELU_AUX_BIAS ? ldaux : ldd;
  if (gpt_cuda__gemm_ex(m, ta, tb, M, N, K, 1.0f, A, lda, 0, B, ldb, 0, CUDA_R_16BF, beta, out, ldo, 0, cd, 1))
    return -1;
  /* the fallback kernels treat D and aux as dense (ld == N): true of every call here */
  if (ldo != N) return fail(m, "internal: fallback epilogue needs dense rows (ld %d, N %d)", ldo, N);
  const int64_t n = (int64_t)M * N;
  switch (epi) {
  case GPT_EPI_BIAS:
    if (cd == CUDA_R_32F) CK(m, gpt_k_bias_add_f32((float *)D, (const float *)bias, M, N, s), "bias add");
    else CK(m, gpt_k_bias_add_lp((gpt_lp *)D, (const gpt_lp *)bias, M, N, s), "bias add");
    break;
  case GPT_EPI_GELU_AUX_BIAS:
    CK(m, gpt_k_bias_add_lp(aux, (const gpt_lp *)bias, M, N, s), "bias add");
    CK(m, gpt_k_gelu_forward_lp((gpt_lp *)D, aux, n, s), "gelu forward");
    break;
  case GPT_EPI_DGELU:
    CK(m, gpt_k_gelu_backward_inplace_lp((gpt_lp *)D, aux, n, s), "gelu backward");
    break;
  default:
    break;
  }
  return 0;
}

/* ---- staging ---- */

static int stage_block_weights(gpt_cuda *m, const float *const *p, int layer) {
  const gpt_config *c = &m->cfg;
  gpt_cuda_lp *lp = m->lp;
  const int64_t C = c->n_embd, CC = C * C;
  cudaStream_t s = m->stream;
#define P(x) p[gpt_pid_layer(c, layer, x)]
  CK(m, gpt_k_f32_to_lp(lp->w_qkv, P(GPT_QKV_W), 3 * CC, s), "stage c_attn weight");
  CK(m, gpt_k_f32_to_lp(lp->b_qkv, P(GPT_QKV_B), 3 * C, s), "stage c_attn bias");
  CK(m, gpt_k_f32_to_lp(lp->w_ap, P(GPT_ATTPROJ_W), CC, s), "stage attn.c_proj weight");
  CK(m, gpt_k_f32_to_lp(lp->w_fc, P(GPT_FC_W), 4 * CC, s), "stage c_fc weight");
  CK(m, gpt_k_f32_to_lp(lp->b_fc, P(GPT_FC_B), 4 * C, s), "stage c_fc bias");
  CK(m, gpt_k_f32_to_lp(lp->w_proj, P(GPT_FCPROJ_W), 4 * CC, s), "stage mlp.c_proj weight");
#undef P
  return 0;
}

/* ---- attention (scores materialised per layer; see docs/PERFORMANCE.md) ---- */

static int attention_forward(gpt_cuda *m, gpt_lp *out, gpt_lp *att, const gpt_lp *qkv) {
  const int B = m->B, T = m->T, C = m->cfg.n_embd, NH = m->cfg.n_head, hs = C / NH, C3 = 3 * C;
  const long long TT = (long long)T * T;
  gpt_cuda_lp *lp = m->lp;
  for (int b = 0; b < B; b++) { /* heads are a uniform stride (hs) only inside one sequence */
    const gpt_lp *q = qkv + (size_t)b * T * C3, *k = q + C;
    if (gpt_cuda__gemm_ex(m, false, true, T, T, hs, 1.0f, q, C3, hs, k, C3, hs, CUDA_R_16BF, 0.0f,
                          lp->scores + (size_t)b * NH * TT, T, TT, CUDA_R_32F, NH))
      return -1;
  }
  CK(m, gpt_k_softmax_causal_forward_lp(att, lp->scores, 1.0f / sqrtf((float)hs), B * NH, T, m->stream),
     "attention softmax");
  for (int b = 0; b < B; b++) {
    const gpt_lp *v = qkv + (size_t)b * T * C3 + 2 * C;
    if (gpt_cuda__gemm_ex(m, false, false, T, hs, T, 1.0f, att + (size_t)b * NH * TT, T, TT, v, C3, hs, CUDA_R_16BF,
                          0.0f, out + (size_t)b * T * C, C, hs, CUDA_R_16BF, NH))
      return -1;
  }
  return 0;
}

static int attention_backward(gpt_cuda *m, gpt_lp *dqkv, const gpt_lp *dout, const gpt_lp *qkv, const gpt_lp *att) {
  const int B = m->B, T = m->T, C = m->cfg.n_embd, NH = m->cfg.n_head, hs = C / NH, C3 = 3 * C;
  const long long TT = (long long)T * T;
  gpt_cuda_lp *lp = m->lp;
  for (int b = 0; b < B; b++) {
    const gpt_lp *v = qkv + (size_t)b * T * C3 + 2 * C, *dy = dout + (size_t)b * T * C;
    const gpt_lp *a = att + (size_t)b * NH * TT;
    gpt_lp *dv = dqkv + (size_t)b * T * C3 + 2 * C;
    if (gpt_cuda__gemm_ex(m, false, true, T, T, hs, 1.0f, dy, C, hs, v, C3, hs, CUDA_R_16BF, 0.0f,
                          lp->datt + (size_t)b * NH * TT, T, TT, CUDA_R_32F, NH))
      return -1;
    if (gpt_cuda__gemm_ex(m, true, false, T, hs, T, 1.0f, a, T, TT, dy, C, hs, CUDA_R_16BF, 0.0f, dv, C3, hs,
                          CUDA_R_16BF, NH))
      return -1;
  }
  CK(m, gpt_k_softmax_causal_backward_lp(lp->dpre, att, lp->datt, 1.0f / sqrtf((float)hs), B * NH, T, m->stream),
     "attention softmax backward");
  for (int b = 0; b < B; b++) {
    const gpt_lp *q = qkv + (size_t)b * T * C3, *k = q + C;
    gpt_lp *dq = dqkv + (size_t)b * T * C3, *dk = dq + C;
    const gpt_lp *dp = lp->dpre + (size_t)b * NH * TT;
    if (gpt_cuda__gemm_ex(m, false, false, T, hs, T, 1.0f, dp, T, TT, k, C3, hs, CUDA_R_16BF, 0.0f, dq, C3, hs,
                          CUDA_R_16BF, NH))
      return -1;
    if (gpt_cuda__gemm_ex(m, true, false, T, hs, T, 1.0f, dp, T, TT, q, C3, hs, CUDA_R_16BF, 0.0f, dk, C3, hs,
                          CUDA_R_16BF, NH))
      return -1;
  }
  return 0;
}

/* ---- stages ---- */

#define LAYER(base, per) ((base) + (size_t)layer * (per))
/* block activations: one slot per layer, or slot 0 for all with recompute */
#define ACT(base, per) ((base) + (size_t)(m->opt.recompute ? 0 : layer) * (per))

int gpt_cuda__lp_block_forward(gpt_cuda *m, const float *const *p, int layer) {
  const gpt_config *c = &m->cfg;
  gpt_cuda_lp *lp = m->lp;
  const int B = m->B, T = m->T, C = c->n_embd, NH = c->n_head, BT = B * T;
  const size_t BTC = (size_t)BT * C, BT_ = (size_t)BT;
  cudaStream_t s = m->stream;
#define P(x) p[gpt_pid_layer(c, layer, x)]
  const float *res = block_input(m, layer);
  gpt_lp *ln1 = ACT(lp->ln1, BTC), *qkv = ACT(lp->qkv, 3 * BTC);
  gpt_lp *att = lp->att ? ACT(lp->att, (size_t)B * NH * T * T) : NULL; /* NULL with flash attention */
  gpt_lp *atty = ACT(lp->atty, BTC), *ln2 = ACT(lp->ln2, BTC);
  gpt_lp *fch = ACT(lp->fch, 4 * BTC), *fch_gelu = ACT(lp->fch_gelu, 4 * BTC);
  float *res2 = LAYER(m->residual2, BTC), *res3 = LAYER(m->residual3, BTC);

  if (stage_block_weights(m, p, layer)) return -1;
  CK(m, gpt_k_layernorm_forward_lp(ln1, LAYER(m->ln1_mean, BT_), LAYER(m->ln1_rstd, BT_), res, P(GPT_LN1_W),
                                   P(GPT_LN1_B), BT, C, s),
     "ln_1 forward");
  if (mm(m, false, true, BT, 3 * C, C, ln1, C, lp->w_qkv, C, CUDA_R_16BF, 0.0f, NULL, qkv, 3 * C, GPT_EPI_BIAS,
         lp->b_qkv, NULL, 0))
    return -1;
  if (m->opt.flash_attention)
    CK(m, gpt_k_flash_forward(atty, ACT(lp->att_lse, (size_t)B * NH * T), qkv, B, T, C, NH, s), "flash attention");
  else if (attention_forward(m, atty, att, qkv))
    return -1;
  /* res2 = res + atty W^T + b in one product */
  if (mm(m, false, true, BT, C, C, atty, C, lp->w_ap, C, CUDA_R_32F, 1.0f, res, res2, C, GPT_EPI_BIAS,
         P(GPT_ATTPROJ_B), NULL, 0))
    return -1;
  CK(m, gpt_k_layernorm_forward_lp(ln2, LAYER(m->ln2_mean, BT_), LAYER(m->ln2_rstd, BT_), res2, P(GPT_LN2_W),
                                   P(GPT_LN2_B), BT, C, s),
     "ln_2 forward");
  /* fch = ln2 W^T + b saved for the backward, fch_gelu = gelu(fch) */
  if (mm(m, false, true, BT, 4 * C, C, ln2, C, lp->w_fc, C, CUDA_R_16BF, 0.0f, NULL, fch_gelu, 4 * C,
         GPT_EPI_GELU_AUX_BIAS, lp->b_fc, fch, 4 * C))
    return -1;
  if (mm(m, false, true, BT, C, 4 * C, fch_gelu, 4 * C, lp->w_proj, 4 * C, CUDA_R_32F, 1.0f, res2, res3, C,
         GPT_EPI_BIAS, P(GPT_FCPROJ_B), NULL, 0))
    return -1;
#undef P
  return 0;
}

int gpt_cuda__lp_head_forward(gpt_cuda *m, const float *const *p) {
  const gpt_config *c = &m->cfg;
  gpt_cuda_lp *lp = m->lp;
  const int BT = m->B * m->T, C = c->n_embd, V = c->vocab, Vp = lp->Vp;
  cudaStream_t s = m->stream;
  CK(m, gpt_k_f32_to_lp(lp->w_head, p[gpt_pid_head(c)], (int64_t)V * C, s), "stage lm_head weight");
  CK(m, gpt_k_layernorm_forward_lp(lp->lnf, m->lnf_mean, m->lnf_rstd, block_input(m, c->n_layer), p[gpt_pid_lnf_w(c)],
                                   p[gpt_pid_lnf_b(c)], BT, C, s),
     "ln_f forward");
  if (mm(m, false, true, BT, Vp, C, lp->lnf, C, lp->w_head, C, CUDA_R_16BF, 0.0f, NULL, lp->logits, Vp, GPT_EPI_NONE,
         NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_classifier_forward_lp(lp->lse, m->losses, lp->logits, m->targets, BT, V, Vp, s), "classifier forward");
  return 0;
}

/* dres (bf16) = dresidual (fp32): what the next products read */
static int dres_to_lp(gpt_cuda *m) {
  CK(m, gpt_k_f32_to_lp(m->lp->dres, m->dresidual, (int64_t)m->B * m->T * m->cfg.n_embd, m->stream),
     "residual gradient cast");
  return 0;
}

int gpt_cuda__lp_head_backward(gpt_cuda *m, const float *const *p, float *const *g, float dloss) {
  const gpt_config *c = &m->cfg;
  gpt_cuda_lp *lp = m->lp;
  const int BT = m->B * m->T, C = c->n_embd, V = c->vocab, Vp = lp->Vp;
  cudaStream_t s = m->stream;
  CK(m, gpt_k_classifier_backward_lp(lp->logits, lp->lse, m->targets, dloss, BT, V, Vp, s), "classifier backward");
  gpt_lp *dlogits = lp->logits;
  /* the padded head rows are zero, and so are the padded dlogits columns */
  if (mm(m, false, false, BT, C, Vp, dlogits, Vp, lp->w_head, C, CUDA_R_32F, 0.0f, NULL, m->dbuf_c, C, GPT_EPI_NONE,
         NULL, NULL, 0))
    return -1;
  float *dwh = g[gpt_pid_head(c)];
  if (mm(m, true, false, V, C, BT, dlogits, Vp, lp->lnf, C, CUDA_R_32F, 1.0f, dwh, dwh, C, GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, cudaMemsetAsync(m->dresidual, 0, (size_t)BT * C * sizeof(float), s), "memset");
  CK(m, gpt_k_layernorm_backward(m->dresidual, g[gpt_pid_lnf_w(c)], g[gpt_pid_lnf_b(c)], m->dbuf_c,
                                 block_input(m, c->n_layer), p[gpt_pid_lnf_w(c)], m->lnf_mean, m->lnf_rstd, BT, C, s),
     "ln_f backward");
  return dres_to_lp(m);
}

int gpt_cuda__lp_block_backward(gpt_cuda *m, const float *const *p, float *const *g, int layer) {
  const gpt_config *c = &m->cfg;
  gpt_cuda_lp *lp = m->lp;
  const int B = m->B, T = m->T, C = c->n_embd, NH = c->n_head, BT = B * T;
  const size_t BTC = (size_t)BT * C, BT_ = (size_t)BT;
  cudaStream_t s = m->stream;
#define P(x) p[gpt_pid_layer(c, layer, x)]
#define G(x) g[gpt_pid_layer(c, layer, x)]
  const float *res = block_input(m, layer), *res2 = LAYER(m->residual2, BTC);
  const gpt_lp *ln1 = ACT(lp->ln1, BTC), *qkv = ACT(lp->qkv, 3 * BTC);
  const gpt_lp *att = lp->att ? ACT(lp->att, (size_t)B * NH * T * T) : NULL, *atty = ACT(lp->atty, BTC);
  const gpt_lp *ln2 = ACT(lp->ln2, BTC), *fch_gelu = ACT(lp->fch_gelu, 4 * BTC);
  gpt_lp *fch = ACT(lp->fch, 4 * BTC);
  float *dres = m->dresidual;

  /* Activation checkpointing: re-run this block's forward from its saved
   * fp32 input (residual3 of the layer below, not rewritten). It rewrites
   * this block's residual2, which the backward below then reads consistently
   * with the recomputed activations, and its residual3, whose readers (the
   * block above) are done. It also stages the weights the backward needs. */
  if (m->opt.recompute) {
    if (gpt_cuda__lp_block_forward(m, p, layer)) return -1;
  } else if (stage_block_weights(m, p, layer)) {
    return -1;
  }
  /* mlp.c_proj, and the GELU gradient in the same product's epilogue */
  if (mm(m, false, false, BT, 4 * C, C, lp->dres, C, lp->w_proj, 4 * C, CUDA_R_16BF, 0.0f, NULL, lp->dfch, 4 * C,
         GPT_EPI_DGELU, NULL, fch, 4 * C))
    return -1;
  if (mm(m, true, false, C, 4 * C, BT, lp->dres, C, fch_gelu, 4 * C, CUDA_R_32F, 1.0f, G(GPT_FCPROJ_W),
         G(GPT_FCPROJ_W), 4 * C, GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_bias_backward(G(GPT_FCPROJ_B), dres, BT, C, s), "mlp.c_proj bias backward");
  /* mlp.c_fc */
  if (mm(m, true, false, 4 * C, C, BT, lp->dfch, 4 * C, ln2, C, CUDA_R_32F, 1.0f, G(GPT_FC_W), G(GPT_FC_W), C,
         GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_bias_backward_lp(G(GPT_FC_B), lp->dfch, BT, 4 * C, s), "c_fc bias backward");
  if (mm(m, false, false, BT, C, 4 * C, lp->dfch, 4 * C, lp->w_fc, C, CUDA_R_32F, 0.0f, NULL, m->dbuf_c, C,
         GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_layernorm_backward(dres, G(GPT_LN2_W), G(GPT_LN2_B), m->dbuf_c, res2, P(GPT_LN2_W),
                                 LAYER(m->ln2_mean, BT_), LAYER(m->ln2_rstd, BT_), BT, C, s),
     "ln_2 backward");
  if (dres_to_lp(m)) return -1;
  /* attn.c_proj */
  if (mm(m, false, false, BT, C, C, lp->dres, C, lp->w_ap, C, CUDA_R_16BF, 0.0f, NULL, lp->datty, C, GPT_EPI_NONE,
         NULL, NULL, 0))
    return -1;
  if (mm(m, true, false, C, C, BT, lp->dres, C, atty, C, CUDA_R_32F, 1.0f, G(GPT_ATTPROJ_W), G(GPT_ATTPROJ_W), C,
         GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_bias_backward(G(GPT_ATTPROJ_B), dres, BT, C, s), "attn.c_proj bias backward");
  if (m->opt.flash_attention)
    CK(m, gpt_k_flash_backward(lp->dqkv, lp->dq_acc, lp->att_dot, qkv, atty, lp->datty,
                               ACT(lp->att_lse, (size_t)B * NH * T), B, T, C, NH, s),
       "flash attention backward");
  else if (attention_backward(m, lp->dqkv, lp->datty, qkv, att))
    return -1;
  /* c_attn */
  if (mm(m, true, false, 3 * C, C, BT, lp->dqkv, 3 * C, ln1, C, CUDA_R_32F, 1.0f, G(GPT_QKV_W), G(GPT_QKV_W), C,
         GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_bias_backward_lp(G(GPT_QKV_B), lp->dqkv, BT, 3 * C, s), "c_attn bias backward");
  if (mm(m, false, false, BT, C, 3 * C, lp->dqkv, 3 * C, lp->w_qkv, C, CUDA_R_32F, 0.0f, NULL, m->dbuf_c, C,
         GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_layernorm_backward(dres, G(GPT_LN1_W), G(GPT_LN1_B), m->dbuf_c, res, P(GPT_LN1_W),
                                 LAYER(m->ln1_mean, BT_), LAYER(m->ln1_rstd, BT_), BT, C, s),
     "ln_1 backward");
#undef P
#undef G
  return layer > 0 ? dres_to_lp(m) : 0; /* the embedding backward reads the fp32 gradient */
}
