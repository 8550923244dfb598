/* SPDX-License-Identifier: Apache-2.0 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#include "gpt_cpu.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_cpu_ops.h"

#include <sched.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Weak, so a BLAS without it links (its threads are then its own business). */
extern void openblas_set_num_threads(int n) __attribute__((weak));

int gpt_cpu_set_threads(int ranks_on_host, char *why, size_t whylen) {
  const char *omp = getenv("OMP_NUM_THREADS"), *ob = getenv("OPENBLAS_NUM_THREADS");
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online < 1) online = 1;
  int n, bound = 0;
#ifdef CPU_COUNT
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < online) bound = CPU_COUNT(&set);
#endif
  if (omp && atoi(omp) >= 1) {
    n = atoi(omp);
    snprintf(why, whylen, "%d (OMP_NUM_THREADS)", n);
    return n;
  }
  if (bound) {
    n = bound;
    snprintf(why, whylen, "%d (the CPUs this rank is bound to)", n);
  } else {
    if (ranks_on_host < 1) ranks_on_host = 1;
    n = (int)(online / ranks_on_host);
    if (n < 1) n = 1;
    snprintf(why, whylen, "%d (%ld CPUs / %d rank(s) on this host)", n, online, ranks_on_host);
  }
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  if (!ob && openblas_set_num_threads) openblas_set_num_threads(n);
  return n;
}

/* Every activation array, in one table so init and free cannot disagree.
 * S: per-layer slots (L, or 1 under recompute); residual3 is the
 * checkpoint and always has L. */
#define ACT_FIELDS(X)                                                                          \
  X(encoded, BTC) X(ln1, S *BTC) X(ln1_mean, S *BT) X(ln1_rstd, S *BT) X(qkv, S *BTC * 3)     \
  X(att_stats, S *B *NH *T * 2) X(atty, S *BTC) X(residual2, S *BTC) X(ln2, S *BTC)            \
  X(ln2_mean, S *BT) X(ln2_rstd, S *BT) X(fch, S *BTC * 4) X(fch_gelu, S *BTC * 4)             \
  X(residual3, L *BTC) X(lnf, BTC) X(lnf_mean, BT) X(lnf_rstd, BT) X(probs, BT *V) X(losses, BT) \
  X(dresidual, BTC) X(dbuf_c, BTC) X(dbuf_c2, BTC) X(dqkv, BTC * 3) X(dfch, BTC * 4)           \
  X(dfch2, BTC * 4) X(att_p, GPT_ATT_ROWS *T) X(att_dp, GPT_ATT_ROWS *T)

int gpt_cpu_acts_init(gpt_cpu_acts *a, const gpt_config *cfg, int B, int T, char *err, size_t errlen) {
  return gpt_cpu_acts_init_ex(a, cfg, B, T, NULL, err, errlen);
}

int gpt_cpu_acts_init_ex(gpt_cpu_acts *a, const gpt_config *cfg, int B, int T, const gpt_cpu_options *opt,
                         char *err, size_t errlen) {
  memset(a, 0, sizeof *a);
  if (gpt_config_validate(cfg, err, errlen) != 0) return -1;
  if (B < 1 || T < 1 || T > cfg->seq_len) {
    snprintf(err, errlen, "activation shape B=%d T=%d is invalid (need B >= 1 and 1 <= T <= seq_len %d)",
             B, T, cfg->seq_len);
    return -1;
  }
  const int64_t L = cfg->n_layer, NH = cfg->n_head, V = cfg->vocab;
  const int64_t BT = (int64_t)B * T, BTC = BT * cfg->n_embd;
  /* the primitives take element counts as int */
  if (BTC * 4 > INT32_MAX || BT * V > INT32_MAX) {
    snprintf(err, errlen, "batch B=%d x T=%d is too large for this model (B*T*max(4*n_embd, vocab) must be < 2^31)",
             B, T);
    return -1;
  }
  a->cfg = *cfg;
  a->B = B;
  a->T = T;
  a->recompute = opt && opt->recompute;
  a->slot_layer = -1;
  const int64_t S = a->recompute ? 1 : L;
#define ALLOC(f, n)                                                                      \
  a->bytes += (size_t)(n) * sizeof(float);                                               \
  if (!(a->f = malloc((size_t)(n) * sizeof(float)))) {                                   \
    snprintf(err, errlen, "out of host memory for activation '%s' (%lld floats, B=%d T=%d)", \
             #f, (long long)(n), B, T);                                                   \
    gpt_cpu_acts_free(a);                                                                \
    return -1;                                                                           \
  }
  ACT_FIELDS(ALLOC)
#undef ALLOC
  /* touch every page now, so no training step takes the page faults */
#define TOUCH(f, n) memset(a->f, 0, (size_t)(n) * sizeof(float));
  ACT_FIELDS(TOUCH)
#undef TOUCH
  return 0;
}

void gpt_cpu_acts_free(gpt_cpu_acts *a) {
  if (!a) return;
#define FREE(f, n) free(a->f);
  ACT_FIELDS(FREE)
#undef FREE
  memset(a, 0, sizeof *a);
}

/* The slot of a per-layer activation that holds `layer`. */
#define LAYER(a, f, per) ((a)->f + (size_t)((a)->recompute ? 0 : (layer)) * (per))

int gpt_cpu_embed_forward(gpt_cpu_acts *a, const float *const *p, const int *tokens) {
  const int B = a->B, T = a->T, C = a->cfg.n_embd, V = a->cfg.vocab;
  const float *wte = p[GPT_P_WTE], *wpe = p[GPT_P_WPE];
  for (int i = 0; i < B * T; i++) {
    if (tokens[i] < 0 || tokens[i] >= V) {
      snprintf(a->err, sizeof a->err, "input token %d at position %d is outside the vocabulary [0, %d)",
               tokens[i], i, V);
      return -1;
    }
  }
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      float *o = a->encoded + ((size_t)b * T + t) * C;
      const float *te = wte + (size_t)tokens[b * T + t] * C, *pe = wpe + (size_t)t * C;
      for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
    }
  }
  return 0;
}

static const float *block_input(const gpt_cpu_acts *a, int layer) {
  const size_t BTC = (size_t)a->B * a->T * a->cfg.n_embd;
  return layer == 0 ? a->encoded : a->residual3 + (size_t)(layer - 1) * BTC;
}

void gpt_cpu_block_forward(gpt_cpu_acts *a, const float *const *p, int layer) {
  const gpt_config *c = &a->cfg;
  const int B = a->B, T = a->T, C = c->n_embd, NH = c->n_head, BT = B * T;
  const size_t BTC = (size_t)BT * C;
#define P(x) p[gpt_pid_layer(c, layer, x)]
  const float *res = block_input(a, layer);
  float *ln1 = LAYER(a, ln1, BTC), *ln1_mean = LAYER(a, ln1_mean, BT), *ln1_rstd = LAYER(a, ln1_rstd, BT);
  float *qkv = LAYER(a, qkv, 3 * BTC), *st = LAYER(a, att_stats, (size_t)B * NH * T * 2);
  float *atty = LAYER(a, atty, BTC), *res2 = LAYER(a, residual2, BTC);
  float *ln2 = LAYER(a, ln2, BTC), *ln2_mean = LAYER(a, ln2_mean, BT), *ln2_rstd = LAYER(a, ln2_rstd, BT);
  float *fch = LAYER(a, fch, 4 * BTC), *fch_gelu = LAYER(a, fch_gelu, 4 * BTC);
  float *res3 = a->residual3 + (size_t)layer * BTC;

  gpt_layernorm_forward(ln1, ln1_mean, ln1_rstd, res, P(GPT_LN1_W), P(GPT_LN1_B), BT, C);
  gpt_matmul_forward(qkv, ln1, P(GPT_QKV_W), P(GPT_QKV_B), BT, C, 3 * C);
  gpt_attention_forward(atty, st, a->att_p, qkv, B, T, C, NH);
  gpt_matmul_residual_forward(res2, res, atty, P(GPT_ATTPROJ_W), P(GPT_ATTPROJ_B), BT, C, C);
  gpt_layernorm_forward(ln2, ln2_mean, ln2_rstd, res2, P(GPT_LN2_W), P(GPT_LN2_B), BT, C);
  gpt_matmul_forward(fch, ln2, P(GPT_FC_W), P(GPT_FC_B), BT, C, 4 * C);
  gpt_gelu_forward(fch_gelu, fch, (int)(4 * BTC));
  gpt_matmul_residual_forward(res3, res2, fch_gelu, P(GPT_FCPROJ_W), P(GPT_FCPROJ_B), BT, 4 * C, C);
  a->slot_layer = layer;
#undef P
}

int gpt_cpu_head_forward(gpt_cpu_acts *a, const float *const *p, const int *targets, double *loss_sum) {
  const gpt_config *c = &a->cfg;
  const int BT = a->B * a->T, C = c->n_embd, V = c->vocab;
  for (int i = 0; i < BT; i++) {
    if (targets[i] < 0 || targets[i] >= V) {
      snprintf(a->err, sizeof a->err, "target token %d at position %d is outside the vocabulary [0, %d)",
               targets[i], i, V);
      return -1;
    }
  }
  const float *res = block_input(a, c->n_layer);
  gpt_layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, res, p[gpt_pid_lnf_w(c)],
                        p[gpt_pid_lnf_b(c)], BT, C);
  gpt_matmul_forward(a->probs, a->lnf, p[gpt_pid_head(c)], NULL, BT, C, V);
  *loss_sum = gpt_crossentropy_forward(a->probs, a->losses, targets, BT, V);
  return 0;
}

void gpt_cpu_head_backward(gpt_cpu_acts *a, const float *const *p, float *const *g,
                           const int *targets, float dloss) {
  const gpt_config *c = &a->cfg;
  const int BT = a->B * a->T, C = c->n_embd, V = c->vocab;
  /* dlogits = (probs - onehot(target)) * dloss, in place */
  float *dlogits = a->probs;
  for (int i = 0; i < BT; i++) {
    float *row = dlogits + (size_t)i * V;
    row[targets[i]] -= 1.0f;
    for (int v = 0; v < V; v++) row[v] *= dloss;
  }
  gpt_matmul_backward(a->dbuf_c, g[gpt_pid_head(c)], NULL, dlogits, a->lnf, p[gpt_pid_head(c)], BT, C, V);
  memset(a->dresidual, 0, (size_t)BT * C * sizeof(float));
  gpt_layernorm_backward(a->dresidual, g[gpt_pid_lnf_w(c)], g[gpt_pid_lnf_b(c)], a->dbuf_c,
                         block_input(a, c->n_layer), p[gpt_pid_lnf_w(c)], a->lnf_mean, a->lnf_rstd,
                         BT, C);
}

void gpt_cpu_block_backward(gpt_cpu_acts *a, const float *const *p, float *const *g, int layer) {
  const gpt_config *c = &a->cfg;
  const int B = a->B, T = a->T, C = c->n_embd, NH = c->n_head, BT = B * T;
  const size_t BTC = (size_t)BT * C;
#define P(x) p[gpt_pid_layer(c, layer, x)]
#define G(x) g[gpt_pid_layer(c, layer, x)]
  /* Under recompute the slot holds another layer (except for the last
   * block, whose forward has just run): re-run this block's forward from
   * its kept input. It rewrites residual3[layer] with the same bits. */
  if (a->recompute && a->slot_layer != layer) gpt_cpu_block_forward(a, p, layer);
  const float *res = block_input(a, layer);
  const float *ln1 = LAYER(a, ln1, BTC), *ln1_mean = LAYER(a, ln1_mean, BT), *ln1_rstd = LAYER(a, ln1_rstd, BT);
  const float *qkv = LAYER(a, qkv, 3 * BTC), *st = LAYER(a, att_stats, (size_t)B * NH * T * 2);
  const float *atty = LAYER(a, atty, BTC), *res2 = LAYER(a, residual2, BTC);
  const float *ln2 = LAYER(a, ln2, BTC), *ln2_mean = LAYER(a, ln2_mean, BT), *ln2_rstd = LAYER(a, ln2_rstd, BT);
  const float *fch = LAYER(a, fch, 4 * BTC), *fch_gelu = LAYER(a, fch_gelu, 4 * BTC);
  float *dres = a->dresidual; /* d(block output) on entry, d(block input) on exit */

  /* res3 = res2 + mlp(ln2(res2)): dres passes straight through to res2 */
  gpt_matmul_backward(a->dfch2, G(GPT_FCPROJ_W), G(GPT_FCPROJ_B), dres, fch_gelu, P(GPT_FCPROJ_W),
                      BT, 4 * C, C);
  gpt_gelu_backward(a->dfch, fch, a->dfch2, (int)(4 * BTC));
  gpt_matmul_backward(a->dbuf_c, G(GPT_FC_W), G(GPT_FC_B), a->dfch, ln2, P(GPT_FC_W), BT, C, 4 * C);
  gpt_layernorm_backward(dres, G(GPT_LN2_W), G(GPT_LN2_B), a->dbuf_c, res2, P(GPT_LN2_W), ln2_mean,
                         ln2_rstd, BT, C);
  /* res2 = res + attn(ln1(res)) */
  gpt_matmul_backward(a->dbuf_c, G(GPT_ATTPROJ_W), G(GPT_ATTPROJ_B), dres, atty, P(GPT_ATTPROJ_W),
                      BT, C, C);
  gpt_attention_backward(a->dqkv, a->att_p, a->att_dp, a->dbuf_c, qkv, st, B, T, C, NH);
  gpt_matmul_backward(a->dbuf_c2, G(GPT_QKV_W), G(GPT_QKV_B), a->dqkv, ln1, P(GPT_QKV_W), BT, C, 3 * C);
  gpt_layernorm_backward(dres, G(GPT_LN1_W), G(GPT_LN1_B), a->dbuf_c2, res, P(GPT_LN1_W), ln1_mean,
                         ln1_rstd, BT, C);
#undef P
#undef G
}

void gpt_cpu_embed_backward(gpt_cpu_acts *a, float *const *g, const int *tokens) {
  const int B = a->B, T = a->T, C = a->cfg.n_embd;
  float *dwte = g[GPT_P_WTE], *dwpe = g[GPT_P_WPE];
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < T; t++) {
      const float *d = a->dresidual + ((size_t)b * T + t) * C;
      float *te = dwte + (size_t)tokens[b * T + t] * C, *pe = dwpe + (size_t)t * C;
      for (int c = 0; c < C; c++) {
        te[c] += d[c];
        pe[c] += d[c];
      }
    }
  }
}

int gpt_cpu_forward(gpt_cpu_acts *a, const float *const *p, const int *tokens, const int *targets,
                    double *loss_sum) {
  if (gpt_cpu_embed_forward(a, p, tokens) != 0) return -1;
  for (int l = 0; l < a->cfg.n_layer; l++) gpt_cpu_block_forward(a, p, l);
  return gpt_cpu_head_forward(a, p, targets, loss_sum);
}

void gpt_cpu_backward(gpt_cpu_acts *a, const float *const *p, float *const *g, const int *tokens,
                      const int *targets, float dloss) {
  gpt_cpu_head_backward(a, p, g, targets, dloss);
  for (int l = a->cfg.n_layer - 1; l >= 0; l--) gpt_cpu_block_backward(a, p, g, l);
  gpt_cpu_embed_backward(a, g, tokens);
}
