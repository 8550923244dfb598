/* SPDX-License-Identifier: Apache-2.0 */
/* A DeepSpeed JSON that names the optimizer and a WarmupDecayLR schedule
 * trains exactly like the same plan without those sections where the
 * program sets the same hyper-parameters and calls shardrt_set_lr with
 * DeepSpeed's schedule before every step (fp32: same weights within 1e-6):
 *  - explicit JSON values, while the program asks for other ones (the JSON
 *    wins, as in DeepSpeed);
 *  - "auto" JSON values, filled from the program's optimizer, lr and
 *    shardrt_set_train_steps (as accelerate fills them);
 *  - an optimizer section alone: its type and lr hold over the program's. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../mpi_test_main.h"

#include "mini_model.h"

#define STEPS 12

/* DeepSpeed's WarmupDecayLR (deepspeed/runtime/lr_schedules.py), written
 * out again here: update s runs at last_batch_iteration s-1, which starts
 * at -1 (warmup_min_lr) and advances once per applied update. */
typedef struct ref_sched {
  double min_lr, max_lr, warmup, total;
  bool log_warmup;
} ref_sched;

static double ref_lr(int64_t s, void *user) {
  const ref_sched *r = user;
  double it = (double)s - 1, w = fmax(2, r->warmup), gamma;
  if (it < 0) return r->min_lr;
  if (it < w) gamma = r->log_warmup ? log(it + 1) / log(w) : it / w;
  else gamma = fmax(0.0, (r->total - it) / fmax(1.0, r->total - w));
  return r->min_lr + (r->max_lr - r->min_lr) * gamma;
}

static const char *write_json(const char *text, char *path, size_t cap) {
  static char dir[128];
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "/tmp/shardrt_dssched_XXXXXX");
    assert_non_null(mkdtemp(dir));
  }
  snprintf(path, cap, "%s/ds.json", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

/* The plan the JSON gives on top of a base with several units. */
static shardrt_plan load(const char *json) {
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
  p.num_wrap_classes = 1;
  strcpy(p.wrap_classes[0], "Block");
  p.param_persistence_threshold = 0;
  char path[256];
  if (shardrt_config_load(write_json(json, path, sizeof path), &p) != SHARDRT_OK)
    fail_msg("load: %s", shardrt_last_error());
  return p;
}

static void compare(const char *what, const mini_run *a, const mini_run *b, const ref_sched *r) {
  for (int s = 0; s < STEPS; s++) {
    if (fabs(a->lr[s] - ref_lr(s, (void *)r)) > 1e-12 || fabs(b->lr[s] - a->lr[s]) > 1e-12)
      fail_msg("%s: world %d update %d: lr %.9g (config) vs %.9g (program), DeepSpeed %.9g", what, g_world, s,
               b->lr[s], a->lr[s], ref_lr(s, (void *)r));
    if (fabs(a->loss[s] - b->loss[s]) > 1e-6 * fabs(a->loss[s]))
      fail_msg("%s: step %d loss %.9g vs %.9g", what, s + 1, b->loss[s], a->loss[s]);
  }
  assert_int_equal(a->nweights, b->nweights);
  double maxref = 0, maxdiff = 0;
  for (int64_t i = 0; i < a->nweights; i++) {
    maxref = fmax(maxref, fabs(a->weights[i]));
    maxdiff = fmax(maxdiff, fabs((double)a->weights[i] - (double)b->weights[i]));
  }
  if (maxdiff > 1e-6 * maxref) fail_msg("%s: world %d weights differ by %.3g (max |w| %.3g)", what, g_world, maxdiff, maxref);
  assert_true(a->loss[STEPS - 1] < a->loss[0]); /* it trained */
}

/* Runs the config plan (cand_cfg) and the plan without sections, where the
 * program does the same by hand (ref_cfg + shardrt_set_lr each step). */
static void check(const char *what, const shardrt_plan *cand, const mini_cfg *cand_cfg, const mini_cfg *ref_cfg,
                  ref_sched *r) {
  shardrt_plan ref = *cand;
  shardrt_plan d;
  shardrt_plan_default(&d);
  ref.optimizer = d.optimizer;
  ref.scheduler = d.scheduler;
  mini_cfg rc = *ref_cfg;
  rc.lr_at = ref_lr;
  rc.lr_user = r;
  mini_run a, b;
  if (mini_train(&rc, &ref, NULL, &a)) fail_msg("%s: reference failed: %s", what, shardrt_last_error());
  if (mini_train(cand_cfg, cand, NULL, &b)) fail_msg("%s: config run failed: %s", what, shardrt_last_error());
  compare(what, &a, &b, r);
  mini_run_free(&a);
  mini_run_free(&b);
}

static void test_explicit_json_wins(void **state) {
  (void)state;
  for (int stage = 2; stage <= 3; stage++) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"zero_optimization\": {\"stage\": %d},"
             " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.02, \"betas\": [0.85, 0.98], \"eps\": 1e-7,"
             " \"weight_decay\": 0.05}},"
             " \"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"warmup_min_lr\": 0.001, \"warmup_max_lr\": 0.03,"
             " \"warmup_num_steps\": 4, \"warmup_type\": \"linear\", \"total_num_steps\": %d}}}",
             stage, STEPS);
    shardrt_plan p = load(json);
    assert_int_equal(p.strategy, stage == 2 ? SHARDRT_SHARD_GRAD_OP : SHARDRT_FULL_SHARD);
    /* The program asks for something else: the JSON's explicit values win. */
    mini_cfg cand;
    mini_cfg_default(&cand);
    cand.steps = STEPS;
    cand.opt.kind = SHARDRT_OPTIM_SGD;
    cand.opt.lr = 0.5, cand.opt.beta1 = 0.5, cand.opt.beta2 = 0.6, cand.opt.eps = 1e-3, cand.opt.weight_decay = 0.3;
    mini_cfg ref;
    mini_cfg_default(&ref);
    ref.steps = STEPS;
    ref.opt.lr = 0.02, ref.opt.beta1 = 0.85, ref.opt.beta2 = 0.98, ref.opt.eps = 1e-7, ref.opt.weight_decay = 0.05;
    ref_sched r = {.min_lr = 0.001, .max_lr = 0.03, .warmup = 4, .total = STEPS};
    check(stage == 2 ? "explicit, ZeRO-2" : "explicit, ZeRO-3", &p, &cand, &ref, &r);
  }
}

static void test_auto_json_takes_program_values(void **state) {
  (void)state;
  shardrt_plan p = load(
      "{\"zero_optimization\": {\"stage\": 3},"
      " \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": \"auto\", \"betas\": \"auto\", \"eps\": \"auto\","
      " \"weight_decay\": \"auto\"}},"
      " \"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"warmup_min_lr\": \"auto\", \"warmup_max_lr\": \"auto\","
      " \"warmup_num_steps\": \"auto\", \"total_num_steps\": \"auto\"}}}");
  mini_cfg cfg;
  mini_cfg_default(&cfg);
  cfg.steps = STEPS;
  cfg.opt.lr = 0.03, cfg.opt.beta1 = 0.8, cfg.opt.beta2 = 0.95, cfg.opt.eps = 1e-6, cfg.opt.weight_decay = 0.02;
  mini_cfg cand = cfg;
  cand.total_steps = STEPS;
  cand.warmup_steps = 5;
  /* warmup_min_lr "auto" is 0, warmup_max_lr the program's lr; log warmup
   * is DeepSpeed's default warmup_type. */
  ref_sched r = {.min_lr = 0, .max_lr = 0.03, .warmup = 5, .total = STEPS, .log_warmup = true};
  check("auto, ZeRO-3", &p, &cand, &cfg, &r);
}

/* An optimizer section without a scheduler: its explicit lr holds every step. */
static void test_explicit_sgd_without_schedule(void **state) {
  (void)state;
  shardrt_plan p = load("{\"zero_optimization\": {\"stage\": 1},"
                        " \"optimizer\": {\"type\": \"SGD\", \"params\": {\"lr\": 0.05, \"momentum\": 0.9,"
                        " \"weight_decay\": 0.001}}}");
  assert_int_equal(p.strategy, SHARDRT_ZERO1);
  mini_cfg cand;
  mini_cfg_default(&cand);
  cand.steps = STEPS;
  cand.opt.lr = 0.5; /* AdamW at 0.5 asked for; SGD at 0.05 runs */
  mini_cfg ref = cand;
  ref.opt.kind = SHARDRT_OPTIM_SGD;
  ref.opt.lr = 0.05, ref.opt.momentum = 0.9, ref.opt.weight_decay = 0.001;
  ref_sched constant = {.min_lr = 0.05, .max_lr = 0.05, .warmup = 2, .total = STEPS};
  check("explicit SGD, ZeRO-1", &p, &cand, &ref, &constant);
}

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_explicit_json_wins),
      cmocka_unit_test(test_auto_json_takes_program_values),
      cmocka_unit_test(test_explicit_sgd_without_schedule),
  };
  SHARDRT_TEST_MPI_RUN("ds_schedule", tests);
}
