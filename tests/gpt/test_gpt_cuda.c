/* SPDX-License-Identifier: Apache-2.0 */
/* The CUDA forward/backward against the CPU path (the oracle) on the tiny
 * preset and on an odd shape, in fp32, bf16 and fp16 (cuBLASLt with fused
 * epilogues, and the fallback without them), activation checkpointing
 * against the run without it (bit for bit, every dtype), and the dtype
 * helpers the trainer uses on runtime views.
 * Exits 77 (skipped) when no GPU is usable.
 *
 * fp32 tolerances: both paths are fp32 with the same operation order per
 * layer but different summation orders (cuBLAS vs OpenBLAS tiling, warp
 * trees vs sequential loops) and __expf in the attention softmax (2 ulp).
 * Each op contributes ~1e-6 relative error; through 2 blocks, the head and
 * the backward that adds up to a few 1e-6 expected (this machine has no
 * GPU, so the margin is deliberately 10-30x). The loss must agree to 1e-5
 * relative; each gradient tensor to a relative L2 error
 * ||g_gpu - g_cpu|| / ||g_cpu|| of 1e-4 (a wrong index, layout or missing
 * term gives errors of order 1e-2..1). Gradients are compared as what the
 * GPU added to nonzero starting values, so a stage that overwrites instead
 * of adding fails too.
 *
 * bf16 tolerances (against the same fp32 CPU oracle, parameters rounded to
 * bf16 first so both sides use identical weights, as the runtime's bf16
 * views give): bf16 keeps 8 significant bits, so one rounding moves a value
 * by at most 2^-8 relative (RMS ~2^-8/sqrt(3) ~ 2.3e-3 over a binade).
 * A gradient passes through about 10 roundings in series on its way down
 * (dlogits, the residual-gradient casts, dfch, dqkv, dpre, and the stored
 * activations it is multiplied with); independent errors add in quadrature:
 * sqrt(10) x 2.3e-3 ~ 7e-3 relative L2, and LayerNorm's backward (a
 * difference of means) can amplify that a few times. Gradients must agree
 * to 5e-2 relative L2 (an indexing or layout bug gives O(1)). The loss is a
 * mean over B*T tokens of log-sum-exp minus the target logit; per-token
 * rounding errors average out, so it must agree to 2^-8 ~ 3.9e-3 relative,
 * one bf16 rounding of the loss itself. Both measured values are printed so
 * the first GPU runs can tighten these.
 *
 * fp16 tolerances: the same derivation with fp16's 11 significant bits
 * (one rounding: at most 2^-11 relative), 3 bits more than bf16's 8, so
 * every bound is 2^3 = 8 times tighter: the loss to 2^-11 ~ 4.9e-4
 * relative, gradients to 5e-2 / 8 = 6.25e-3 relative L2. fp16's range is
 * what differs (normal numbers only down to 2^-14 ~ 6e-5): unscaled, the
 * tiny model's dlogits ((p - onehot) / B*T, p ~ 1/vocab) would sit at
 * ~6e-5 and lose bits as subnormals, so the fp16 runs do what the trainer
 * does under the plan's loss scaling: the backward gets dloss * S
 * (S = 2^12 here, the size of scale the dynamic scaler settles at for such
 * a model) and the gradients are divided by S before comparing. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cuda_runtime_api.h>

#include "gpt_cpu.h"
#include "gpt_cuda.h"
#include "gpt_test_util.h"
#include "shardrt/types.h"

typedef struct tolerances {
  double loss_rel, grad_rel_l2;
} tolerances;

static const tolerances kF32 = {1e-5, 1e-4};
static const tolerances kBF16 = {0.00390625 /* 2^-8 */, 5e-2};
static const tolerances kF16 = {0.00048828125 /* 2^-11 */, 5e-2 / 8};
#define F16_LOSS_SCALE 4096.0f /* 2^12: exact, so dividing by it is exact too */


static float round_bf16(float v) { return shardrt_bf16_to_f32(shardrt_f32_to_bf16(v)); }
static float round_f16(float v) { return shardrt_f16_to_f32(shardrt_f32_to_f16(v)); }

/* The parameters the GPU computes with, as the runtime's views hold them:
 * rounded to the compute dtype (so the fp32 CPU oracle uses the same). */
static void round_params(gpt_test_model *m, shardrt_dtype dt) {
  if (dt == SHARDRT_F32) return;
  for (int i = 0; i < m->reg.num_params; i++)
    for (int64_t k = 0; k < m->reg.params[i].numel; k++)
      m->p[i][k] = dt == SHARDRT_BF16 ? round_bf16(m->p[i][k]) : round_f16(m->p[i][k]);
}

/* jitter gains and biases so those gradients are not trivially shaped */
static void jitter_params(gpt_test_model *m) {
  uint64_t s = 3;
  for (int i = 0; i < m->reg.num_params; i++)
    if (m->reg.params[i].init == GPT_INIT_ZERO || m->reg.params[i].init == GPT_INIT_ONE)
      for (int64_t k = 0; k < m->reg.params[i].numel; k++)
        m->p[i][k] += 0.1f * ((float)(gpt_test_lcg(&s) % 2001) / 1000.0f - 1.0f);
}

/* One forward and backward of the model on the GPU from host parameters
 * m->p, the gradient buffers starting at g0[i]; the backward's dloss is
 * dloss. Returns the summed loss and, in out[i], the final gradients. The
 * GPU runs on a non-blocking stream (as under the runtime), so an op that
 * strays onto the legacy default stream races and shows up. */
static double gpu_run(const gpt_test_model *m, const gpt_config *cfg, int B, int T, const gpt_cuda_options *opt,
                      float dloss, float *const *g0, float **out, long *lt_fused, long *lt_fallback,
                      char *last_fallback, size_t lflen) {
  char err[256];
  cudaStream_t stream = NULL;
  assert_int_equal(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  gpt_cuda *gm = NULL;
  if (gpt_cuda_create_ex(&gm, cfg, B, T, stream, opt, err, sizeof err) != 0) fail_msg("%s", err);
  const int n = m->reg.num_params;
  float **dp = calloc(n, sizeof *dp), **dg = calloc(n, sizeof *dg);
  assert_non_null(dp);
  assert_non_null(dg);
#define OK(x) do { if ((x) != 0) fail_msg("%s", gpt_cuda_error(gm)); } while (0)
  for (int i = 0; i < n; i++) {
    size_t bytes = (size_t)m->reg.params[i].numel * sizeof(float);
    OK(gpt_cuda_alloc(gm, (void **)&dp[i], bytes));
    OK(gpt_cuda_alloc(gm, (void **)&dg[i], bytes));
    OK(gpt_cuda_copy_h2d(gm, dp[i], m->p[i], bytes));
    OK(gpt_cuda_copy_h2d(gm, dg[i], g0[i], bytes));
  }
  OK(gpt_cuda_set_batch(gm, m->tokens, m->targets));
  OK(gpt_cuda_embed_forward(gm, (const float *const *)dp));
  for (int l = 0; l < cfg->n_layer; l++) OK(gpt_cuda_block_forward(gm, (const float *const *)dp, l));
  OK(gpt_cuda_head_forward(gm, (const float *const *)dp));
  double loss;
  OK(gpt_cuda_head_backward(gm, (const float *const *)dp, dg, dloss));
  OK(gpt_cuda_loss_sum(gm, &loss)); /* after the backward is enqueued, as the trainer reads it */
  for (int l = cfg->n_layer - 1; l >= 0; l--) OK(gpt_cuda_block_backward(gm, (const float *const *)dp, dg, l));
  OK(gpt_cuda_embed_backward(gm, dg));
  for (int i = 0; i < n; i++) {
    OK(gpt_cuda_copy_d2h(gm, out[i], dg[i], (size_t)m->reg.params[i].numel * sizeof(float)));
    gpt_cuda_free(dp[i]);
    gpt_cuda_free(dg[i]);
  }
  gpt_cuda_lt_counts(gm, lt_fused, lt_fallback);
  snprintf(last_fallback, lflen, "%s", gpt_cuda_lt_last_fallback(gm));
  /* bad ids are refused with the position named, before any copy */
  int *bad = malloc((size_t)B * T * sizeof *bad);
  assert_non_null(bad);
  memcpy(bad, m->targets, (size_t)B * T * sizeof *bad);
  bad[5] = cfg->vocab;
  assert_int_equal(gpt_cuda_set_batch(gm, m->tokens, bad), -1);
  char want[96];
  snprintf(want, sizeof want, "target token %d at position 5", cfg->vocab);
  assert_non_null(strstr(gpt_cuda_error(gm), want));
  free(bad);
#undef OK
  free(dp);
  free(dg);
  gpt_cuda_destroy(gm);
  assert_int_equal(cudaStreamDestroy(stream), cudaSuccess);
  return loss;
}

static void compare_with_cpu(const gpt_config *cfg, int B, int T, uint64_t seed, const gpt_cuda_options *opt) {
  char err[256];
  const tolerances tol = opt->compute == SHARDRT_F16 ? kF16 : opt->compute == SHARDRT_BF16 || opt->tf32 ? kBF16 : kF32;
  const float S = opt->compute == SHARDRT_F16 ? F16_LOSS_SCALE : 1.0f; /* the loss scale */
  const int BT = B * T;
  print_message("  %s%s%s%s: n_layer %d n_embd %d n_head %d vocab %d, B %d T %d (seq_len %d)\n",
                opt->compute == SHARDRT_F16 ? "fp16" : opt->compute == SHARDRT_BF16 ? "bf16" : "fp32",
                opt->no_lt_epilogues ? " no-epilogues" : "", opt->recompute ? " recompute" : "",
                opt->flash_attention ? " flash" : "", cfg->n_layer, cfg->n_embd, cfg->n_head, cfg->vocab, B, T,
                cfg->seq_len);
  gpt_test_model m;
  assert_int_equal(gpt_test_model_init(&m, cfg, B, T, seed), 0);
  jitter_params(&m);
  round_params(&m, opt->compute);

  /* CPU oracle, from zero gradients */
  gpt_cpu_acts a;
  assert_int_equal(gpt_cpu_acts_init(&a, cfg, B, T, err, sizeof err), 0);
  double cpu_loss;
  assert_int_equal(gpt_cpu_forward(&a, (const float *const *)m.p, m.tokens, m.targets, &cpu_loss), 0);
  gpt_cpu_backward(&a, (const float *const *)m.p, m.g, m.tokens, m.targets, 1.0f / BT);

  /* Every stage must ADD its gradients (the runtime's grad-view contract),
   * so the GPU's gradient buffers start from nonzero values and its
   * increments are compared with the CPU's gradients. The starting value:
   * the size of the (scaled) gradient, so what the GPU adds is neither
   * drowned nor dominant. */
  const int n = m.reg.num_params;
  float **g0 = calloc(n, sizeof *g0), **h = calloc(n, sizeof *h);
  assert_non_null(g0);
  assert_non_null(h);
  uint64_t s = 7;
  for (int i = 0; i < n; i++) {
    int64_t ne = m.reg.params[i].numel;
    double sq = 0;
    for (int64_t k = 0; k < ne; k++) sq += (double)m.g[i][k] * m.g[i][k];
    float rms = (float)sqrt(sq / (double)ne) * S;
    g0[i] = malloc((size_t)ne * sizeof(float));
    h[i] = malloc((size_t)ne * sizeof(float));
    assert_non_null(g0[i]);
    assert_non_null(h[i]);
    for (int64_t k = 0; k < ne; k++) g0[i][k] = rms * ((float)(gpt_test_lcg(&s) % 2001) / 1000.0f - 1.0f);
  }
  long fused, fallback;
  char last[96];
  double gpu_loss = gpu_run(&m, cfg, B, T, opt, S / BT, g0, h, &fused, &fallback, last, sizeof last);
  print_message("  loss cpu %.8f gpu %.8f (relative %.3g, allowed %.3g)\n", cpu_loss / BT, gpu_loss / BT,
                fabs(gpu_loss - cpu_loss) / fabs(cpu_loss), tol.loss_rel);
  if (!(fabs(gpu_loss - cpu_loss) <= tol.loss_rel * fabs(cpu_loss)))
    fail_msg("GPU loss %.9g differs from the CPU's %.9g by more than %.3g relative", gpu_loss, cpu_loss, tol.loss_rel);
  double worst = 0;
  int worst_i = 0;
  for (int i = 0; i < n; i++) {
    int64_t ne = m.reg.params[i].numel;
    double num = 0, den = 0;
    for (int64_t k = 0; k < ne; k++) {
      double d = ((double)h[i][k] - g0[i][k]) / S - m.g[i][k];
      num += d * d;
      den += (double)m.g[i][k] * m.g[i][k];
    }
    double rel = sqrt(num / (den > 0 ? den : 1e-30));
    if (!(rel <= tol.grad_rel_l2))
      fail_msg("%s.%s: GPU gradient (minus its starting value) differs from CPU by relative L2 %.3g (> %.3g)",
               m.reg.params[i].module, m.reg.params[i].name, rel, tol.grad_rel_l2);
    if (rel > worst) worst = rel, worst_i = i;
    free(h[i]);
    free(g0[i]);
  }
  print_message("  worst gradient %s.%s: relative L2 %.3g (allowed %.3g)\n", m.reg.params[worst_i].module,
                m.reg.params[worst_i].name, worst, tol.grad_rel_l2);
  if (opt->compute != SHARDRT_F32) {
    print_message("  cuBLASLt products %ld, fallbacks %ld\n", fused, fallback);
    /* every product of these shapes is aligned for cuBLASLt (ld % 8 == 0,
     * 16-byte slices): a fallback here means the fused path is not used */
    if (!opt->no_lt_epilogues && (fused == 0 || fallback != 0))
      fail_msg("cuBLASLt ran %ld products and fell back on %ld (want all fused); last fallback: %s", fused, fallback,
               last);
    if (opt->no_lt_epilogues) assert_int_equal(fused, 0);
  }
  free(g0);
  free(h);
  gpt_cpu_acts_free(&a);
  gpt_test_model_free(&m);
}

static gpt_cuda_options opts(shardrt_dtype dt, bool no_lt) {
  gpt_cuda_options o;
  gpt_cuda_options_default(&o);
  o.compute = dt;
  o.no_lt_epilogues = no_lt;
  return o;
}

static void test_cuda_matches_cpu(void **state) {
  (void)state;
  gpt_config cfg;
  char err[256];
  assert_int_equal(gpt_preset("tiny", &cfg, err, sizeof err), 0);
  gpt_cuda_options o = opts(SHARDRT_F32, false);
  compare_with_cpu(&cfg, 2, cfg.seq_len, 77, &o);
}

static void test_cuda_bf16_matches_cpu(void **state) {
  (void)state;
  gpt_config cfg;
  char err[256];
  assert_int_equal(gpt_preset("tiny", &cfg, err, sizeof err), 0);
  gpt_cuda_options o = opts(SHARDRT_BF16, false);
  compare_with_cpu(&cfg, 2, cfg.seq_len, 77, &o);
  o = opts(SHARDRT_BF16, true); /* cuBLAS + separate bias/GELU kernels */
  compare_with_cpu(&cfg, 2, cfg.seq_len, 77, &o);
  o = opts(SHARDRT_BF16, false); /* activation checkpointing: the same numbers */
  o.recompute = true;
  compare_with_cpu(&cfg, 2, cfg.seq_len, 77, &o);
}

/* A vocabulary that is not a multiple of 128 (padded 301 -> 384: the
 * padded logits must be masked out of the loss and get no gradient) and
 * the odd shapes below, in bf16. */
static void test_cuda_bf16_matches_cpu_odd(void **state) {
  (void)state;
  gpt_config cfg = {.n_layer = 2, .n_embd = 48, .n_head = 3, .seq_len = 40, .vocab = 301};
  gpt_cuda_options o = opts(SHARDRT_BF16, false);
  compare_with_cpu(&cfg, 3, 37, 5, &o);
  o = opts(SHARDRT_BF16, true);
  compare_with_cpu(&cfg, 3, 37, 5, &o);
}

/* Flash attention (opt-in) in place of the materialised scores: the same
 * bf16 tolerances (it rounds the probabilities to bf16 before P V as the
 * materialised path stores them in bf16). Head sizes 16 (tiny, and the odd
 * shape with T = 37 inside one tile), 64 (GPT-2's, T = 100 across two
 * tiles) and 128 (T = 70), B > 1 so sequences and heads must not mix. */
static void test_cuda_bf16_flash_matches_cpu(void **state) {
  (void)state;
  gpt_config tiny;
  char err[256];
  assert_int_equal(gpt_preset("tiny", &tiny, err, sizeof err), 0);
  gpt_cuda_options o = opts(SHARDRT_BF16, false);
  o.flash_attention = true;
  compare_with_cpu(&tiny, 2, tiny.seq_len, 77, &o);
  gpt_config odd = {.n_layer = 2, .n_embd = 48, .n_head = 3, .seq_len = 40, .vocab = 301};
  compare_with_cpu(&odd, 3, 37, 5, &o);
  gpt_config hs64 = {.n_layer = 1, .n_embd = 128, .n_head = 2, .seq_len = 128, .vocab = 256};
  compare_with_cpu(&hs64, 2, 100, 9, &o);
  gpt_config hs128 = {.n_layer = 1, .n_embd = 256, .n_head = 2, .seq_len = 80, .vocab = 256};
  compare_with_cpu(&hs128, 2, 70, 13, &o);
  o.recompute = true; /* with activation checkpointing the forward's lse is recomputed too */
  compare_with_cpu(&hs64, 2, 100, 9, &o);
  /* a head size it has no kernel for is refused at create */
  gpt_cuda *gm = NULL;
  gpt_config hs24 = {.n_layer = 1, .n_embd = 48, .n_head = 2, .seq_len = 8, .vocab = 64};
  o.recompute = false;
  assert_int_equal(gpt_cuda_create_ex(&gm, &hs24, 1, 8, NULL, &o, err, sizeof err), -1);
  assert_non_null(strstr(err, "head size of 16, 32, 64 or 128"));
}

/* fp16 compute (the bf16 path's code with the other 16-bit type) under a
 * loss scale, with kF16's tolerances: tiny, the odd shape (padded
 * vocabulary 301 -> 384), without the cuBLASLt epilogues, with activation
 * checkpointing, and with flash attention (head sizes 16 and 64). */
static void test_cuda_fp16_matches_cpu(void **state) {
  (void)state;
  gpt_config tiny;
  char err[256];
  assert_int_equal(gpt_preset("tiny", &tiny, err, sizeof err), 0);
  gpt_config odd = {.n_layer = 2, .n_embd = 48, .n_head = 3, .seq_len = 40, .vocab = 301};
  gpt_config hs64 = {.n_layer = 1, .n_embd = 128, .n_head = 2, .seq_len = 128, .vocab = 256};
  gpt_cuda_options o = opts(SHARDRT_F16, false);
  compare_with_cpu(&tiny, 2, tiny.seq_len, 77, &o);
  compare_with_cpu(&odd, 3, 37, 5, &o);
  o = opts(SHARDRT_F16, true);
  compare_with_cpu(&tiny, 2, tiny.seq_len, 77, &o);
  compare_with_cpu(&odd, 3, 37, 5, &o);
  o = opts(SHARDRT_F16, false);
  o.recompute = true;
  compare_with_cpu(&tiny, 2, tiny.seq_len, 77, &o);
  o = opts(SHARDRT_F16, false);
  o.flash_attention = true;
  compare_with_cpu(&tiny, 2, tiny.seq_len, 77, &o);
  compare_with_cpu(&hs64, 2, 100, 9, &o);
}

/* Activation checkpointing gives the same bits as the run without it, in
 * every dtype: the recomputed forward runs the same kernels on the same
 * inputs at the same alignment (every per-layer slot is 256-byte aligned,
 * gpt_cuda__slot), so cuBLAS/cuBLASLt pick the same algorithms, and no
 * kernel on these paths adds in a scheduling-dependent order (the
 * embedding backward sums each token's rows in position order, no
 * atomics). Flash attention's backward accumulates dQ with atomics, so it
 * is compared with the CPU (above) rather than bit for bit. The loss and
 * every gradient must match exactly (memcmp), on tiny and on the odd shape
 * (3 layers here: slots 1 and 2 differ from slot 0), the tokens drawn with
 * repeats so the embedding backward sums several rows per token. */
static void check_recompute_bits(const gpt_config *cfg, int B, int T, shardrt_dtype dt, bool no_lt) {
  gpt_test_model m;
  assert_int_equal(gpt_test_model_init(&m, cfg, B, T, 21), 0);
  jitter_params(&m);
  round_params(&m, dt);
  for (int i = 0; i < B * T; i++) m.tokens[i] %= 7; /* 7 distinct tokens: each one at several positions */
  const int n = m.reg.num_params;
  float **g0 = calloc(n, sizeof *g0), **h1 = calloc(n, sizeof *h1), **h2 = calloc(n, sizeof *h2);
  assert_non_null(g0);
  assert_non_null(h1);
  assert_non_null(h2);
  uint64_t s = 5;
  for (int i = 0; i < n; i++) {
    int64_t ne = m.reg.params[i].numel;
    g0[i] = malloc((size_t)ne * sizeof(float));
    h1[i] = malloc((size_t)ne * sizeof(float));
    h2[i] = malloc((size_t)ne * sizeof(float));
    assert_non_null(g0[i]);
    assert_non_null(h1[i]);
    assert_non_null(h2[i]);
    for (int64_t k = 0; k < ne; k++) g0[i][k] = 1e-3f * ((float)(gpt_test_lcg(&s) % 2001) / 1000.0f - 1.0f);
  }
  gpt_cuda_options o = opts(dt, no_lt);
  const float dloss = (dt == SHARDRT_F16 ? F16_LOSS_SCALE : 1.0f) / (float)(B * T);
  long f1, fb1, f2, fb2;
  char last[96];
  double l1 = gpu_run(&m, cfg, B, T, &o, dloss, g0, h1, &f1, &fb1, last, sizeof last);
  o.recompute = true;
  double l2 = gpu_run(&m, cfg, B, T, &o, dloss, g0, h2, &f2, &fb2, last, sizeof last);
  print_message("  %s%s: loss %.17g without, %.17g with recompute\n",
                dt == SHARDRT_F16 ? "fp16" : dt == SHARDRT_BF16 ? "bf16" : "fp32", no_lt ? " no-epilogues" : "", l1,
                l2);
  if (memcmp(&l1, &l2, sizeof l1) != 0) fail_msg("loss differs with recompute: %.17g vs %.17g", l1, l2);
  for (int i = 0; i < n; i++) {
    int64_t ne = m.reg.params[i].numel;
    for (int64_t k = 0; k < ne; k++)
      if (memcmp(&h1[i][k], &h2[i][k], sizeof(float)) != 0)
        fail_msg("%s.%s[%lld]: gradient %.9g without recompute, %.9g with it (must be the same bits)",
                 m.reg.params[i].module, m.reg.params[i].name, (long long)k, h1[i][k], h2[i][k]);
    free(g0[i]), free(h1[i]), free(h2[i]);
  }
  /* recompute runs each block's forward twice: more products, none new */
  if (dt != SHARDRT_F32 && !no_lt) assert_true(f2 > f1 && fb1 == 0 && fb2 == 0);
  free(g0), free(h1), free(h2);
  gpt_test_model_free(&m);
}

static void test_cuda_recompute_bit_identical(void **state) {
  (void)state;
  gpt_config tiny;
  char err[256];
  assert_int_equal(gpt_preset("tiny", &tiny, err, sizeof err), 0);
  gpt_config odd = {.n_layer = 3, .n_embd = 48, .n_head = 3, .seq_len = 40, .vocab = 301};
  const shardrt_dtype dts[3] = {SHARDRT_F32, SHARDRT_BF16, SHARDRT_F16};
  for (int i = 0; i < 3; i++) {
    check_recompute_bits(&tiny, 2, tiny.seq_len, dts[i], false);
    check_recompute_bits(&odd, 3, 37, dts[i], false);
  }
  check_recompute_bits(&odd, 3, 37, SHARDRT_BF16, true); /* the cuBLAS + kernels fallback too */
}

/* TF32 is opt-in: with it the fp32 model still matches to TF32's 10-bit
 * mantissa (2^-11 relative per product input; tolerances as bf16's, which
 * has fewer bits); TF32 with bf16/fp16 and flash attention with fp32 are
 * refused. */
static void test_cuda_options(void **state) {
  (void)state;
  gpt_config cfg;
  char err[256];
  assert_int_equal(gpt_preset("tiny", &cfg, err, sizeof err), 0);
  gpt_cuda_options o = opts(SHARDRT_F32, false);
  o.tf32 = true;
  compare_with_cpu(&cfg, 2, cfg.seq_len, 77, &o);
  gpt_cuda *gm = NULL;
  o = opts(SHARDRT_F16, false);
  o.tf32 = true;
  assert_int_equal(gpt_cuda_create_ex(&gm, &cfg, 1, 4, NULL, &o, err, sizeof err), -1);
  assert_non_null(strstr(err, "TF32"));
  o = opts(SHARDRT_BF16, false);
  o.tf32 = true;
  assert_int_equal(gpt_cuda_create_ex(&gm, &cfg, 1, 4, NULL, &o, err, sizeof err), -1);
  assert_non_null(strstr(err, "TF32"));
  o = opts(SHARDRT_F32, false);
  o.flash_attention = true;
  assert_int_equal(gpt_cuda_create_ex(&gm, &cfg, 1, 4, NULL, &o, err, sizeof err), -1);
  assert_non_null(strstr(err, "bf16 and fp16 paths only"));
}

/* Shapes that are multiples of nothing: n_embd not a multiple of the warp
 * (LayerNorm lanes and parameter-gradient columns run ragged), 3 heads of
 * 16, T not a multiple of 32 and shorter than seq_len (wpe rows past T get
 * no gradient), a vocabulary wider than the cross-entropy block. */
static void test_cuda_matches_cpu_odd(void **state) {
  (void)state;
  gpt_config cfg = {.n_layer = 2, .n_embd = 48, .n_head = 3, .seq_len = 40, .vocab = 301};
  char err[256];
  assert_int_equal(gpt_config_validate(&cfg, err, sizeof err), 0);
  /* the vocabulary is padded to 384 on the fp32 path too: the padded
   * logits must stay out of the loss and give no gradient */
  gpt_cuda_options o = opts(SHARDRT_F32, false);
  compare_with_cpu(&cfg, 3, 37, 5, &o);
  o.recompute = true; /* activation checkpointing on the fp32 path */
  compare_with_cpu(&cfg, 3, 37, 5, &o);
}

/* to_f32 / add_f32_into on bf16 and fp16 agree bit for bit with the
 * runtime's host conversions (both round to nearest even). */
static void test_cuda_dtype_helpers(void **state) {
  (void)state;
  gpt_config cfg;
  char err[256];
  assert_int_equal(gpt_preset("tiny", &cfg, err, sizeof err), 0);
  gpt_cuda *gm = NULL;
  if (gpt_cuda_create(&gm, &cfg, 1, 1, NULL, err, sizeof err) != 0) fail_msg("%s", err);
  enum { N = 1000 };
  const shardrt_dtype dts[2] = {SHARDRT_BF16, SHARDRT_F16};
  for (int di = 0; di < 2; di++) {
    shardrt_dtype dt = dts[di];
    uint16_t h16[N], back16[N];
    float add[N], got[N];
    uint64_t s = 17 + di;
    for (int i = 0; i < N; i++) {
      float v = ((float)(gpt_test_lcg(&s) % 20001) / 10000.0f - 1.0f) * 3.0f;
      add[i] = ((float)(gpt_test_lcg(&s) % 20001) / 10000.0f - 1.0f) * 0.01f;
      h16[i] = dt == SHARDRT_BF16 ? shardrt_f32_to_bf16(v) : shardrt_f32_to_f16(v);
    }
    void *d16;
    float *df, *dadd;
    assert_int_equal(gpt_cuda_alloc(gm, &d16, sizeof h16), 0);
    assert_int_equal(gpt_cuda_alloc(gm, (void **)&df, sizeof got), 0);
    assert_int_equal(gpt_cuda_alloc(gm, (void **)&dadd, sizeof add), 0);
    assert_int_equal(gpt_cuda_copy_h2d(gm, d16, h16, sizeof h16), 0);
    assert_int_equal(gpt_cuda_copy_h2d(gm, dadd, add, sizeof add), 0);
    assert_int_equal(gpt_cuda_to_f32(gm, df, d16, dt, N), 0);
    assert_int_equal(gpt_cuda_copy_d2h(gm, got, df, sizeof got), 0);
    for (int i = 0; i < N; i++) {
      float want = dt == SHARDRT_BF16 ? shardrt_bf16_to_f32(h16[i]) : shardrt_f16_to_f32(h16[i]);
      assert_true(got[i] == want);
    }
    assert_int_equal(gpt_cuda_add_f32_into(gm, d16, dt, dadd, N), 0);
    assert_int_equal(gpt_cuda_copy_d2h(gm, back16, d16, sizeof back16), 0);
    for (int i = 0; i < N; i++) {
      float base = dt == SHARDRT_BF16 ? shardrt_bf16_to_f32(h16[i]) : shardrt_f16_to_f32(h16[i]);
      uint16_t want = dt == SHARDRT_BF16 ? shardrt_f32_to_bf16(base + add[i]) : shardrt_f32_to_f16(base + add[i]);
      assert_int_equal(back16[i], want);
    }
    gpt_cuda_free(d16);
    gpt_cuda_free(df);
    gpt_cuda_free(dadd);
  }
  gpt_cuda_destroy(gm);
}

int main(void) {
  if (gpt_cuda_device_count() <= 0) {
    fprintf(stderr, "test_gpt_cuda: no usable GPU (cudaGetDeviceCount failed or returned 0): skipped\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cuda_matches_cpu),
      cmocka_unit_test(test_cuda_matches_cpu_odd),
      cmocka_unit_test(test_cuda_bf16_matches_cpu),
      cmocka_unit_test(test_cuda_bf16_matches_cpu_odd),
      cmocka_unit_test(test_cuda_bf16_flash_matches_cpu),
      cmocka_unit_test(test_cuda_fp16_matches_cpu),
      cmocka_unit_test(test_cuda_recompute_bit_identical),
      cmocka_unit_test(test_cuda_options),
      cmocka_unit_test(test_cuda_dtype_helpers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
