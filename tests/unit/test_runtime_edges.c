/* SPDX-License-Identifier: Apache-2.0 */
/* Edge cases of the runtime found in review, each a regression test:
 * one unit over several micro-batches, destroy between backward and step,
 * prefetched or kept gathers around updates and parameter writes, ranks
 * registering different parameter counts, ignored modules next to
 * parameterless wrapped modules, children registered before their parent,
 * and a finalize retried after a failure. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../mpi_test_main.h"
#include "shardrt.h"

static shardrt_ctx *mk(shardrt_plan *p, int fail_after) {
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = "cpu";
  cp.plan = p;
  cp.fail_alloc_after = fail_after;
  shardrt_ctx *ctx = NULL;
  assert_int_equal(shardrt_ctx_create(&cp, &ctx), SHARDRT_OK);
  return ctx;
}

static void sgd(shardrt_ctx *ctx) {
  shardrt_optim_params o;
  shardrt_optim_params_default(&o);
  o.kind = SHARDRT_OPTIM_SGD;
  o.lr = 1.0;
  o.weight_decay = 0;
  assert_int_equal(shardrt_set_optimizer(ctx, &o), SHARDRT_OK);
}

/* Adds `g` to every gradient element of the units [0, n) in one pass. */
static void pass(shardrt_ctx *ctx, int nunits, float g) {
  for (int u = 0; u < nunits; u++) assert_int_equal(shardrt_begin_forward(ctx, u), SHARDRT_OK);
  for (int u = nunits - 1; u >= 0; u--) assert_int_equal(shardrt_end_forward(ctx, u), SHARDRT_OK);
  for (int u = nunits - 1; u >= 0; u--) {
    assert_int_equal(shardrt_begin_backward(ctx, u), SHARDRT_OK);
    for (int p = 0; p < shardrt_num_params(ctx); p++) {
      shardrt_param_info pi;
      shardrt_param_info_get(ctx, p, &pi);
      if (pi.unit != u) continue;
      shardrt_view v;
      assert_int_equal(shardrt_grad_view(ctx, p, &v), SHARDRT_OK);
      for (int64_t i = 0; i < v.numel; i++) ((float *)v.data)[i] += g;
    }
    assert_int_equal(shardrt_end_backward(ctx, u), SHARDRT_OK);
  }
}

static void test_one_unit_many_micro_batches(void **state) {
  for (int mode = 0; mode < 2; mode++) {
    shardrt_plan p;
    shardrt_plan_default(&p); /* FULL_SHARD, NO_WRAP: a single root unit */
    p.accum_mode = mode ? SHARDRT_ACCUM_NO_SYNC : SHARDRT_ACCUM_REDUCE_EACH;
    shardrt_ctx *ctx = mk(&p, -1);
    sgd(ctx);
    int m, w;
    int64_t shape[1] = {3};
    shardrt_add_module(ctx, "lin", "Linear", &m);
    shardrt_add_param(ctx, m, "w", 1, shape, &w);
    assert_int_equal(shardrt_finalize(ctx), SHARDRT_OK);
    for (int mb = 0; mb < 2; mb++) {
      assert_int_equal(shardrt_begin_micro_batch(ctx, mb, 2), SHARDRT_OK);
      pass(ctx, 1, 1.0f);
    }
    assert_int_equal(shardrt_step(ctx, NULL), SHARDRT_OK);
    float out[3];
    assert_int_equal(shardrt_param_get(ctx, w, out), SHARDRT_OK);
    /* 2 micro-batches x world ranks x gradient 1, lr 1 */
    for (int i = 0; i < 3; i++) assert_true(out[i] == -2.0f * g_world);
    shardrt_mem_stats ms;
    shardrt_mem_stats_get(ctx, &ms);
    assert_int_equal(ms.gathered, 0); /* nothing left behind */
    shardrt_ctx_destroy(ctx);
  }
}

static void test_destroy_between_backward_and_step(void **state) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.strategy = SHARDRT_NO_SHARD; /* fp32 no_sync: the accumulation is the grad store */
  shardrt_ctx *ctx = mk(&p, -1);
  int m, w;
  int64_t shape[1] = {8};
  shardrt_add_module(ctx, "lin", "Linear", &m);
  shardrt_add_param(ctx, m, "w", 1, shape, &w);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_OK);
  pass(ctx, 1, 1.0f);
  shardrt_ctx_destroy(ctx); /* must free every buffer exactly once (ASan checks) */
}

/* Two FULL_SHARD units with forward prefetch; after every update and every
 * parameter write the views must show the stored values. */
static void test_prefetched_copies_follow_updates(void **state) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
  p.num_wrap_classes = 1;
  strcpy(p.wrap_classes[0], "Block");
  p.forward_prefetch = true;
  shardrt_ctx *ctx = mk(&p, -1);
  sgd(ctx);
  int m0, m1, w0, w1;
  int64_t shape[1] = {5};
  shardrt_add_module(ctx, "b0", "Block", &m0);
  shardrt_add_param(ctx, m0, "w", 1, shape, &w0);
  shardrt_add_module(ctx, "b1", "Block", &m1);
  shardrt_add_param(ctx, m1, "w", 1, shape, &w1);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_OK);
  pass(ctx, 2, 0.5f); /* records the order */
  assert_int_equal(shardrt_step(ctx, NULL), SHARDRT_OK);
  /* unit 0 alone: its forward prefetches unit 1, which then sees a step */
  assert_int_equal(shardrt_begin_forward(ctx, 0), SHARDRT_OK);
  assert_int_equal(shardrt_end_forward(ctx, 0), SHARDRT_OK);
  assert_int_equal(shardrt_begin_backward(ctx, 0), SHARDRT_OK);
  assert_int_equal(shardrt_end_backward(ctx, 0), SHARDRT_OK);
  assert_int_equal(shardrt_step(ctx, NULL), SHARDRT_OK);
  /* and a parameter write while a prefetch may be in flight */
  assert_int_equal(shardrt_begin_forward(ctx, 0), SHARDRT_OK);
  float nv[5] = {7, 7, 7, 7, 7};
  assert_int_equal(shardrt_param_set(ctx, w0, nv), SHARDRT_ERR_STATE); /* unit 0 is in use */
  assert_int_equal(shardrt_param_set(ctx, w1, nv), SHARDRT_OK);
  assert_int_equal(shardrt_end_forward(ctx, 0), SHARDRT_OK);
  float stored[5];
  assert_int_equal(shardrt_param_get(ctx, w1, stored), SHARDRT_OK);
  assert_int_equal(shardrt_begin_forward(ctx, 1), SHARDRT_OK);
  shardrt_view v;
  assert_int_equal(shardrt_param_view(ctx, w1, &v), SHARDRT_OK);
  for (int i = 0; i < 5; i++) assert_true(((float *)v.data)[i] == stored[i] && stored[i] == 7.0f);
  assert_int_equal(shardrt_end_forward(ctx, 1), SHARDRT_OK);
  shardrt_ctx_destroy(ctx);
}

static void test_different_param_counts_fail_everywhere(void **state) {
  if (g_world < 2) skip();
  shardrt_ctx *ctx = mk(NULL, -1);
  int m, w;
  int64_t shape[1] = {4};
  shardrt_add_module(ctx, "lin", "Linear", &m);
  shardrt_add_param(ctx, m, "w", 1, shape, &w);
  if (g_rank == 0) shardrt_add_param(ctx, m, "extra", 1, shape, &w);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_ERR_MISMATCH); /* on every rank, no hang */
  assert_non_null(strstr(shardrt_last_error(), "between 1 and 2"));
  shardrt_ctx_destroy(ctx);
}

static void test_wrap_edge_cases(void **state) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
  p.num_wrap_classes = 1;
  strcpy(p.wrap_classes[0], "Block");
  strcpy(p.ignored_modules, "ign");
  shardrt_ctx *ctx = mk(&p, -1);
  int ma, mc, mh, mi, mb, pc, ph, pi, pb;
  int64_t shape[1] = {40};
  shardrt_add_module(ctx, "a", "Block", &ma);           /* wrapped, no parameters */
  shardrt_add_module(ctx, "h.0.attn", "Attn", &mc);     /* child before its parent */
  shardrt_add_param(ctx, mc, "w", 1, shape, &pc);
  shardrt_add_module(ctx, "h.0", "Block", &mh);
  shardrt_add_param(ctx, mh, "w", 1, shape, &ph);
  shardrt_add_module(ctx, "ign", "Linear", &mi);
  shardrt_add_param(ctx, mi, "w", 1, shape, &pi);
  shardrt_add_module(ctx, "b", "Block", &mb);
  shardrt_add_param(ctx, mb, "w", 1, shape, &pb);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_OK);
  shardrt_param_info ic, ih, ii, ib;
  shardrt_param_info_get(ctx, pc, &ic);
  shardrt_param_info_get(ctx, ph, &ih);
  shardrt_param_info_get(ctx, pi, &ii);
  shardrt_param_info_get(ctx, pb, &ib);
  assert_int_equal(ic.unit, ih.unit); /* the child joined its parent's unit */
  assert_int_equal(shardrt_num_units(ctx), 3);
  shardrt_unit_info ui, ub;
  shardrt_unit_info_get(ctx, ii.unit, &ui);
  shardrt_unit_info_get(ctx, ib.unit, &ub);
  assert_string_equal(ui.name, "ignored");
  assert_false(ui.sharded_params); /* ignored: replicated */
  assert_string_equal(ub.name, "b");
  assert_true(ub.sharded_params);  /* a block: FULL_SHARD */
  shardrt_ctx_destroy(ctx);
}

static void test_finalize_retry_refused(void **state) {
  shardrt_ctx *ctx = mk(NULL, 1);
  int m, w;
  int64_t shape[1] = {64};
  shardrt_add_module(ctx, "lin", "Linear", &m);
  shardrt_add_param(ctx, m, "w", 1, shape, &w);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_ERR_OUT_OF_MEMORY);
  assert_int_equal(shardrt_finalize(ctx), SHARDRT_ERR_STATE);
  assert_non_null(strstr(shardrt_last_error(), "failed before"));
  shardrt_ctx_destroy(ctx);
}

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_unit_many_micro_batches),
      cmocka_unit_test(test_destroy_between_backward_and_step),
      cmocka_unit_test(test_prefetched_copies_follow_updates),
      cmocka_unit_test(test_different_param_counts_fail_everywhere),
      cmocka_unit_test(test_wrap_edge_cases),
      cmocka_unit_test(test_finalize_retry_refused),
  };
  SHARDRT_TEST_MPI_RUN("runtime_edges", tests);
}
