/* SPDX-License-Identifier: Apache-2.0 */
/* One AdamW and one SGD step of a device backend (argv[1]: cpu or cuda)
 * from fixed fp32 state, against the closed form of torch.optim.AdamW /
 * torch.optim.SGD evaluated in double from the double hyper-parameters.
 *
 * The bound is a forward error analysis of the fp32 evaluation: each fp32
 * operation rounds with relative error at most u = 2^-24, and so does each
 * hyper-parameter scalar formed in double and rounded to fp32. A quantity
 * computed through k such roundings from terms whose absolute values sum to
 * S is within about k*u*S of the exact value; the checks use k = 4 per
 * stage (3 to 4 roundings each) on the magnitudes below, i.e. a few ulp.
 * The old formula (1 - beta2 formed in fp32: 1 - 0.999f = 0.00099998713)
 * is 1.3e-5 relative off on v at the first step, ~50 times this bound.
 *
 * Needs a GPU for `cuda`: exits 77 (skipped) without one. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/device/device.h"

#define U 5.9604644775390625e-08 /* 2^-24: fp32 unit roundoff */
#define N 4099                   /* odd: the CUDA kernels' vector loop and tail both run */

static shardrt__device dev;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float uni(float lo, float hi) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}

/* Runs the op on device copies of the host arrays and copies them back. */
typedef struct dbuf {
  void *d;
  float *h;
} dbuf;
static void up(dbuf *b, float *h) {
  b->h = h;
  assert_int_equal(dev.i->alloc(dev.self, N * sizeof(float), &b->d), SHARDRT_OK);
  assert_int_equal(dev.i->copy(dev.self, b->d, h, N * sizeof(float), SHARDRT__H2D), SHARDRT_OK);
}
static void down(dbuf *b) {
  assert_int_equal(dev.i->copy(dev.self, b->h, b->d, N * sizeof(float), SHARDRT__D2H), SHARDRT_OK);
  dev.i->free(dev.self, b->d);
}

static void expect_close(const char *what, int i, double got, double want, double bound) {
  if (!(fabs(got - want) <= bound))
    fail_msg("%s[%d] = %.9g, double reference %.9g: error %.3g > bound %.3g (%.1f ulp of the value)", what, i, got,
             want, fabs(got - want), bound, fabs(got - want) / (U * 2 * fmax(fabs(want), 1e-30)));
}

typedef struct adam_case {
  double lr, beta1, beta2, eps, wd;
  int t;           /* step number of this update (1 = fresh moments) */
  float grad_scale;
} adam_case;

static void check_adamw(const adam_case *c) {
  float *p = malloc(N * sizeof(float)), *g = malloc(N * sizeof(float));
  float *m = malloc(N * sizeof(float)), *v = malloc(N * sizeof(float));
  double *rp = malloc(N * sizeof(double)), *rm = malloc(N * sizeof(double)), *rv = malloc(N * sizeof(double));
  double *ep = malloc(N * sizeof(double)), *em = malloc(N * sizeof(double)), *ev = malloc(N * sizeof(double));
  const double bc1 = 1 - pow(c->beta1, c->t), bc2 = 1 - pow(c->beta2, c->t), step = c->lr / bc1;
  for (int i = 0; i < N; i++) {
    /* |update| ~ lr ~ |p|: an error in the update shows in p. */
    p[i] = uni(-0.2f, 0.2f);
    g[i] = uni(-2.0f, 2.0f);
    m[i] = c->t == 1 ? 0.0f : uni(-0.5f, 0.5f);
    v[i] = c->t == 1 ? 0.0f : uni(0.0f, 1.0f);
    if (i % 97 == 5) g[i] = 0.0f; /* eps-dominated denominators when v is 0 too */
    double gg = (double)g[i] * c->grad_scale, w = 1 - c->beta1;
    rm[i] = c->beta1 * m[i] + w * gg;
    rv[i] = c->beta2 * v[i] + (1 - c->beta2) * gg * gg;
    double den = sqrt(rv[i]) / sqrt(bc2) + c->eps;
    double p1 = p[i] * (1 - c->lr * c->wd);
    rp[i] = p1 - step * rm[i] / den;
    /* Error bounds, from the magnitudes each fp32 stage combines. */
    em[i] = 4 * U * (fabs(m[i]) + w * (fabs(gg) + fabs(m[i])));
    ev[i] = 4 * U * (c->beta2 * v[i] + (1 - c->beta2) * gg * gg);
    /* The denominator: sqrt halves v's relative error; the division by
     * bc2_sqrt, the sum with eps and the rounded scalars add ~3u. */
    double eden = (rv[i] > 0 ? ev[i] / (2 * sqrt(rv[i]) * sqrt(bc2)) : 0) + 4 * U * den;
    double upd = step * fabs(rm[i]) / den;
    ep[i] = 4 * U * (fabs(p[i]) + upd) + step * em[i] / den + upd * eden / den;
  }
  dbuf bp, bg, bm, bv;
  up(&bp, p), up(&bg, g), up(&bm, m), up(&bv, v);
  shardrt__adamw_args a;
  shardrt__adamw_args_make(&a, c->lr, c->beta1, c->beta2, c->eps, c->wd, (double)c->t, c->grad_scale);
  assert_int_equal(dev.i->adamw(dev.self, bp.d, SHARDRT_F32, bg.d, SHARDRT_F32, bm.d, bv.d, SHARDRT_F32, N, &a),
                   SHARDRT_OK);
  assert_int_equal(dev.i->sync(dev.self), SHARDRT_OK);
  down(&bp), down(&bg), down(&bm), down(&bv);
  for (int i = 0; i < N; i++) {
    expect_close("adamw m", i, m[i], rm[i], em[i]);
    expect_close("adamw v", i, v[i], rv[i], ev[i]);
    expect_close("adamw param", i, p[i], rp[i], ep[i]);
  }
  free(p), free(g), free(m), free(v), free(rp), free(rm), free(rv), free(ep), free(em), free(ev);
}

static void test_adamw_first_step(void **state) {
  /* Fresh moments: the bias corrections cancel (1-beta) exactly in the exact
   * formula, which is where an fp32 (1 - beta2) shows most. */
  adam_case c = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .wd = 0.1, .t = 1, .grad_scale = 0.5f};
  check_adamw(&c);
}

static void test_adamw_later_steps(void **state) {
  adam_case c = {.lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .wd = 0.01, .t = 10, .grad_scale = 1.0f};
  check_adamw(&c);
  c.t = 5000; /* bias corrections near 1 */
  check_adamw(&c);
}

static void test_adamw_other_betas(void **state) {
  /* 1 - beta1 = 0.7 >= 0.5: torch.lerp's second branch. Large eps. */
  adam_case c = {.lr = 0.1, .beta1 = 0.3, .beta2 = 0.95, .eps = 1e-3, .wd = 0.0, .t = 3, .grad_scale = 0.25f};
  check_adamw(&c);
  adam_case d = {.lr = 0.02, .beta1 = 0.0, .beta2 = 0.99, .eps = 1e-6, .wd = 0.5, .t = 2, .grad_scale = 1.0f};
  check_adamw(&d);
}

static void check_sgd(double lr, double mom, double wd, float gs, bool first) {
  float *p = malloc(N * sizeof(float)), *g = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
  double *rp = malloc(N * sizeof(double)), *rb = malloc(N * sizeof(double));
  double *ep = malloc(N * sizeof(double)), *eb = malloc(N * sizeof(double));
  for (int i = 0; i < N; i++) {
    p[i] = uni(-1.0f, 1.0f);
    g[i] = uni(-2.0f, 2.0f);
    b[i] = first ? 0.0f : uni(-1.0f, 1.0f);
    double gg = (double)g[i] * gs + wd * p[i];
    double sg = fabs((double)g[i] * gs) + wd * fabs(p[i]);
    rb[i] = mom > 0 ? mom * b[i] + gg : gg;
    eb[i] = 4 * U * (mom * fabs(b[i]) + sg);
    rp[i] = p[i] - lr * rb[i];
    ep[i] = 4 * U * (fabs(p[i]) + lr * (mom * fabs(b[i]) + sg)) + lr * eb[i];
  }
  dbuf bp, bg, bb;
  up(&bp, p), up(&bg, g), up(&bb, b);
  shardrt__sgd_args a = {.lr = (float)lr, .momentum = (float)mom, .weight_decay = (float)wd, .grad_scale = gs};
  assert_int_equal(dev.i->sgd(dev.self, bp.d, SHARDRT_F32, bg.d, SHARDRT_F32, mom > 0 ? bb.d : NULL, SHARDRT_F32, N,
                              &a),
                   SHARDRT_OK);
  assert_int_equal(dev.i->sync(dev.self), SHARDRT_OK);
  down(&bp), down(&bg), down(&bb);
  for (int i = 0; i < N; i++) {
    if (mom > 0) expect_close("sgd momentum buffer", i, b[i], rb[i], eb[i]);
    expect_close("sgd param", i, p[i], rp[i], ep[i]);
  }
  free(p), free(g), free(b), free(rp), free(rb), free(ep), free(eb);
}

static void test_sgd(void **state) {
  check_sgd(0.1, 0.0, 0.0, 1.0f, true);   /* plain */
  check_sgd(0.05, 0.9, 1e-2, 0.5f, true); /* first step: the buffer becomes the gradient */
  check_sgd(0.05, 0.9, 1e-2, 0.5f, false);
  check_sgd(0.3, 0.99, 0.1, 2.0f, false);
}

int main(int argc, char **argv) {
  const char *which = argc > 1 ? argv[1] : "cpu";
  if (strcmp(which, "cuda") == 0) {
    if (shardrt__cuda_device_count() == 0) {
      printf("no CUDA GPU: skipped\n");
      return 77;
    }
    if (shardrt__device_cuda_create(0, &dev) != SHARDRT_OK) {
      printf("cuda device: %s\n", shardrt_last_error());
      return 1;
    }
  } else if (strcmp(which, "cpu") == 0) {
    assert_int_equal(shardrt__device_cpu_create(&dev), SHARDRT_OK);
  } else {
    fprintf(stderr, "usage: test_optim_reference cpu|cuda\n");
    return 2;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_adamw_first_step),
      cmocka_unit_test(test_adamw_later_steps),
      cmocka_unit_test(test_adamw_other_betas),
      cmocka_unit_test(test_sgd),
  };
  return cmocka_run_group_tests_name(which, tests, NULL, NULL);
}
