/* SPDX-License-Identifier: Apache-2.0 */
/* The low-precision paths of the GPU GPT (gpt_cuda_options.compute =
 * SHARDRT_BF16 or SHARDRT_F16): the same stages as gpt_cuda.cu, with every
 * matrix product on 16-bit tensor cores (fp32 accumulation) through
 * cuBLASLt, bias and GELU fused into their epilogues, and the residual add
 * fused into the projection that produces it (D = residual + A W^T + b,
 * cuBLASLt's C != D). What a product reads is stored in the compute dtype
 * (LP: bf16 or fp16, one template instantiated for both); the residual
 * stream, LayerNorm statistics, softmax sums and the parameter gradients
 * are fp32. fp16 trains under the runtime's loss scaling: the scale is in
 * the dloss the trainer passes, and an fp16 overflow anywhere in the
 * backward reaches the fp32 gradients as inf/NaN, which the runtime's
 * dynamic scaler detects (gpt_kernels_lp.cuh).
 *
 * With opt.recompute (activation checkpointing) only the residual stream
 * and LayerNorm statistics are kept per layer; each block's backward
 * re-runs its forward first (one more forward per step, in exchange for
 * ~14 B*T*C*2 + B*NH*T*T*2 bytes per layer). Every per-layer slot starts
 * 256-byte aligned (gpt_cuda__slot), so the products see the same
 * alignment, pick the same kernels and give the same bits either way.
 *
 * Parameters arrive as fp32 (exactly the LP values of the runtime's views
 * when the plan computes in LP, so the cast back is exact) and are staged
 * into one LP copy per block, reused by every block: stream order makes
 * the reuse safe and it costs one pass over the weights per stage. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gpt_cuda_impl.h"
#include "gpt_kernels.cuh"

#define fail gpt_cuda__fail
#define block_input gpt_cuda__lp_block_input

/* LP tensors: X(name, slots, elements per slot). LA: layers whose block
 * activations are kept (1 with recompute: the block being differentiated
 * re-runs its forward into slot 0). TTM: the materialised attention's T*T,
 * 0 with flash attention (never stored). */
#define LP_FIELDS(X)                                                                                          \
  X(ln1, LA, BTC) X(qkv, LA, BTC * 3) X(att, LA, BNH *TTM) X(atty, LA, BTC) X(ln2, LA, BTC)                   \
  X(fch, LA, BTC * 4) X(fch_gelu, LA, BTC * 4) X(lnf, 1, BTC) X(logits, 1, BT *Vp) X(dres, 1, BTC)            \
  X(datty, 1, BTC) X(dqkv, 1, BTC * 3) X(dfch, 1, BTC * 4) X(dpre, 1, BNH *TTM) X(w_qkv, 1, 3 * CC)           \
  X(b_qkv, 1, 3 * C) X(w_ap, 1, CC) X(w_fc, 1, 4 * CC) X(b_fc, 1, 4 * C) X(w_proj, 1, 4 * CC) X(w_head, 1, Vp *C)
/* fp32 scratch of the LP paths (att_lse, dq_acc, att_dot: flash only) */
#define LP_F32_FIELDS(X)                                                                                      \
  X(lse, 1, BT) X(scores, 1, BNH *TTM) X(datt, 1, BNH *TTM) X(att_lse, LA, FL *BNH *T) X(dq_acc, 1, FL *BTC)  \
  X(att_dot, 1, FL *BNH *T)

/* the LP tensors of one storage type */
template <typename LP> struct lp_bufs {
#define DECL(f, k, n) LP *f;
  LP_FIELDS(DECL)
#undef DECL
};

struct gpt_cuda_lp {
  int Vp;
  lp_bufs<gpt_bf16> bf; /* allocated when compute is bf16 */
  lp_bufs<gpt_f16> hf;  /* allocated when compute is fp16 */
#define DECL(f, k, n) float *f;
  LP_F32_FIELDS(DECL)
#undef DECL
};

template <typename LP> static lp_bufs<LP> &bufs(gpt_cuda_lp *lp);
template <> lp_bufs<gpt_bf16> &bufs<gpt_bf16>(gpt_cuda_lp *lp) { return lp->bf; }
template <> lp_bufs<gpt_f16> &bufs<gpt_f16>(gpt_cuda_lp *lp) { return lp->hf; }

/* The sizes the field lists use, for model m. */
#define LP_DIMS(m)                                                                                             \
  const long long C = (m)->cfg.n_embd, CC = C * C, T = (m)->T;                                                 \
  const long long LA = (m)->opt.recompute ? 1 : (m)->cfg.n_layer;                                              \
  const long long FL = (m)->opt.flash_attention ? 1 : 0, TTM = FL ? 0 : T * T;                                 \
  const long long BT = (long long)(m)->B * T, BTC = BT * C, BNH = (long long)(m)->B * (m)->cfg.n_head;         \
  const long long Vp = gpt_padded_vocab((m)->cfg.vocab);                                                       \
  (void)CC, (void)LA, (void)TTM, (void)BTC, (void)BNH, (void)Vp

/* k slots of n elements each, every slot 256-byte aligned (none when n is 0) */
#define LP_ALLOC(ptr, nm, k, n, sz)                                                                          \
  if ((n) > 0 && (e = cudaMalloc((void **)&(ptr), (size_t)(k) * gpt_cuda__slot(n) * (sz))) != cudaSuccess) {  \
    (void)cudaGetLastError();                                                                                  \
    snprintf(err, errlen, "cudaMalloc of %s-path tensor '%s' (%lld x %lld elements, B=%d T=%d) failed: %s",   \
             gpt_lp_traits<LP>::name, nm, (long long)(k), (long long)(n), m->B, m->T, cudaGetErrorString(e)); \
    return -1;                                                                                                 \
  }

template <typename LP> static int lp_alloc(gpt_cuda *m, char *err, size_t errlen) {
  LP_DIMS(m);
  gpt_cuda_lp *lp = m->lp;
  lp_bufs<LP> &b = bufs<LP>(lp);
  cudaError_t e;
#define ALLOC_LP(f, k, n) LP_ALLOC(b.f, #f, k, n, sizeof(LP))
#define ALLOC_F32(f, k, n) LP_ALLOC(lp->f, #f, k, n, sizeof(float))
  LP_FIELDS(ALLOC_LP)
  LP_F32_FIELDS(ALLOC_F32)
#undef ALLOC_LP
#undef ALLOC_F32
  /* the padded head rows stay zero: staging writes only the first V rows */
  if ((e = cudaMemset(b.w_head, 0, (size_t)Vp * C * sizeof(LP))) != cudaSuccess) {
    (void)cudaGetLastError();
    snprintf(err, errlen, "clearing the padded head weight failed: %s", cudaGetErrorString(e));
    return -1;
  }
  return 0;
}

int gpt_cuda__lp_create(gpt_cuda *m, char *err, size_t errlen) {
  LP_DIMS(m);
  if (FL && !gpt_flash_supported(m->cfg.n_embd / m->cfg.n_head, m->cfg.n_embd)) {
    snprintf(err, errlen, "flash attention needs a head size of 16, 32, 64 or 128 (this model's is %d)",
             m->cfg.n_embd / m->cfg.n_head);
    return -1;
  }
  if (BT * Vp > INT32_MAX) {
    snprintf(err, errlen, "batch B=%d x T=%d x padded vocab %lld is too large (logits must hold < 2^31 elements)",
             m->B, m->T, Vp);
    return -1;
  }
  gpt_cuda_lp *lp = (gpt_cuda_lp *)calloc(1, sizeof *lp);
  if (!lp) {
    snprintf(err, errlen, "out of host memory for the %s model state", m->opt.compute == SHARDRT_F16 ? "fp16" : "bf16");
    return -1;
  }
  m->lp = lp;
  lp->Vp = (int)Vp;
  if (m->opt.compute == SHARDRT_F16 ? lp_alloc<gpt_f16>(m, err, errlen) : lp_alloc<gpt_bf16>(m, err, errlen))
    return -1;
  if (gpt_lt_init(&m->lt, err, errlen)) return -1;
  return 0;
}

void gpt_cuda__lp_destroy(gpt_cuda *m) {
  gpt_cuda_lp *lp = m->lp;
  if (!lp) return;
#define FREE(f, k, n) cudaFree(lp->bf.f), cudaFree(lp->hf.f);
  LP_FIELDS(FREE)
#undef FREE
#define FREE(f, k, n) cudaFree(lp->f);
  LP_F32_FIELDS(FREE)
#undef FREE
  gpt_lt_free(&m->lt);
  free(lp);
  m->lp = NULL;
}

/* ---- products ---- */

/* the cudaDataType of the storage type, in the templates below */
#define LPT (gpt_lp_traits<LP>::cuda)

/* Row-major D(M,N) = A op B (+ beta C) with an epilogue, LP operands.
 * cuBLASLt when it has an algorithm for the shape, alignment and epilogue
 * (and the options allow it); otherwise cuBLAS + the epilogue kernels,
 * which compute the same up to one extra LP rounding of the product. */
template <typename LP>
static int mm(gpt_cuda *m, bool ta, bool tb, int M, int N, int K, const LP *A, int lda, const LP *B, int ldb,
              cudaDataType_t cd, float beta, const void *C, void *D, int ldd, gpt_epi epi, const void *bias,
              LP *aux, int ldaux) {
  cudaStream_t s = m->stream;
  if (!m->opt.no_lt_epilogues) {
    gpt_lt_call c;
    memset(&c, 0, sizeof c);
    c.g = (gpt_rm_gemm){.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldd};
    c.ab = LPT;
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
             M, N, K, (int)ta, (int)tb, (int)epi, cd == CUDA_R_32F ? "fp32" : gpt_lp_traits<LP>::name, ldd);
  }
  const size_t esz = cd == CUDA_R_32F ? sizeof(float) : sizeof(LP);
  if (beta != 0.0f && C != D)
    CK(m, cudaMemcpy2DAsync(D, (size_t)ldd * esz, C, (size_t)ldd * esz, (size_t)N * esz, (size_t)M,
                            cudaMemcpyDeviceToDevice, s),
       "residual copy");
  void *out = epi == GPT_EPI_GELU_AUX_BIAS ? (void *)aux : D;
  const int ldo = epi == GPT_EPI_GELU_AUX_BIAS ? ldaux : ldd;
  if (gpt_cuda__gemm_ex(m, ta, tb, M, N, K, 1.0f, A, lda, 0, B, ldb, 0, LPT, beta, out, ldo, 0, cd, 1))
    return -1;
  /* the fallback kernels treat D and aux as dense (ld == N): true of every call here */
  if (ldo != N) return fail(m, "internal: fallback epilogue needs dense rows (ld %d, N %d)", ldo, N);
  const int64_t n = (int64_t)M * N;
  switch (epi) {
  case GPT_EPI_BIAS:
    if (cd == CUDA_R_32F) CK(m, gpt_k_bias_add_f32((float *)D, (const float *)bias, M, N, s), "bias add");
    else CK(m, gpt_k_bias_add_lp((LP *)D, (const LP *)bias, M, N, s), "bias add");
    break;
  case GPT_EPI_GELU_AUX_BIAS:
    CK(m, gpt_k_bias_add_lp(aux, (const LP *)bias, M, N, s), "bias add");
    CK(m, gpt_k_gelu_forward_lp((LP *)D, aux, n, s), "gelu forward");
    break;
  case GPT_EPI_DGELU:
    CK(m, gpt_k_gelu_backward_inplace_lp((LP *)D, aux, n, s), "gelu backward");
    break;
  default:
    break;
  }
  return 0;
}

/* ---- staging ---- */

template <typename LP> static int stage_block_weights(gpt_cuda *m, const float *const *p, int layer) {
  const gpt_config *c = &m->cfg;
  gpt_cuda_lp *lp = m->lp;
  lp_bufs<LP> &lb = bufs<LP>(lp);
  const int64_t C = c->n_embd, CC = C * C;
  cudaStream_t s = m->stream;
#define P(x) p[gpt_pid_layer(c, layer, x)]
  CK(m, gpt_k_f32_to_lp(lb.w_qkv, P(GPT_QKV_W), 3 * CC, s), "stage c_attn weight");
  CK(m, gpt_k_f32_to_lp(lb.b_qkv, P(GPT_QKV_B), 3 * C, s), "stage c_attn bias");
  CK(m, gpt_k_f32_to_lp(lb.w_ap, P(GPT_ATTPROJ_W), CC, s), "stage attn.c_proj weight");
  CK(m, gpt_k_f32_to_lp(lb.w_fc, P(GPT_FC_W), 4 * CC, s), "stage c_fc weight");
  CK(m, gpt_k_f32_to_lp(lb.b_fc, P(GPT_FC_B), 4 * C, s), "stage c_fc bias");
  CK(m, gpt_k_f32_to_lp(lb.w_proj, P(GPT_FCPROJ_W), 4 * CC, s), "stage mlp.c_proj weight");
#undef P
  return 0;
}

/* ---- attention (scores materialised per layer; see docs/PERFORMANCE.md) ---- */

template <typename LP> static int attention_forward(gpt_cuda *m, LP *out, LP *att, const LP *qkv) {
  const int B = m->B, T = m->T, C = m->cfg.n_embd, NH = m->cfg.n_head, hs = C / NH, C3 = 3 * C;
  const long long TT = (long long)T * T;
  gpt_cuda_lp *lp = m->lp;
  for (int b = 0; b < B; b++) { /* heads are a uniform stride (hs) only inside one sequence */
    const LP *q = qkv + (size_t)b * T * C3, *k = q + C;
    if (gpt_cuda__gemm_ex(m, false, true, T, T, hs, 1.0f, q, C3, hs, k, C3, hs, LPT, 0.0f,
                          lp->scores + (size_t)b * NH * TT, T, TT, CUDA_R_32F, NH))
      return -1;
  }
  CK(m, gpt_k_softmax_causal_forward_lp(att, lp->scores, 1.0f / sqrtf((float)hs), B * NH, T, m->stream),
     "attention softmax");
  for (int b = 0; b < B; b++) {
    const LP *v = qkv + (size_t)b * T * C3 + 2 * C;
    if (gpt_cuda__gemm_ex(m, false, false, T, hs, T, 1.0f, att + (size_t)b * NH * TT, T, TT, v, C3, hs, LPT,
                          0.0f, out + (size_t)b * T * C, C, hs, LPT, NH))
      return -1;
  }
  return 0;
}

template <typename LP>
static int attention_backward(gpt_cuda *m, LP *dqkv, const LP *dout, const LP *qkv, const LP *att) {
  const int B = m->B, T = m->T, C = m->cfg.n_embd, NH = m->cfg.n_head, hs = C / NH, C3 = 3 * C;
  const long long TT = (long long)T * T;
  gpt_cuda_lp *lp = m->lp;
  lp_bufs<LP> &lb = bufs<LP>(lp);
  for (int b = 0; b < B; b++) {
    const LP *v = qkv + (size_t)b * T * C3 + 2 * C, *dy = dout + (size_t)b * T * C;
    const LP *a = att + (size_t)b * NH * TT;
    LP *dv = dqkv + (size_t)b * T * C3 + 2 * C;
    if (gpt_cuda__gemm_ex(m, false, true, T, T, hs, 1.0f, dy, C, hs, v, C3, hs, LPT, 0.0f,
                          lp->datt + (size_t)b * NH * TT, T, TT, CUDA_R_32F, NH))
      return -1;
    if (gpt_cuda__gemm_ex(m, true, false, T, hs, T, 1.0f, a, T, TT, dy, C, hs, LPT, 0.0f, dv, C3, hs,
                          LPT, NH))
      return -1;
  }
  CK(m, gpt_k_softmax_causal_backward_lp(lb.dpre, att, lp->datt, 1.0f / sqrtf((float)hs), B * NH, T, m->stream),
     "attention softmax backward");
  for (int b = 0; b < B; b++) {
    const LP *q = qkv + (size_t)b * T * C3, *k = q + C;
    LP *dq = dqkv + (size_t)b * T * C3, *dk = dq + C;
    const LP *dp = lb.dpre + (size_t)b * NH * TT;
    if (gpt_cuda__gemm_ex(m, false, false, T, hs, T, 1.0f, dp, T, TT, k, C3, hs, LPT, 0.0f, dq, C3, hs,
                          LPT, NH))
      return -1;
    if (gpt_cuda__gemm_ex(m, true, false, T, hs, T, 1.0f, dp, T, TT, q, C3, hs, LPT, 0.0f, dk, C3, hs,
                          LPT, NH))
      return -1;
  }
  return 0;
}

/* ---- stages ---- */

/* per-layer tensors: one 256-byte aligned slot per layer (gpt_cuda__slot) */
#define LAYER(base, per) ((base) + (size_t)layer * gpt_cuda__slot(per))
/* block activations: one slot per layer, or slot 0 for all with recompute */
#define ACT(base, per) ((base) + (size_t)(m->opt.recompute ? 0 : layer) * gpt_cuda__slot(per))

template <typename LP> static int lp_block_forward(gpt_cuda *m, const float *const *p, int layer) {
  const gpt_config *c = &m->cfg;
  gpt_cuda_lp *lp = m->lp;
  lp_bufs<LP> &lb = bufs<LP>(lp);
  const int B = m->B, T = m->T, C = c->n_embd, NH = c->n_head, BT = B * T;
  const size_t BTC = (size_t)BT * C, BT_ = (size_t)BT;
  cudaStream_t s = m->stream;
#define P(x) p[gpt_pid_layer(c, layer, x)]
  const float *res = block_input(m, layer);
  LP *ln1 = ACT(lb.ln1, BTC), *qkv = ACT(lb.qkv, 3 * BTC);
  LP *att = lb.att ? ACT(lb.att, (size_t)B * NH * T * T) : NULL; /* NULL with flash attention */
  LP *atty = ACT(lb.atty, BTC), *ln2 = ACT(lb.ln2, BTC);
  LP *fch = ACT(lb.fch, 4 * BTC), *fch_gelu = ACT(lb.fch_gelu, 4 * BTC);
  float *res2 = LAYER(m->residual2, BTC), *res3 = LAYER(m->residual3, BTC);

  if (stage_block_weights<LP>(m, p, layer)) return -1;
  CK(m, gpt_k_layernorm_forward_lp(ln1, LAYER(m->ln1_mean, BT_), LAYER(m->ln1_rstd, BT_), res, P(GPT_LN1_W),
                                   P(GPT_LN1_B), BT, C, s),
     "ln_1 forward");
  if (mm<LP>(m, false, true, BT, 3 * C, C, ln1, C, lb.w_qkv, C, LPT, 0.0f, NULL, qkv, 3 * C, GPT_EPI_BIAS,
         lb.b_qkv, NULL, 0))
    return -1;
  if (m->opt.flash_attention)
    CK(m, gpt_k_flash_forward(atty, ACT(lp->att_lse, (size_t)B * NH * T), qkv, B, T, C, NH, s), "flash attention");
  else if (attention_forward(m, atty, att, qkv))
    return -1;
  /* res2 = res + atty W^T + b in one product */
  if (mm<LP>(m, false, true, BT, C, C, atty, C, lb.w_ap, C, CUDA_R_32F, 1.0f, res, res2, C, GPT_EPI_BIAS,
         P(GPT_ATTPROJ_B), NULL, 0))
    return -1;
  CK(m, gpt_k_layernorm_forward_lp(ln2, LAYER(m->ln2_mean, BT_), LAYER(m->ln2_rstd, BT_), res2, P(GPT_LN2_W),
                                   P(GPT_LN2_B), BT, C, s),
     "ln_2 forward");
  /* fch = ln2 W^T + b saved for the backward, fch_gelu = gelu(fch) */
  if (mm<LP>(m, false, true, BT, 4 * C, C, ln2, C, lb.w_fc, C, LPT, 0.0f, NULL, fch_gelu, 4 * C,
         GPT_EPI_GELU_AUX_BIAS, lb.b_fc, fch, 4 * C))
    return -1;
  if (mm<LP>(m, false, true, BT, C, 4 * C, fch_gelu, 4 * C, lb.w_proj, 4 * C, CUDA_R_32F, 1.0f, res2, res3, C,
         GPT_EPI_BIAS, P(GPT_FCPROJ_B), NULL, 0))
    return -1;
#undef P
  return 0;
}

template <typename LP> static int lp_head_forward(gpt_cuda *m, const float *const *p) {
  const gpt_config *c = &m->cfg;
  gpt_cuda_lp *lp = m->lp;
  lp_bufs<LP> &lb = bufs<LP>(lp);
  const int BT = m->B * m->T, C = c->n_embd, V = c->vocab, Vp = lp->Vp;
  cudaStream_t s = m->stream;
  CK(m, gpt_k_f32_to_lp(lb.w_head, p[gpt_pid_head(c)], (int64_t)V * C, s), "stage lm_head weight");
  CK(m, gpt_k_layernorm_forward_lp(lb.lnf, m->lnf_mean, m->lnf_rstd, block_input(m, c->n_layer), p[gpt_pid_lnf_w(c)],
                                   p[gpt_pid_lnf_b(c)], BT, C, s),
     "ln_f forward");
  if (mm<LP>(m, false, true, BT, Vp, C, lb.lnf, C, lb.w_head, C, LPT, 0.0f, NULL, lb.logits, Vp, GPT_EPI_NONE,
         NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_classifier_forward_lp(lp->lse, m->losses, lb.logits, m->targets, BT, V, Vp, s), "classifier forward");
  return 0;
}

/* dres (LP) = dresidual (fp32): what the next products read */
template <typename LP> static int dres_to_lp(gpt_cuda *m) {
  lp_bufs<LP> &lb = bufs<LP>(m->lp);
  CK(m, gpt_k_f32_to_lp(lb.dres, m->dresidual, (int64_t)m->B * m->T * m->cfg.n_embd, m->stream),
     "residual gradient cast");
  return 0;
}

template <typename LP> static int lp_head_backward(gpt_cuda *m, const float *const *p, float *const *g, float dloss) {
  const gpt_config *c = &m->cfg;
  gpt_cuda_lp *lp = m->lp;
  lp_bufs<LP> &lb = bufs<LP>(lp);
  const int BT = m->B * m->T, C = c->n_embd, V = c->vocab, Vp = lp->Vp;
  cudaStream_t s = m->stream;
  CK(m, gpt_k_classifier_backward_lp(lb.logits, lp->lse, m->targets, dloss, BT, V, Vp, s), "classifier backward");
  LP *dlogits = lb.logits;
  /* the padded head rows are zero, and so are the padded dlogits columns */
  if (mm<LP>(m, false, false, BT, C, Vp, dlogits, Vp, lb.w_head, C, CUDA_R_32F, 0.0f, NULL, m->dbuf_c, C, GPT_EPI_NONE,
         NULL, NULL, 0))
    return -1;
  float *dwh = g[gpt_pid_head(c)];
  if (mm<LP>(m, true, false, V, C, BT, dlogits, Vp, lb.lnf, C, CUDA_R_32F, 1.0f, dwh, dwh, C, GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, cudaMemsetAsync(m->dresidual, 0, (size_t)BT * C * sizeof(float), s), "memset");
  CK(m, gpt_k_layernorm_backward(m->dresidual, g[gpt_pid_lnf_w(c)], g[gpt_pid_lnf_b(c)], m->dbuf_c,
                                 block_input(m, c->n_layer), p[gpt_pid_lnf_w(c)], m->lnf_mean, m->lnf_rstd, BT, C, s),
     "ln_f backward");
  return dres_to_lp<LP>(m);
}

template <typename LP> static int lp_block_backward(gpt_cuda *m, const float *const *p, float *const *g, int layer) {
  const gpt_config *c = &m->cfg;
  gpt_cuda_lp *lp = m->lp;
  lp_bufs<LP> &lb = bufs<LP>(lp);
  const int B = m->B, T = m->T, C = c->n_embd, NH = c->n_head, BT = B * T;
  const size_t BTC = (size_t)BT * C, BT_ = (size_t)BT;
  cudaStream_t s = m->stream;
#define P(x) p[gpt_pid_layer(c, layer, x)]
#define G(x) g[gpt_pid_layer(c, layer, x)]
  const float *res = block_input(m, layer), *res2 = LAYER(m->residual2, BTC);
  const LP *ln1 = ACT(lb.ln1, BTC), *qkv = ACT(lb.qkv, 3 * BTC);
  const LP *att = lb.att ? ACT(lb.att, (size_t)B * NH * T * T) : NULL, *atty = ACT(lb.atty, BTC);
  const LP *ln2 = ACT(lb.ln2, BTC), *fch_gelu = ACT(lb.fch_gelu, 4 * BTC);
  LP *fch = ACT(lb.fch, 4 * BTC);
  float *dres = m->dresidual;

  /* Activation checkpointing: re-run this block's forward from its saved
   * fp32 input (residual3 of the layer below, not rewritten). It rewrites
   * this block's residual2, which the backward below then reads consistently
   * with the recomputed activations, and its residual3, whose readers (the
   * block above) are done. It also stages the weights the backward needs. */
  if (m->opt.recompute) {
    if (lp_block_forward<LP>(m, p, layer)) return -1;
  } else if (stage_block_weights<LP>(m, p, layer)) {
    return -1;
  }
  /* mlp.c_proj, and the GELU gradient in the same product's epilogue */
  if (mm<LP>(m, false, false, BT, 4 * C, C, lb.dres, C, lb.w_proj, 4 * C, LPT, 0.0f, NULL, lb.dfch, 4 * C,
         GPT_EPI_DGELU, NULL, fch, 4 * C))
    return -1;
  if (mm<LP>(m, true, false, C, 4 * C, BT, lb.dres, C, fch_gelu, 4 * C, CUDA_R_32F, 1.0f, G(GPT_FCPROJ_W),
         G(GPT_FCPROJ_W), 4 * C, GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_bias_backward(G(GPT_FCPROJ_B), dres, BT, C, s), "mlp.c_proj bias backward");
  /* mlp.c_fc */
  if (mm<LP>(m, true, false, 4 * C, C, BT, lb.dfch, 4 * C, ln2, C, CUDA_R_32F, 1.0f, G(GPT_FC_W), G(GPT_FC_W), C,
         GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_bias_backward_lp(G(GPT_FC_B), lb.dfch, BT, 4 * C, s), "c_fc bias backward");
  if (mm<LP>(m, false, false, BT, C, 4 * C, lb.dfch, 4 * C, lb.w_fc, C, CUDA_R_32F, 0.0f, NULL, m->dbuf_c, C,
         GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_layernorm_backward(dres, G(GPT_LN2_W), G(GPT_LN2_B), m->dbuf_c, res2, P(GPT_LN2_W),
                                 LAYER(m->ln2_mean, BT_), LAYER(m->ln2_rstd, BT_), BT, C, s),
     "ln_2 backward");
  if (dres_to_lp<LP>(m)) return -1;
  /* attn.c_proj */
  if (mm<LP>(m, false, false, BT, C, C, lb.dres, C, lb.w_ap, C, LPT, 0.0f, NULL, lb.datty, C, GPT_EPI_NONE,
         NULL, NULL, 0))
    return -1;
  if (mm<LP>(m, true, false, C, C, BT, lb.dres, C, atty, C, CUDA_R_32F, 1.0f, G(GPT_ATTPROJ_W), G(GPT_ATTPROJ_W), C,
         GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_bias_backward(G(GPT_ATTPROJ_B), dres, BT, C, s), "attn.c_proj bias backward");
  if (m->opt.flash_attention)
    CK(m, gpt_k_flash_backward(lb.dqkv, lp->dq_acc, lp->att_dot, qkv, atty, lb.datty,
                               ACT(lp->att_lse, (size_t)B * NH * T), B, T, C, NH, s),
       "flash attention backward");
  else if (attention_backward(m, lb.dqkv, lb.datty, qkv, att))
    return -1;
  /* c_attn */
  if (mm<LP>(m, true, false, 3 * C, C, BT, lb.dqkv, 3 * C, ln1, C, CUDA_R_32F, 1.0f, G(GPT_QKV_W), G(GPT_QKV_W), C,
         GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_bias_backward_lp(G(GPT_QKV_B), lb.dqkv, BT, 3 * C, s), "c_attn bias backward");
  if (mm<LP>(m, false, false, BT, C, 3 * C, lb.dqkv, 3 * C, lb.w_qkv, C, CUDA_R_32F, 0.0f, NULL, m->dbuf_c, C,
         GPT_EPI_NONE, NULL, NULL, 0))
    return -1;
  CK(m, gpt_k_layernorm_backward(dres, G(GPT_LN1_W), G(GPT_LN1_B), m->dbuf_c, res, P(GPT_LN1_W),
                                 LAYER(m->ln1_mean, BT_), LAYER(m->ln1_rstd, BT_), BT, C, s),
     "ln_1 backward");
#undef P
#undef G
  return layer > 0 ? dres_to_lp<LP>(m) : 0; /* the embedding backward reads the fp32 gradient */
}

/* ---- entry points: the instantiation the compute dtype names ---- */

#define LP_DISPATCH(call) (m->opt.compute == SHARDRT_F16 ? call<gpt_f16> : call<gpt_bf16>)

int gpt_cuda__lp_block_forward(gpt_cuda *m, const float *const *p, int layer) {
  return LP_DISPATCH(lp_block_forward)(m, p, layer);
}
int gpt_cuda__lp_head_forward(gpt_cuda *m, const float *const *p) { return LP_DISPATCH(lp_head_forward)(m, p); }
int gpt_cuda__lp_head_backward(gpt_cuda *m, const float *const *p, float *const *g, float dloss) {
  return LP_DISPATCH(lp_head_backward)(m, p, g, dloss);
}
int gpt_cuda__lp_block_backward(gpt_cuda *m, const float *const *p, float *const *g, int layer) {
  return LP_DISPATCH(lp_block_backward)(m, p, g, layer);
}
