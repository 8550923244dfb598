/* SPDX-License-Identifier: Apache-2.0 */
/* GPT-2 stages on the GPU. The structure mirrors gpt_cpu.c line for line
 * (same activations, same order of operations) so the CPU path is a direct
 * oracle; matrix products go through one row-major wrapper over
 * cublasSgemmStridedBatched, so every call reads like its cblas twin. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_cuda_impl.h"
#include "gpt_kernels.cuh"

int gpt_cuda__fail(gpt_cuda *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m->err, sizeof m->err, fmt, ap);
  va_end(ap);
  return -1;
}
#define fail gpt_cuda__fail

int gpt_cuda__gemm_ex(gpt_cuda *m, bool ta, bool tb, int M, int N, int K, float alpha, const void *A, int lda,
                      long long sA, const void *Bm, int ldb, long long sB, cudaDataType_t ab, float beta, void *C,
                      int ldc, long long sC, cudaDataType_t c, int batch) {
  /* a row-major matrix is its column-major transpose: cuBLAS computes
   * C^T = op(B)^T op(A)^T, operands swapped (gpt_rm_to_cm, tested on the CPU) */
  const cublasComputeType_t ct =
      ab == CUDA_R_32F && m->opt.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  cublasStatus_t st = cublasGemmStridedBatchedEx(m->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                                 N, M, K, &alpha, Bm, ab, ldb, sB, A, ab, lda, sA, &beta, C, c, ldc, sC,
                                                 batch, ct, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    return fail(m, "cuBLAS gemm %dx%dx%d (batch %d) failed: status %d", M, N, K, batch, (int)st);
  return 0;
}

/* fp32 row-major product, the cblas twin's argument order */
static int rm_gemm(gpt_cuda *m, bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                   int lda, long long sA, const float *Bm, int ldb, long long sB, float beta, float *C,
                   int ldc, long long sC, int batch) {
  return gpt_cuda__gemm_ex(m, ta, tb, M, N, K, alpha, A, lda, sA, Bm, ldb, sB, CUDA_R_32F, beta, C, ldc, sC,
                           CUDA_R_32F, batch);
}

static int matmul_forward(gpt_cuda *m, float *out, const float *inp, const float *w, const float *b,
                          int N, int C, int OC) {
  float beta = 0.0f;
  if (b) {
    CK(m, gpt_k_bias_broadcast(out, b, N, OC, m->stream), "bias broadcast");
    beta = 1.0f;
  }
  return rm_gemm(m, false, true, N, OC, C, 1.0f, inp, C, 0, w, C, 0, beta, out, OC, 0, 1);
}

static int matmul_backward(gpt_cuda *m, float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, int N, int C, int OC) {
  if (dinp && rm_gemm(m, false, false, N, C, OC, 1.0f, dout, OC, 0, w, C, 0, 0.0f, dinp, C, 0, 1))
    return -1;
  if (dw && rm_gemm(m, true, false, OC, C, N, 1.0f, dout, OC, 0, inp, C, 0, 1.0f, dw, C, 0, 1))
    return -1;
  if (db) CK(m, gpt_k_bias_backward(db, dout, N, OC, m->stream), "bias backward");
  return 0;
}

/* ints of the batch buffer for BT tokens: tokens, targets, the positions
 * sorted by token, the distinct tokens, and their nuniq + 1 segment starts */
#define BATCH_INTS(BT) ((size_t)(BT) * 5 + 1)

/* ---- lifetime ---- */

extern "C" int gpt_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

extern "C" void gpt_cuda_options_default(gpt_cuda_options *o) {
  memset(o, 0, sizeof *o);
  o->compute = SHARDRT_F32;
}

/* Activations of the fp32 path the bf16/fp16 paths also keep in fp32: the
 * residual stream, LayerNorm statistics, per-token losses and the fp32
 * backward buffers (LayerNorm backward reads and writes fp32). */
static bool lp_keeps(const char *field) {
  static const char *const keep[] = {"encoded", "ln1_mean", "ln1_rstd", "residual2", "ln2_mean", "ln2_rstd",
                                     "residual3", "lnf_mean", "lnf_rstd", "losses", "dresidual", "dbuf_c"};
  for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
    if (strcmp(field, keep[i]) == 0) return true;
  return false;
}

extern "C" int gpt_cuda_create(gpt_cuda **out, const gpt_config *cfg, int B, int T, void *stream,
                               char *err, size_t errlen) {
  gpt_cuda_options o;
  gpt_cuda_options_default(&o);
  return gpt_cuda_create_ex(out, cfg, B, T, stream, &o, err, errlen);
}

extern "C" int gpt_cuda_create_ex(gpt_cuda **out, const gpt_config *cfg, int B, int T, void *stream,
                                  const gpt_cuda_options *opt, char *err, size_t errlen) {
  *out = NULL;
  if (gpt_config_validate(cfg, err, errlen) != 0) return -1;
  if (opt->compute != SHARDRT_F32 && opt->compute != SHARDRT_BF16 && opt->compute != SHARDRT_F16) {
    snprintf(err, errlen, "GPU compute dtype %d is not supported (allowed: fp32, bf16, fp16)", (int)opt->compute);
    return -1;
  }
  if (opt->flash_attention && opt->compute == SHARDRT_F32) {
    snprintf(err, errlen, "flash attention is implemented by the bf16 and fp16 paths only (compute dtype is fp32)");
    return -1;
  }
  if (opt->flash_attention && !gpt_flash_supported(cfg->n_embd / cfg->n_head, cfg->n_embd)) {
    snprintf(err, errlen, "flash attention needs a head size of 16, 32, 64 or 128 (this model's is %d)",
             cfg->n_embd / cfg->n_head);
    return -1;
  }
  if (opt->tf32 && opt->compute != SHARDRT_F32) {
    snprintf(err, errlen, "TF32 applies to fp32 compute only (compute dtype is %s)",
             opt->compute == SHARDRT_F16 ? "fp16" : "bf16");
    return -1;
  }
  if (B < 1 || T < 1 || T > cfg->seq_len) {
    snprintf(err, errlen, "activation shape B=%d T=%d is invalid (need B >= 1 and 1 <= T <= seq_len %d)",
             B, T, cfg->seq_len);
    return -1;
  }
  /* the sizes ACT_FIELDS uses */
  const long long L = cfg->n_layer, LA = opt->recompute ? 1 : L, NH = cfg->n_head, C = cfg->n_embd;
  const long long BT = (long long)B * T, BTC = BT * C, BNH = (long long)B * NH;
  const long long Vp = gpt_padded_vocab(cfg->vocab); /* logits row, every path */
  const long long TT = opt->flash_attention ? 0 : BNH * T * T; /* scores */
  if (BTC * 4 > INT32_MAX || BT * Vp > INT32_MAX || TT > INT32_MAX) {
    snprintf(err, errlen, "batch B=%d x T=%d is too large for this model on the GPU (element counts must be < 2^31)",
             B, T);
    return -1;
  }
  gpt_cuda *m = (gpt_cuda *)calloc(1, sizeof *m);
  if (!m) {
    snprintf(err, errlen, "out of host memory for the GPU model state");
    return -1;
  }
  m->cfg = *cfg;
  m->opt = *opt;
  m->B = B;
  m->T = T;
  m->stream = (cudaStream_t)stream;
  cudaError_t e = cudaSuccess;
  m->host_count = (int *)malloc(((size_t)cfg->vocab + 1) * sizeof(int));
  if (!m->host_count) {
    snprintf(err, errlen, "out of host memory for the embedding backward's counts (%d tokens)", cfg->vocab);
    goto fail;
  }
  if ((e = cudaMallocHost((void **)&m->host_losses, (size_t)BT * sizeof(float))) != cudaSuccess ||
      (e = cudaMallocHost((void **)&m->host_batch, BATCH_INTS(BT) * sizeof(int))) != cudaSuccess ||
      (e = cudaEventCreateWithFlags(&m->batch_copied, cudaEventDisableTiming)) != cudaSuccess ||
      (e = cudaEventCreateWithFlags(&m->loss_copied, cudaEventDisableTiming)) != cudaSuccess) {
    snprintf(err, errlen, "pinned host buffers for %lld tokens (or their events) could not be created: %s", BT,
             cudaGetErrorString(e));
    goto fail;
  }
  if (cublasCreate(&m->blas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(m->blas, m->stream) != CUBLAS_STATUS_SUCCESS) {
    snprintf(err, errlen, "cuBLAS could not be initialised (no usable GPU or driver?)");
    goto fail;
  }
  if ((e = cudaMalloc((void **)&m->batch_dev, BATCH_INTS(BT) * sizeof(int))) != cudaSuccess) {
    snprintf(err, errlen, "cudaMalloc of the token buffers failed: %s", cudaGetErrorString(e));
    goto fail;
  }
  m->tokens = m->batch_dev;
  m->targets = m->batch_dev + BT;
  m->emb_order = m->batch_dev + 2 * BT;
  m->emb_tok = m->batch_dev + 3 * BT;
  m->emb_seg = m->batch_dev + 4 * BT;
#define ALLOC(f, k, n)                                                                                         \
  if ((n) > 0 && (opt->compute == SHARDRT_F32 || lp_keeps(#f)) &&                                               \
      (e = cudaMalloc((void **)&m->f, (size_t)(k) * gpt_cuda__slot(n) * sizeof(float))) != cudaSuccess) {      \
    snprintf(err, errlen, "cudaMalloc of activation '%s' (%lld x %lld floats, B=%d T=%d) failed: %s", #f,      \
             (long long)(k), (long long)(n), B, T, cudaGetErrorString(e));                                     \
    goto fail;                                                                                                 \
  }
  ACT_FIELDS(ALLOC)
#undef ALLOC
  /* the fp32 head's padding rows stay zero: each head forward copies only the V real rows */
  if (m->w_head_pad && (e = cudaMemset(m->w_head_pad, 0, (size_t)Vp * C * sizeof(float))) != cudaSuccess) {
    snprintf(err, errlen, "clearing the padded head weight failed: %s", cudaGetErrorString(e));
    goto fail;
  }
  if (opt->compute != SHARDRT_F32 && gpt_cuda__lp_create(m, err, errlen)) goto fail;
  *out = m;
  return 0;
fail:
  (void)cudaGetLastError();
  gpt_cuda_destroy(m);
  return -1;
}

extern "C" void gpt_cuda_destroy(gpt_cuda *m) {
  if (!m) return;
#define FREE(f, k, n) cudaFree(m->f);
  ACT_FIELDS(FREE)
#undef FREE
  gpt_cuda__lp_destroy(m);
  cudaFree(m->batch_dev);
  free(m->host_count);
  if (m->blas) cublasDestroy(m->blas);
  if (m->host_losses) cudaFreeHost(m->host_losses);
  if (m->host_batch) cudaFreeHost(m->host_batch);
  if (m->batch_copied) cudaEventDestroy(m->batch_copied);
  if (m->loss_copied) cudaEventDestroy(m->loss_copied);
  free(m);
}

extern "C" void gpt_cuda_lt_counts(const gpt_cuda *m, long *fused, long *fallback) {
  *fused = m->lt_fused;
  *fallback = m->lt_fallback;
}

extern "C" const char *gpt_cuda_lt_last_fallback(const gpt_cuda *m) { return m->lt_last_fallback; }

extern "C" const char *gpt_cuda_error(const gpt_cuda *m) { return m ? m->err : "no GPU model"; }

extern "C" int gpt_cuda_set_batch(gpt_cuda *m, const int *tokens, const int *targets) {
  const int BT = m->B * m->T, V = m->cfg.vocab;
  for (int i = 0; i < BT; i++) {
    if (tokens[i] < 0 || tokens[i] >= V)
      return fail(m, "input token %d at position %d is outside the vocabulary [0, %d)", tokens[i], i, V);
    if (targets[i] < 0 || targets[i] >= V)
      return fail(m, "target token %d at position %d is outside the vocabulary [0, %d)", targets[i], i, V);
  }
  /* Staged through pinned memory so the copy is truly asynchronous and the
   * caller's arrays are free on return; the only wait is for the previous
   * batch's copy out of the staging buffer, long finished by now. */
  CK(m, cudaEventSynchronize(m->batch_copied), "previous batch copy");
  int *h = m->host_batch, *order = h + 2 * BT, *tok = h + 3 * BT, *seg = h + 4 * BT;
  memcpy(h, tokens, (size_t)BT * sizeof(int));
  memcpy(h + BT, targets, (size_t)BT * sizeof(int));
  /* the embedding backward's plan: each token's rows summed in a fixed order (gpt_lt.h) */
  m->nuniq = gpt_embed_plan(tokens, BT, V, m->host_count, order, tok, seg);
  CK(m, cudaMemcpyAsync(m->batch_dev, h, BATCH_INTS(BT) * sizeof(int), cudaMemcpyHostToDevice, m->stream),
     "batch copy");
  CK(m, cudaEventRecord(m->batch_copied, m->stream), "batch copy event");
  return 0;
}

/* ---- stages ---- */

/* per-layer tensors (slots of gpt_cuda__slot(per) elements) */
#define LAYER(f, per) (m->f + (size_t)layer * gpt_cuda__slot(per))
/* block activations: layer's slot, or slot 0 for all with recompute */
#define ACT(f, per) (m->f + (size_t)(m->opt.recompute ? 0 : layer) * gpt_cuda__slot(per))

const float *gpt_cuda__lp_block_input(const gpt_cuda *m, int layer) {
  const size_t BTC = (size_t)m->B * m->T * m->cfg.n_embd;
  return layer == 0 ? m->encoded : m->residual3 + (size_t)(layer - 1) * gpt_cuda__slot(BTC);
}
#define block_input gpt_cuda__lp_block_input

extern "C" int gpt_cuda_embed_forward(gpt_cuda *m, const float *const *p) {
  CK(m, gpt_k_embed_forward(m->encoded, m->tokens, p[GPT_P_WTE], p[GPT_P_WPE], m->B, m->T, m->cfg.n_embd, m->stream),
     "embedding forward");
  return 0;
}

static int attention_forward(gpt_cuda *m, float *out, float *att, const float *qkv) {
  const int B = m->B, T = m->T, C = m->cfg.n_embd, NH = m->cfg.n_head, hs = C / NH, C3 = 3 * C;
  const long long TT = (long long)T * T;
  for (int b = 0; b < B; b++) { /* heads are a uniform stride (hs) only inside one sequence */
    const float *q = qkv + (size_t)b * T * C3, *k = q + C;
    float *a = att + (size_t)b * NH * TT;
    if (rm_gemm(m, false, true, T, T, hs, 1.0f, q, C3, hs, k, C3, hs, 0.0f, a, T, TT, NH)) return -1;
  }
  CK(m, gpt_k_softmax_causal_forward(att, 1.0f / sqrtf((float)hs), B * NH, T, m->stream), "attention softmax");
  for (int b = 0; b < B; b++) {
    const float *v = qkv + (size_t)b * T * C3 + 2 * C;
    if (rm_gemm(m, false, false, T, hs, T, 1.0f, att + (size_t)b * NH * TT, T, TT, v, C3, hs, 0.0f,
                out + (size_t)b * T * C, C, hs, NH))
      return -1;
  }
  return 0;
}

extern "C" int gpt_cuda_block_forward(gpt_cuda *m, const float *const *p, int layer) {
  if (m->lp) return gpt_cuda__lp_block_forward(m, p, layer);
  const gpt_config *c = &m->cfg;
  const int B = m->B, T = m->T, C = c->n_embd, NH = c->n_head, BT = B * T;
  const size_t BTC = (size_t)BT * C;
  cudaStream_t s = m->stream;
#define P(x) p[gpt_pid_layer(c, layer, x)]
  const float *res = block_input(m, layer);
  float *ln1 = ACT(ln1, BTC), *ln1_mean = LAYER(ln1_mean, BT), *ln1_rstd = LAYER(ln1_rstd, BT);
  float *qkv = ACT(qkv, 3 * BTC), *att = ACT(att, (size_t)B * NH * T * T);
  float *atty = ACT(atty, BTC), *attproj = ACT(attproj, BTC), *res2 = LAYER(residual2, BTC);
  float *ln2 = ACT(ln2, BTC), *ln2_mean = LAYER(ln2_mean, BT), *ln2_rstd = LAYER(ln2_rstd, BT);
  float *fch = ACT(fch, 4 * BTC), *fch_gelu = ACT(fch_gelu, 4 * BTC);
  float *fcproj = ACT(fcproj, BTC), *res3 = LAYER(residual3, BTC);

  CK(m, gpt_k_layernorm_forward(ln1, ln1_mean, ln1_rstd, res, P(GPT_LN1_W), P(GPT_LN1_B), BT, C, s), "ln_1 forward");
  if (matmul_forward(m, qkv, ln1, P(GPT_QKV_W), P(GPT_QKV_B), BT, C, 3 * C)) return -1;
  if (attention_forward(m, atty, att, qkv)) return -1;
  if (matmul_forward(m, attproj, atty, P(GPT_ATTPROJ_W), P(GPT_ATTPROJ_B), BT, C, C)) return -1;
  CK(m, gpt_k_residual_forward(res2, res, attproj, (int)BTC, s), "residual");
  CK(m, gpt_k_layernorm_forward(ln2, ln2_mean, ln2_rstd, res2, P(GPT_LN2_W), P(GPT_LN2_B), BT, C, s), "ln_2 forward");
  if (matmul_forward(m, fch, ln2, P(GPT_FC_W), P(GPT_FC_B), BT, C, 4 * C)) return -1;
  CK(m, gpt_k_gelu_forward(fch_gelu, fch, (int)(4 * BTC), s), "gelu forward");
  if (matmul_forward(m, fcproj, fch_gelu, P(GPT_FCPROJ_W), P(GPT_FCPROJ_B), BT, 4 * C, C)) return -1;
  CK(m, gpt_k_residual_forward(res3, res2, fcproj, (int)BTC, s), "residual");
#undef P
  return 0;
}

static int head_forward_f32(gpt_cuda *m, const float *const *p);
static int loss_copy_start(gpt_cuda *m);

extern "C" int gpt_cuda_head_forward(gpt_cuda *m, const float *const *p) {
  if (m->lp ? gpt_cuda__lp_head_forward(m, p) : head_forward_f32(m, p)) return -1;
  return loss_copy_start(m);
}

/* The vocabulary is padded to Vp = gpt_padded_vocab(V) columns as on the
 * LP paths: the head weight is copied into Vp rows whose padding is zero,
 * so the product has an even N and every logits row is 256-byte aligned;
 * the padded logits are 0, masked out of the loss, and get no gradient
 * (gpt_k_crossentropy_*), so the padding rows' gradient, never computed,
 * would be 0. Parameters and checkpoints keep V rows. */
static int head_forward_f32(gpt_cuda *m, const float *const *p) {
  const gpt_config *c = &m->cfg;
  const int BT = m->B * m->T, C = c->n_embd, V = c->vocab, Vp = gpt_padded_vocab(V);
  CK(m, gpt_k_layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, block_input(m, c->n_layer),
                                p[gpt_pid_lnf_w(c)], p[gpt_pid_lnf_b(c)], BT, C, m->stream),
     "ln_f forward");
  CK(m, cudaMemcpyAsync(m->w_head_pad, p[gpt_pid_head(c)], (size_t)V * C * sizeof(float), cudaMemcpyDeviceToDevice,
                        m->stream),
     "stage lm_head weight");
  if (rm_gemm(m, false, true, BT, Vp, C, 1.0f, m->lnf, C, 0, m->w_head_pad, C, 0, 0.0f, m->probs, Vp, 0, 1))
    return -1;
  CK(m, gpt_k_crossentropy_forward(m->probs, m->losses, m->targets, BT, V, Vp, m->stream), "cross-entropy forward");
  return 0;
}

/* Enqueued at the end of the head forward (both paths): the token losses
 * to pinned host memory, marked by an event, so reading them later waits
 * for the forward only, not for whatever was enqueued after it. */
static int loss_copy_start(gpt_cuda *m) {
  const int BT = m->B * m->T;
  CK(m, cudaMemcpyAsync(m->host_losses, m->losses, (size_t)BT * sizeof(float), cudaMemcpyDeviceToHost, m->stream),
     "loss copy");
  CK(m, cudaEventRecord(m->loss_copied, m->stream), "loss copy event");
  return 0;
}

extern "C" int gpt_cuda_loss_sum(gpt_cuda *m, double *out) {
  const int BT = m->B * m->T;
  CK(m, cudaEventSynchronize(m->loss_copied), "loss copy wait");
  double sum = 0.0;
  for (int i = 0; i < BT; i++) sum += m->host_losses[i];
  *out = sum;
  return 0;
}

extern "C" int gpt_cuda_head_backward(gpt_cuda *m, const float *const *p, float *const *g, float dloss) {
  if (m->lp) return gpt_cuda__lp_head_backward(m, p, g, dloss);
  const gpt_config *c = &m->cfg;
  const int BT = m->B * m->T, C = c->n_embd, V = c->vocab, Vp = gpt_padded_vocab(V);
  CK(m, gpt_k_crossentropy_backward(m->probs, m->targets, dloss, BT, V, Vp, m->stream), "cross-entropy backward");
  /* dlnf = dlogits W_pad (the padding columns and rows are both 0); dW += dlogits[:, :V]^T lnf */
  if (rm_gemm(m, false, false, BT, C, Vp, 1.0f, m->probs, Vp, 0, m->w_head_pad, C, 0, 0.0f, m->dbuf_c, C, 0, 1))
    return -1;
  if (rm_gemm(m, true, false, V, C, BT, 1.0f, m->probs, Vp, 0, m->lnf, C, 0, 1.0f, g[gpt_pid_head(c)], C, 0, 1))
    return -1;
  CK(m, cudaMemsetAsync(m->dresidual, 0, (size_t)BT * C * sizeof(float), m->stream), "memset");
  CK(m, gpt_k_layernorm_backward(m->dresidual, g[gpt_pid_lnf_w(c)], g[gpt_pid_lnf_b(c)], m->dbuf_c,
                                 block_input(m, c->n_layer), p[gpt_pid_lnf_w(c)], m->lnf_mean,
                                 m->lnf_rstd, BT, C, m->stream),
     "ln_f backward");
  return 0;
}

static int attention_backward(gpt_cuda *m, float *dqkv, const float *dout, const float *qkv, const float *att) {
  const int B = m->B, T = m->T, C = m->cfg.n_embd, NH = m->cfg.n_head, hs = C / NH, C3 = 3 * C;
  const long long TT = (long long)T * T;
  for (int b = 0; b < B; b++) {
    const float *v = qkv + (size_t)b * T * C3 + 2 * C, *dy = dout + (size_t)b * T * C;
    const float *a = att + (size_t)b * NH * TT;
    float *dv = dqkv + (size_t)b * T * C3 + 2 * C;
    if (rm_gemm(m, false, true, T, T, hs, 1.0f, dy, C, hs, v, C3, hs, 0.0f, m->datt + (size_t)b * NH * TT, T, TT, NH))
      return -1;
    if (rm_gemm(m, true, false, T, hs, T, 1.0f, a, T, TT, dy, C, hs, 0.0f, dv, C3, hs, NH)) return -1;
  }
  CK(m, gpt_k_softmax_causal_backward(m->dpre, att, m->datt, 1.0f / sqrtf((float)hs), B * NH, T, m->stream),
     "attention softmax backward");
  for (int b = 0; b < B; b++) {
    const float *q = qkv + (size_t)b * T * C3, *k = q + C;
    float *dq = dqkv + (size_t)b * T * C3, *dk = dq + C;
    const float *dp = m->dpre + (size_t)b * NH * TT;
    if (rm_gemm(m, false, false, T, hs, T, 1.0f, dp, T, TT, k, C3, hs, 0.0f, dq, C3, hs, NH)) return -1;
    if (rm_gemm(m, true, false, T, hs, T, 1.0f, dp, T, TT, q, C3, hs, 0.0f, dk, C3, hs, NH)) return -1;
  }
  return 0;
}

extern "C" int gpt_cuda_block_backward(gpt_cuda *m, const float *const *p, float *const *g, int layer) {
  if (m->lp) return gpt_cuda__lp_block_backward(m, p, g, layer);
  const gpt_config *c = &m->cfg;
  const int B = m->B, T = m->T, C = c->n_embd, NH = c->n_head, BT = B * T;
  const size_t BTC = (size_t)BT * C;
  cudaStream_t s = m->stream;
#define P(x) p[gpt_pid_layer(c, layer, x)]
#define G(x) g[gpt_pid_layer(c, layer, x)]
  const float *res = block_input(m, layer);
  const float *ln1 = ACT(ln1, BTC), *ln1_mean = LAYER(ln1_mean, BT), *ln1_rstd = LAYER(ln1_rstd, BT);
  const float *qkv = ACT(qkv, 3 * BTC), *att = ACT(att, (size_t)B * NH * T * T);
  const float *atty = ACT(atty, BTC), *res2 = LAYER(residual2, BTC);
  const float *ln2 = ACT(ln2, BTC), *ln2_mean = LAYER(ln2_mean, BT), *ln2_rstd = LAYER(ln2_rstd, BT);
  const float *fch = ACT(fch, 4 * BTC), *fch_gelu = ACT(fch_gelu, 4 * BTC);
  float *dres = m->dresidual;

  /* Activation checkpointing: re-run this block's forward from its saved
   * input (residual3 of the layer below, or the embedding, neither
   * rewritten) into the shared slot. The same kernels on the same inputs
   * at the same alignment: the activations, and this block's residual2 and
   * residual3 (whose reader, the block above, is done), come out bit for
   * bit as the forward left them. */
  if (m->opt.recompute && gpt_cuda_block_forward(m, p, layer)) return -1;

  if (matmul_backward(m, m->dfch2, G(GPT_FCPROJ_W), G(GPT_FCPROJ_B), dres, fch_gelu, P(GPT_FCPROJ_W), BT, 4 * C, C))
    return -1;
  CK(m, gpt_k_gelu_backward(m->dfch, fch, m->dfch2, (int)(4 * BTC), s), "gelu backward");
  if (matmul_backward(m, m->dbuf_c, G(GPT_FC_W), G(GPT_FC_B), m->dfch, ln2, P(GPT_FC_W), BT, C, 4 * C)) return -1;
  CK(m, gpt_k_layernorm_backward(dres, G(GPT_LN2_W), G(GPT_LN2_B), m->dbuf_c, res2, P(GPT_LN2_W), ln2_mean,
                                 ln2_rstd, BT, C, s),
     "ln_2 backward");
  if (matmul_backward(m, m->dbuf_c, G(GPT_ATTPROJ_W), G(GPT_ATTPROJ_B), dres, atty, P(GPT_ATTPROJ_W), BT, C, C))
    return -1;
  if (attention_backward(m, m->dqkv, m->dbuf_c, qkv, att)) return -1;
  if (matmul_backward(m, m->dbuf_c2, G(GPT_QKV_W), G(GPT_QKV_B), m->dqkv, ln1, P(GPT_QKV_W), BT, C, 3 * C)) return -1;
  CK(m, gpt_k_layernorm_backward(dres, G(GPT_LN1_W), G(GPT_LN1_B), m->dbuf_c2, res, P(GPT_LN1_W), ln1_mean,
                                 ln1_rstd, BT, C, s),
     "ln_1 backward");
#undef P
#undef G
  return 0;
}

extern "C" int gpt_cuda_embed_backward(gpt_cuda *m, float *const *g) {
  CK(m, gpt_k_embed_backward(g[GPT_P_WTE], g[GPT_P_WPE], m->dresidual, m->emb_order, m->emb_tok, m->emb_seg,
                             m->nuniq, m->B, m->T, m->cfg.n_embd, m->stream),
     "embedding backward");
  return 0;
}

/* ---- dtype and memory helpers ---- */

extern "C" int gpt_cuda_to_f32(gpt_cuda *m, float *dst, const void *src, shardrt_dtype dt, int64_t n) {
  CK(m, gpt_k_to_f32(dst, src, dt, n, m->stream), "cast to fp32");
  return 0;
}

extern "C" int gpt_cuda_add_f32_into(gpt_cuda *m, void *dst, shardrt_dtype dt, const float *src, int64_t n) {
  CK(m, gpt_k_add_f32_into(dst, dt, src, n, m->stream), "gradient add");
  return 0;
}

extern "C" int gpt_cuda_alloc(gpt_cuda *m, void **ptr, size_t bytes) {
  *ptr = NULL;
  CK(m, cudaMalloc(ptr, bytes), "cudaMalloc");
  return 0;
}

extern "C" void gpt_cuda_free(void *ptr) { cudaFree(ptr); }

extern "C" int gpt_cuda_memset_zero(gpt_cuda *m, void *ptr, size_t bytes) {
  CK(m, cudaMemsetAsync(ptr, 0, bytes, m->stream), "memset");
  return 0;
}

extern "C" int gpt_cuda_copy_h2d(gpt_cuda *m, void *dst, const void *src, size_t bytes) {
  CK(m, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, m->stream), "host-to-device copy");
  CK(m, cudaStreamSynchronize(m->stream), "host-to-device copy sync");
  return 0;
}

extern "C" int gpt_cuda_copy_d2h(gpt_cuda *m, void *dst, const void *src, size_t bytes) {
  CK(m, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, m->stream), "device-to-host copy");
  CK(m, cudaStreamSynchronize(m->stream), "device-to-host copy sync");
  return 0;
}
