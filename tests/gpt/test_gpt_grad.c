/* SPDX-License-Identifier: Apache-2.0 */
/* The CPU backward against central finite differences of the CPU forward,
 * on the tiny preset, for every parameter tensor (embeddings, LayerNorms,
 * attention, MLP, head).
 *
 * Precision argument. The model runs in fp32; the loss is a mean over B*T
 * tokens accumulated in double. A forward's rounding noise on the loss is
 * about 1e-7 relative (a few ulps of fp32 on a loss near ln 256 = 5.5), so
 * the finite difference (L+ - L-) / 2h has noise ~ 5.5e-7 / h; with
 * h = 1e-2 that is ~5e-5 at worst and ~1e-5 typically (errors partly cancel
 * between L+ and L-). The truncation error of a central difference is
 * O(h^2 f''') and stays below 1e-4 relative here. Measured on this fixture:
 * directional errors <= 1.2e-4 relative, single-element errors <= 2.1e-5
 * absolute. Each tensor is checked three ways, each with a margin of 5-8x
 * over those measurements and far below what a wrong term produces:
 *  1. the directional derivative along the analytic gradient g/|g| must
 *     equal |g| within 1e-3 relative, separately for the q, k and v thirds
 *     of c_attn (q and k gradients are smaller than v's and would otherwise
 *     hide behind it);
 *  2. along a random +-1 direction d: g.d within 1e-3 of |g||d|;
 *  3. single elements (the largest-|g| ones and a few random ones): within
 *     5e-3 relative plus 1e-4 absolute, so near-zero entries are checked
 *     against zero.
 * The "double check" is the step size: every comparison is repeated at h/2
 * and must pass there too, which a rounding-noise accident would not. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "gpt_cpu.h"
#include "gpt_test_util.h"

enum { B = 2, NELEM_TOP = 4, NELEM_RAND = 4 };
#define WEIGHT_GAIN 8.0f

typedef struct fixture {
  gpt_test_model m;
  gpt_cpu_acts a;
  double worst_ratio; /* the largest |error| / tolerance seen, for the log */
} fixture;

static double loss_now(fixture *f) {
  double sum = 0.0;
  assert_int_equal(gpt_cpu_forward(&f->a, (const float *const *)f->m.p, f->m.tokens, f->m.targets, &sum), 0);
  return sum / (f->m.B * f->m.T);
}

/* Central difference of the loss along direction dir (NULL: unit vector at
 * element `elem`) for tensor pid; dir is scaled by h. */
static double fd(fixture *f, int pid, const float *dir, int64_t elem, double h) {
  int64_t n = f->m.reg.params[pid].numel;
  float *x = f->m.p[pid];
  float *saved = malloc((size_t)n * sizeof *saved);
  assert_non_null(saved);
  memcpy(saved, x, (size_t)n * sizeof *x);
  double lp, lm;
  if (dir) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(saved[i] + h * dir[i]);
    lp = loss_now(f);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(saved[i] - h * dir[i]);
    lm = loss_now(f);
  } else {
    /* divide by the step fp32 actually took, not by the h asked for */
    float up = (float)(saved[elem] + h), dn = (float)(saved[elem] - h);
    x[elem] = up;
    lp = loss_now(f);
    x[elem] = dn;
    lm = loss_now(f);
    h = ((double)up - (double)dn) / 2.0;
  }
  memcpy(x, saved, (size_t)n * sizeof *x);
  free(saved);
  return (lp - lm) / (2.0 * h);
}

static void check_close(fixture *f, int pid, const char *what, double fdv, double an, double rtol,
                        double atol, double scale) {
  double err = fabs(fdv - an);
  double tol = rtol * scale + atol;
  if (err / tol > f->worst_ratio) f->worst_ratio = err / tol;
  if (err > tol) {
    const gpt_param_desc *d = &f->m.reg.params[pid];
    print_error("%s.%s %s: finite difference %.8g vs analytic %.8g (|err| %.3g > tol %.3g)\n", d->module,
                d->name, what, fdv, an, err, tol);
    fail();
  }
}

static void check_param(fixture *f, int pid, uint64_t *rng) {
  const int64_t n = f->m.reg.params[pid].numel;
  const float *g = f->m.g[pid];
  float *dir = malloc((size_t)n * sizeof *dir);
  assert_non_null(dir);
  double gnorm = 0.0;
  for (int64_t i = 0; i < n; i++) gnorm += (double)g[i] * g[i];
  gnorm = sqrt(gnorm);
  assert_true(gnorm > 1e-6); /* every parameter of this model influences the loss */

  for (int pass = 0; pass < 2; pass++) {
    double h = pass == 0 ? 1e-2 : 5e-3;
    /* 1. along g/|g| (per q/k/v third for c_attn): the derivative is |g| */
    const gpt_param_desc *d = &f->m.reg.params[pid];
    int chunks = strstr(d->module, "c_attn") ? 3 : 1;
    for (int c = 0; c < chunks; c++) {
      int64_t lo = n / chunks * c, hi = n / chunks * (c + 1);
      double cn = 0.0;
      for (int64_t i = lo; i < hi; i++) cn += (double)g[i] * g[i];
      cn = sqrt(cn);
      if (chunks == 3 && d->ndim == 1 && c == 1) {
        /* the key bias adds q.b_k to a whole row of scores, which softmax
         * ignores: its true gradient is zero */
        assert_true(cn < 1e-6);
        continue;
      }
      assert_true(cn > 1e-6);
      for (int64_t i = 0; i < n; i++) dir[i] = i >= lo && i < hi ? (float)(g[i] / cn) : 0.0f;
      const char *what = chunks == 1 ? "along gradient" : c == 0 ? "along q gradient"
                         : c == 1 ? "along k gradient" : "along v gradient";
      check_close(f, pid, what, fd(f, pid, dir, 0, h), cn, 1e-3, 0.0, cn);
    }
    /* 2. along a random +-1 direction */
    double gd = 0.0;
    for (int64_t i = 0; i < n; i++) {
      dir[i] = (gpt_test_lcg(rng) & 1) ? 1.0f : -1.0f;
      gd += (double)g[i] * dir[i];
    }
    /* scale the step so each element moves by h / sqrt(n): the same
     * perturbation norm as case 1 */
    double s = 1.0 / sqrt((double)n);
    for (int64_t i = 0; i < n; i++) dir[i] = (float)(dir[i] * s);
    check_close(f, pid, "along random direction", fd(f, pid, dir, 0, h), gd * s, 1e-3, 0.0, gnorm);
    /* 3. single elements: the largest |g| (found greedily) and random ones */
    int64_t picked[NELEM_TOP + NELEM_RAND];
    for (int k = 0; k < NELEM_TOP; k++) {
      int64_t best = -1;
      for (int64_t i = 0; i < n; i++) {
        int taken = 0;
        for (int j = 0; j < k; j++) taken |= picked[j] == i;
        if (!taken && (best < 0 || fabsf(g[i]) > fabsf(g[best]))) best = i;
      }
      picked[k] = best < 0 ? 0 : best;
    }
    for (int k = 0; k < NELEM_RAND; k++) picked[NELEM_TOP + k] = (int64_t)(gpt_test_lcg(rng) % (uint64_t)n);
    for (int k = 0; k < NELEM_TOP + NELEM_RAND; k++) {
      int64_t e = picked[k];
      char what[64];
      snprintf(what, sizeof what, "element %lld", (long long)e);
      check_close(f, pid, what, fd(f, pid, NULL, e, h), g[e], 5e-3, 1e-4, fabs(g[e]));
    }
  }
  free(dir);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  gpt_config cfg;
  char err[256];
  if (!f || gpt_preset("tiny", &cfg, err, sizeof err) != 0) return -1;
  if (gpt_test_model_init(&f->m, &cfg, B, cfg.seq_len, 1234) != 0) return -1;
  if (gpt_cpu_acts_init(&f->a, &cfg, B, cfg.seq_len, err, sizeof err) != 0) return -1;
  /* Move off GPT-2's init so every term of the backward carries weight: at
   * std 0.02 attention is almost uniform (q and k get ~1e-3 of v's
   * gradient) and GELU is almost linear, so errors there would hide under
   * the tolerance. Weights are scaled up 8x, gains and biases jittered. */
  uint64_t s = 99;
  for (int i = 0; i < f->m.reg.num_params; i++) {
    const gpt_param_desc *d = &f->m.reg.params[i];
    for (int64_t k = 0; k < d->numel; k++) {
      if (d->init == GPT_INIT_ZERO || d->init == GPT_INIT_ONE)
        f->m.p[i][k] += 0.2f * ((float)(gpt_test_lcg(&s) % 2001) / 1000.0f - 1.0f);
      else
        f->m.p[i][k] *= WEIGHT_GAIN;
    }
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  gpt_cpu_acts_free(&f->a);
  gpt_test_model_free(&f->m);
  free(f);
  return 0;
}

static void compute_grads(fixture *f) {
  gpt_test_zero_grads(&f->m);
  loss_now(f);
  gpt_cpu_backward(&f->a, (const float *const *)f->m.p, f->m.g, f->m.tokens, f->m.targets,
                   1.0f / (float)(f->m.B * f->m.T));
}

/* One test per parameter kind, so a failure names the broken layer. */
static void check_kind(void **state, int (*want)(const gpt_registry *, int)) {
  fixture *f = *state;
  compute_grads(f);
  f->worst_ratio = 0.0;
  uint64_t rng = 7;
  int checked = 0;
  for (int pid = 0; pid < f->m.reg.num_params; pid++) {
    if (!want(&f->m.reg, pid)) continue;
    check_param(f, pid, &rng);
    checked++;
  }
  assert_true(checked > 0);
  print_message("  %d tensors checked, worst |error| / tolerance %.3g\n", checked, f->worst_ratio);
}

static int is_embedding(const gpt_registry *r, int pid) { return strcmp(r->params[pid].module_class, "Embedding") == 0; }
static int is_layernorm(const gpt_registry *r, int pid) { return strcmp(r->params[pid].module_class, "LayerNorm") == 0; }
static int is_attn(const gpt_registry *r, int pid) { return strstr(r->params[pid].module, ".attn.") != NULL; }
static int is_mlp(const gpt_registry *r, int pid) { return strstr(r->params[pid].module, ".mlp.") != NULL; }
static int is_head(const gpt_registry *r, int pid) { return strcmp(r->params[pid].module, "lm_head") == 0; }

static void test_grad_embeddings(void **state) { check_kind(state, is_embedding); }
static void test_grad_layernorms(void **state) { check_kind(state, is_layernorm); }
static void test_grad_attention(void **state) { check_kind(state, is_attn); }
static void test_grad_mlp(void **state) { check_kind(state, is_mlp); }
static void test_grad_head(void **state) { check_kind(state, is_head); }

/* Gradients of the summed loss over two half-batches equal the full batch's:
 * the accumulation contract the trainer relies on (grads are ADDED). */
static void test_grad_accumulates(void **state) {
  fixture *f = *state;
  compute_grads(f);
  const int n = f->m.reg.num_params;
  float **full = calloc((size_t)n, sizeof *full);
  assert_non_null(full);
  for (int i = 0; i < n; i++) {
    size_t bytes = (size_t)f->m.reg.params[i].numel * sizeof(float);
    full[i] = malloc(bytes);
    assert_non_null(full[i]);
    memcpy(full[i], f->m.g[i], bytes);
  }
  gpt_cpu_acts half;
  char err[256];
  assert_int_equal(gpt_cpu_acts_init(&half, &f->a.cfg, 1, f->m.T, err, sizeof err), 0);
  gpt_test_zero_grads(&f->m);
  for (int b = 0; b < B; b++) {
    const int *tok = f->m.tokens + b * f->m.T, *tgt = f->m.targets + b * f->m.T;
    double sum;
    assert_int_equal(gpt_cpu_forward(&half, (const float *const *)f->m.p, tok, tgt, &sum), 0);
    gpt_cpu_backward(&half, (const float *const *)f->m.p, f->m.g, tok, tgt, 1.0f / (float)(B * f->m.T));
  }
  for (int i = 0; i < n; i++) {
    for (int64_t k = 0; k < f->m.reg.params[i].numel; k++) {
      float want = full[i][k], got = f->m.g[i][k];
      if (fabsf(want - got) > 1e-5f * fabsf(want) + 1e-7f) {
        print_error("%s.%s[%lld]: two half batches %g vs one batch %g\n", f->m.reg.params[i].module,
                    f->m.reg.params[i].name, (long long)k, got, want);
        fail();
      }
    }
    free(full[i]);
  }
  free(full);
  gpt_cpu_acts_free(&half);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grad_embeddings), cmocka_unit_test(test_grad_layernorms),
      cmocka_unit_test(test_grad_attention),  cmocka_unit_test(test_grad_mlp),
      cmocka_unit_test(test_grad_head),       cmocka_unit_test(test_grad_accumulates),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
