/* SPDX-License-Identifier: Apache-2.0 */
/* Accounting: model-state bytes per rank equal the ZeRO formula of the
 * precision plan (plus padding), and the bytes each collective kind moved in
 * one step equal the strategy's theoretical volume. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../mpi_test_main.h"

#include "mini_model.h"


static shardrt_plan plan_of(shardrt_flavor fl, shardrt_strategy s, shardrt_mixed_precision mp) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.flavor = fl;
  p.strategy = s;
  p.mixed_precision = mp;
  p.wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
  p.num_wrap_classes = 1;
  strcpy(p.wrap_classes[0], "Block");
  p.param_persistence_threshold = 0;
  if (s == SHARDRT_HYBRID_SHARD || s == SHARDRT_HYBRID_SHARD_ZERO2) p.shard_group_size = g_world >= 2 ? g_world / 2 : 1;
  return p;
}

/* Mixed-precision Adam under DeepSpeed semantics: 2 (16-bit params) + 2
 * (16-bit grads) + 12 (fp32 master + two moments) bytes per element, with
 * stage 1 sharding the 12, stage 2 also the grads, stage 3 everything. */
static void test_zero_memory_formula(void **state) {
  const int stage_of[] = {0, 1, 2, 3};
  const shardrt_strategy strat[] = {SHARDRT_NO_SHARD, SHARDRT_ZERO1, SHARDRT_SHARD_GRAD_OP, SHARDRT_FULL_SHARD};
  for (int i = 0; i < 4; i++) {
    shardrt_plan p = plan_of(SHARDRT_FLAVOR_DEEPSPEED, strat[i], SHARDRT_MP_BF16);
    mini_cfg c;
    mini_cfg_default(&c);
    c.steps = 1;
    mini_run r;
    assert_int_equal(mini_train(&c, &p, NULL, &r), SHARDRT_OK);
    int st = stage_of[i];
    uint64_t P = (uint64_t)r.sum_padded, S = (uint64_t)r.sum_shard;
    uint64_t want = (st == 3 ? 2 * S : 2 * P) + (st >= 2 ? 2 * S : 2 * P) + (st >= 1 ? 12 * S : 12 * P);
    if (r.mem.model_state != want)
      fail_msg("stage %d world %d: model state %llu bytes, formula says %llu (P=%llu S=%llu)", st, g_world,
               (unsigned long long)r.mem.model_state, (unsigned long long)want, (unsigned long long)P,
               (unsigned long long)S);
    assert_int_equal(r.mem.master, (st >= 1 ? 4 * S : 4 * P));
    mini_run_free(&r);
  }
}

/* FSDP keeps flat params in the load dtype: without mixed precision a bf16
 * load has bf16 params, grads and optimizer state and no master; with bf16
 * mixed precision flat params are upcast to fp32 (no separate master). */
static void test_fsdp_precision_rows(void **state) {
  mini_cfg c;
  mini_cfg_default(&c);
  c.steps = 1;
  shardrt_plan p = plan_of(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD, SHARDRT_MP_NO);
  p.load_dtype = SHARDRT_BF16;
  mini_run r;
  assert_int_equal(mini_train(&c, &p, NULL, &r), SHARDRT_OK);
  uint64_t S = (uint64_t)r.sum_shard;
  assert_int_equal(r.mem.params, 2 * S);
  assert_int_equal(r.mem.grads, 2 * S);
  assert_int_equal(r.mem.master, 0);
  assert_int_equal(r.mem.optimizer, 4 * S);
  mini_run_free(&r);
  p.mixed_precision = SHARDRT_MP_BF16;
  assert_int_equal(mini_train(&c, &p, NULL, &r), SHARDRT_OK);
  assert_int_equal(r.mem.params, 4 * S);
  assert_int_equal(r.mem.grads, 4 * S);
  assert_int_equal(r.mem.master, 0);
  assert_int_equal(r.mem.optimizer, 8 * S);
  mini_run_free(&r);
}

/* Bytes per step (fp32, one micro-batch) as nccl-tests count them. */
static void test_comm_volume(void **state) {
  if (g_world == 1) skip(); /* a single rank runs no collectives */
  mini_cfg c;
  mini_cfg_default(&c);
  c.steps = 2;
  for (int s = 0; s < 6; s++) {
    shardrt_strategy st = (shardrt_strategy)s;
    shardrt_plan p = plan_of(SHARDRT_FLAVOR_FSDP, st, SHARDRT_MP_NO);
    mini_run r;
    assert_int_equal(mini_train(&c, &p, NULL, &r), SHARDRT_OK);
    uint64_t P = (uint64_t)r.sum_padded * 4, S = (uint64_t)r.sum_shard * 4;
    uint64_t ag = 0, rs = 0, ar = 0;
    int groups = (st == SHARDRT_HYBRID_SHARD || st == SHARDRT_HYBRID_SHARD_ZERO2) ? 2 : 1;
    int gsize = g_world / groups;
    switch (st) {
      case SHARDRT_NO_SHARD: ar = P; break;
      case SHARDRT_ZERO1: ar = P; ag = P; break;
      case SHARDRT_SHARD_GRAD_OP: rs = P; ag = P; break;
      case SHARDRT_FULL_SHARD: ag = 2 * P; rs = P; break;
      case SHARDRT_HYBRID_SHARD: ag = gsize > 1 ? 2 * P : 0; rs = gsize > 1 ? P : 0; ar = S; break;
      default: ag = gsize > 1 ? P : 0; rs = gsize > 1 ? P : 0; ar = S; break;
    }
    if (r.comm.bytes[SHARDRT_COLL_ALL_GATHER] != ag || r.comm.bytes[SHARDRT_COLL_REDUCE_SCATTER] != rs ||
        r.comm.bytes[SHARDRT_COLL_ALL_REDUCE] != ar)
      fail_msg("%s world %d: all_gather %llu (want %llu), reduce_scatter %llu (want %llu), all_reduce %llu (want %llu)",
               shardrt_strategy_name(st), g_world, (unsigned long long)r.comm.bytes[0], (unsigned long long)ag,
               (unsigned long long)r.comm.bytes[1], (unsigned long long)rs, (unsigned long long)r.comm.bytes[2],
               (unsigned long long)ar);
    mini_run_free(&r);
  }
}

/* Under bf16 mixed precision gradients are reduced in bf16 by default (as
 * accelerate's MixedPrecision policy and DeepSpeed): half the
 * reduce-scatter bytes of an explicit fp32 reduction. */
static void test_reduce_dtype_bytes(void **state) {
  if (g_world == 1) skip();
  mini_cfg c;
  mini_cfg_default(&c);
  c.steps = 2;
  for (int explicit_fp32 = 0; explicit_fp32 < 2; explicit_fp32++) {
    shardrt_plan p = plan_of(SHARDRT_FLAVOR_FSDP, SHARDRT_SHARD_GRAD_OP, SHARDRT_MP_BF16);
    if (explicit_fp32) {
      p.reduce_dtype_set = true;
      p.reduce_dtype = SHARDRT_F32;
    }
    mini_run r;
    assert_int_equal(mini_train(&c, &p, NULL, &r), SHARDRT_OK);
    uint64_t want = (uint64_t)r.sum_padded * (explicit_fp32 ? 4 : 2);
    if (r.comm.bytes[SHARDRT_COLL_REDUCE_SCATTER] != want)
      fail_msg("bf16 mixed precision, %s reduction: reduce_scatter %llu bytes, want %llu",
               explicit_fp32 ? "fp32" : "default", (unsigned long long)r.comm.bytes[SHARDRT_COLL_REDUCE_SCATTER],
               (unsigned long long)want);
    mini_run_free(&r);
  }
}

/* DeepSpeed's stage3_max_reuse_distance: with 0 only the last unit of the
 * forward (used at once by the backward) stays gathered; a large distance
 * keeps more units gathered, so fewer bytes move. FSDP regathers all. */
static void test_reuse_distance(void **state) {
  if (g_world == 1) skip();
  mini_cfg c;
  mini_cfg_default(&c);
  c.steps = 2;
  shardrt_plan f = plan_of(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD, SHARDRT_MP_NO);
  shardrt_plan p = plan_of(SHARDRT_FLAVOR_DEEPSPEED, SHARDRT_FULL_SHARD, SHARDRT_MP_NO);
  mini_run fsdp, near, far;
  assert_int_equal(mini_train(&c, &f, NULL, &fsdp), SHARDRT_OK);
  p.max_reuse_distance = 0;
  assert_int_equal(mini_train(&c, &p, NULL, &near), SHARDRT_OK);
  p.max_reuse_distance = 1000000000;
  assert_int_equal(mini_train(&c, &p, NULL, &far), SHARDRT_OK);
  uint64_t P = (uint64_t)fsdp.sum_padded * 4;
  uint64_t ag_f = fsdp.comm.bytes[SHARDRT_COLL_ALL_GATHER], ag_n = near.comm.bytes[SHARDRT_COLL_ALL_GATHER],
           ag_a = far.comm.bytes[SHARDRT_COLL_ALL_GATHER];
  assert_int_equal(ag_f, 2 * P);
  assert_true(ag_n < ag_f);
  assert_true(ag_a < ag_n);
  assert_true(ag_a >= P);
  for (int s = 0; s < c.steps; s++) assert_true(near.loss[s] == far.loss[s]); /* same math */
  mini_run_free(&fsdp);
  mini_run_free(&near);
  mini_run_free(&far);
}

/* Model state per rank falls as 1/N under FULL_SHARD (plus padding). */
static void test_full_shard_scales(void **state) {
  mini_cfg c;
  mini_cfg_default(&c);
  c.steps = 1;
  c.hidden = 256;
  shardrt_plan p = plan_of(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD, SHARDRT_MP_NO);
  mini_run one, all;
  MPI_Comm self = MPI_COMM_SELF;
  assert_int_equal(mini_train(&c, &p, &self, &one), SHARDRT_OK);
  assert_int_equal(mini_train(&c, &p, NULL, &all), SHARDRT_OK);
  double ratio = (double)one.mem.model_state / (double)all.mem.model_state;
  if (ratio < g_world * 0.95 || ratio > g_world * 1.0001)
    fail_msg("world %d: model state %llu vs %llu on one rank (ratio %.3f)", g_world,
             (unsigned long long)all.mem.model_state, (unsigned long long)one.mem.model_state, ratio);
  mini_run_free(&one);
  mini_run_free(&all);
}

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_zero_memory_formula),
      cmocka_unit_test(test_fsdp_precision_rows),
      cmocka_unit_test(test_comm_volume),
      cmocka_unit_test(test_reduce_dtype_bytes),
      cmocka_unit_test(test_full_shard_scales),
      cmocka_unit_test(test_reuse_distance),
  };
  SHARDRT_TEST_MPI_RUN("accounting", tests);
}
