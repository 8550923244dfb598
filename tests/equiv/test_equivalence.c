/* SPDX-License-Identifier: Apache-2.0 */
/* Equivalence: every strategy, at this run's world size, reproduces the
 * NO_SHARD run of the same global batch on one rank (computed here on
 * MPI_COMM_SELF) with the same precision plan, accumulation and clipping:
 * per-step losses, gradient norms and final weights. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../mpi_test_main.h"

#include "mini_model.h"


static shardrt_plan base_plan(shardrt_flavor fl, shardrt_strategy s) { return mini_base_plan(fl, s, g_world); }

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-12); }

/* Runs the reference (NO_SHARD, one rank, same precision/accum/clip) and
 * the candidate, and compares within tol. */
static void check_equiv(const shardrt_plan *cand, double tol, const char *what) {
  mini_cfg c;
  mini_cfg_default(&c);
  shardrt_plan ref = *cand;
  ref.strategy = SHARDRT_NO_SHARD;
  ref.shard_group_size = 0;
  ref.accum_mode = SHARDRT_ACCUM_AUTO;
  mini_run a, b;
  MPI_Comm self = MPI_COMM_SELF;
  shardrt_status rc = mini_train(&c, &ref, &self, &a);
  if (rc) fail_msg("%s: reference failed: %s", what, shardrt_last_error());
  rc = mini_train(&c, cand, NULL, &b);
  if (rc) fail_msg("%s: candidate failed: %s", what, shardrt_last_error());
  for (int s = 0; s < c.steps; s++) {
    if (rel(b.loss[s], a.loss[s]) > tol)
      fail_msg("%s: world %d step %d loss %.9g vs reference %.9g (rel %.3g > %.3g)", what, g_world, s + 1, b.loss[s],
               a.loss[s], rel(b.loss[s], a.loss[s]), tol);
    if (rel(b.norm[s], a.norm[s]) > tol * 10)
      fail_msg("%s: step %d grad norm %.9g vs %.9g", what, s + 1, b.norm[s], a.norm[s]);
  }
  assert_int_equal(a.nweights, b.nweights);
  double maxref = 0, maxdiff = 0, l2d = 0, l2r = 0;
  for (int64_t i = 0; i < a.nweights; i++) {
    double d = (double)a.weights[i] - (double)b.weights[i];
    maxref = fmax(maxref, fabs(a.weights[i]));
    maxdiff = fmax(maxdiff, fabs(d));
    l2d += d * d;
    l2r += (double)a.weights[i] * a.weights[i];
  }
  /* fp32: every weight agrees. 16-bit: Adam turns rounding noise on
   * near-zero gradients into +-lr steps on single weights, so compare the
   * weights as a whole (relative L2). */
  if (tol <= 1e-5 && maxdiff > tol * 10 * maxref)
    fail_msg("%s: weights differ by %.3g (max |w| %.3g)", what, maxdiff, maxref);
  if (sqrt(l2d / l2r) > tol * 10) fail_msg("%s: weights differ by %.3g relative L2", what, sqrt(l2d / l2r));
  /* The loss must actually move: the comparison is not between frozen runs. */
  assert_true(a.loss[c.steps - 1] < a.loss[0]);
  mini_run_free(&a);
  mini_run_free(&b);
}

static const shardrt_strategy all_strategies[] = {SHARDRT_NO_SHARD,      SHARDRT_ZERO1,        SHARDRT_SHARD_GRAD_OP,
                                                  SHARDRT_FULL_SHARD,    SHARDRT_HYBRID_SHARD, SHARDRT_HYBRID_SHARD_ZERO2};

static void test_fp32_every_strategy(void **state) {
  for (int fl = 0; fl < 2; fl++)
    for (size_t i = 0; i < sizeof all_strategies / sizeof all_strategies[0]; i++) {
      shardrt_plan p = base_plan((shardrt_flavor)fl, all_strategies[i]);
      char what[96];
      snprintf(what, sizeof what, "%s %s fp32", fl ? "deepspeed" : "fsdp", shardrt_strategy_name(p.strategy));
      check_equiv(&p, 1e-5, what);
    }
}

static void test_accumulation_both_modes(void **state) {
  shardrt_accum_mode modes[] = {SHARDRT_ACCUM_REDUCE_EACH, SHARDRT_ACCUM_NO_SYNC};
  for (int m = 0; m < 2; m++)
    for (size_t i = 0; i < sizeof all_strategies / sizeof all_strategies[0]; i++) {
      shardrt_plan p = base_plan(SHARDRT_FLAVOR_FSDP, all_strategies[i]);
      p.gradient_accumulation_steps = 2;
      p.accum_mode = modes[m];
      char what[96];
      snprintf(what, sizeof what, "%s accum 2 %s", shardrt_strategy_name(p.strategy), shardrt_accum_mode_name(modes[m]));
      check_equiv(&p, 1e-5, what);
    }
}

static void test_clipping(void **state) {
  for (size_t i = 0; i < sizeof all_strategies / sizeof all_strategies[0]; i++) {
    shardrt_plan p = base_plan(SHARDRT_FLAVOR_DEEPSPEED, all_strategies[i]);
    p.gradient_clipping = 0.05; /* below the observed norms: clipping is active */
    char what[96];
    snprintf(what, sizeof what, "%s clip 0.05", shardrt_strategy_name(p.strategy));
    check_equiv(&p, 1e-5, what);
  }
}

static void test_bf16_mixed_precision(void **state) {
  for (int fl = 0; fl < 2; fl++)
    for (size_t i = 0; i < sizeof all_strategies / sizeof all_strategies[0]; i++) {
      shardrt_plan p = base_plan((shardrt_flavor)fl, all_strategies[i]);
      p.mixed_precision = SHARDRT_MP_BF16;
      p.load_dtype = SHARDRT_BF16;
      char what[96];
      snprintf(what, sizeof what, "%s %s bf16 mixed", fl ? "deepspeed" : "fsdp", shardrt_strategy_name(p.strategy));
      /* bf16 compute: different reduction orders round differently. */
      check_equiv(&p, 2e-2, what);
    }
}

static void test_fsdp_bf16_no_mixed_precision(void **state) {
  for (size_t i = 0; i < sizeof all_strategies / sizeof all_strategies[0]; i++) {
    shardrt_plan p = base_plan(SHARDRT_FLAVOR_FSDP, all_strategies[i]);
    p.load_dtype = SHARDRT_BF16; /* flat params, optimizer and compute all bf16 */
    char what[96];
    snprintf(what, sizeof what, "fsdp %s bf16 (no mixed precision)", shardrt_strategy_name(p.strategy));
    check_equiv(&p, 3e-2, what);
  }
}

static void test_fp16_loss_scaling(void **state) {
  for (size_t i = 0; i < sizeof all_strategies / sizeof all_strategies[0]; i++) {
    shardrt_plan p = base_plan(SHARDRT_FLAVOR_DEEPSPEED, all_strategies[i]);
    p.mixed_precision = SHARDRT_MP_FP16;
    char what[96];
    snprintf(what, sizeof what, "deepspeed %s fp16", shardrt_strategy_name(p.strategy));
    check_equiv(&p, 1e-2, what);
  }
}

static void test_offload_cpu_and_nvme(void **state) {
  shardrt_plan p = base_plan(SHARDRT_FLAVOR_DEEPSPEED, SHARDRT_FULL_SHARD);
  p.offload_params = SHARDRT_OFFLOAD_CPU;
  p.offload_optimizer = SHARDRT_OFFLOAD_NVME;
  snprintf(p.offload_optimizer_nvme_path, sizeof p.offload_optimizer_nvme_path, "/tmp");
  check_equiv(&p, 1e-5, "deepspeed zero3 offload params cpu, optimizer nvme");
  shardrt_plan q = base_plan(SHARDRT_FLAVOR_FSDP, SHARDRT_SHARD_GRAD_OP);
  q.offload_params = q.offload_optimizer = SHARDRT_OFFLOAD_CPU;
  check_equiv(&q, 1e-5, "fsdp shard_grad_op offload");
}

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fp32_every_strategy),      cmocka_unit_test(test_accumulation_both_modes),
      cmocka_unit_test(test_clipping),                 cmocka_unit_test(test_bf16_mixed_precision),
      cmocka_unit_test(test_fsdp_bf16_no_mixed_precision), cmocka_unit_test(test_fp16_loss_scaling),
      cmocka_unit_test(test_offload_cpu_and_nvme),
  };
  SHARDRT_TEST_MPI_RUN("equivalence", tests);
}
