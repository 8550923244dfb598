/* SPDX-License-Identifier: Apache-2.0 */
/* Table-driven checks of the DeepSpeed JSON "optimizer" and "scheduler"
 * sections: good files and the plan sections they give (values, which were
 * given explicitly, DeepSpeed's defaults), bad files and the pieces of the
 * error text (place, key, type, what is allowed). */
#include "tests/config/config_test_util.h"

/* Given bits: LR 1, BETAS 2, EPS 4, WEIGHT_DECAY 8, MOMENTUM 16,
 * WARMUP_MAX_LR 32, WARMUP_NUM_STEPS 64, TOTAL_NUM_STEPS 128. */
#define ZERO "\"zero_optimization\": {\"stage\": 2}"
#define OPT(params) "{" ZERO ", \"optimizer\": " params "}"
#define SCHED(params) "{" ZERO ", \"scheduler\": " params "}"

typedef struct good_case {
  const char *name;
  const char *json;
  const char *expect[12];
} good_case;

static const good_case good[] = {
    {"AdamW all explicit",
     OPT("{\"type\": \"AdamW\", \"params\": {\"lr\": 3e-4, \"betas\": [0.8, 0.95], \"eps\": 1e-6, \"weight_decay\": 0.1}}"),
     {"optim=AdamW", "optim_given=15", "lr=0.0003", "betas=0.8,0.95", "eps=1e-06", "wd=0.1", "sched=none", 0}},
    {"Adam runs as AdamW; auto is the program's",
     OPT("{\"type\": \"Adam\", \"params\": {\"lr\": \"auto\", \"betas\": \"auto\", \"eps\": \"auto\", "
         "\"weight_decay\": 0.01, \"torch_adam\": true}}"),
     {"optim=AdamW", "optim_given=8", "wd=0.01", 0}},
    {"type is case-insensitive, params optional", OPT("{\"type\": \"adamw\"}"), {"optim=AdamW", "optim_given=0", 0}},
    {"Adam in L2 mode without weight_decay decays by 0",
     OPT("{\"type\": \"Adam\", \"params\": {\"lr\": 1e-3, \"adam_w_mode\": false}}"),
     {"optim=AdamW", "optim_given=9", "wd=0", 0}},
    {"Adam in L2 mode with weight_decay 0",
     OPT("{\"type\": \"Adam\", \"params\": {\"adam_w_mode\": false, \"weight_decay\": 0}}"),
     {"optim=AdamW", "optim_given=8", "wd=0", 0}},
    {"AdamW ignores adam_w_mode (DeepSpeed)",
     OPT("{\"type\": \"AdamW\", \"params\": {\"adam_w_mode\": false, \"weight_decay\": 0.1, \"bias_correction\": true, "
         "\"amsgrad\": false}}"),
     {"optim=AdamW", "wd=0.1", "optim_given=8", 0}},
    {"SGD", OPT("{\"type\": \"SGD\", \"params\": {\"lr\": \"0.1\", \"momentum\": 0.9, \"weight_decay\": \"auto\", "
                "\"nesterov\": false, \"dampening\": 0}}"),
     {"optim=SGD", "optim_given=17", "lr=0.1", "momentum=0.9", 0}},
    {"empty sections are no sections", "{" ZERO ", \"optimizer\": {}, \"scheduler\": {}}",
     {"optim=program", "sched=none", 0}},
    {"WarmupLR with DeepSpeed's defaults", SCHED("{\"type\": \"WarmupLR\"}"),
     {"optim=program", "sched=WarmupLR", "min_lr=0", "warmup=1000", "wtype=log", "sched_given=64", 0}},
    {"WarmupLR without warmup_max_lr takes the JSON optimizer's lr",
     "{" ZERO ", \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 5e-4}}, "
     "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 20, \"warmup_type\": \"linear\"}}}",
     {"sched=WarmupLR", "max_lr=0.0005", "sched_given=96", "warmup=20", "wtype=linear", 0}},
    {"WarmupLR auto warmup_max_lr is the program's lr",
     "{" ZERO ", \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 5e-4}}, "
     "\"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_max_lr\": \"auto\", \"warmup_min_lr\": 1e-5}}}",
     {"sched=WarmupLR", "sched_given=64", "min_lr=1e-05", 0}},
    {"WarmupDecayLR without warmup_max_lr takes its 0.001 default",
     SCHED("{\"type\": \"WarmupDecayLR\", \"params\": {\"total_num_steps\": 100, \"warmup_num_steps\": 1e1, "
           "\"warmup_type\": \"linear\"}}"),
     {"sched=WarmupDecayLR", "max_lr=0.001", "sched_given=224", "total=100", "warmup=10", "wtype=linear", 0}},
    {"WarmupDecayLR all auto",
     SCHED("{\"type\": \"WarmupDecayLR\", \"params\": {\"warmup_min_lr\": \"auto\", \"warmup_max_lr\": \"auto\", "
           "\"warmup_num_steps\": \"auto\", \"total_num_steps\": \"auto\"}}"),
     {"sched=WarmupDecayLR", "sched_given=0", "min_lr=0", 0}},
    {"WarmupCosineLR", SCHED("{\"type\": \"WarmupCosineLR\", \"params\": {\"total_num_steps\": 50, "
                             "\"warmup_min_ratio\": 0.1, \"cos_min_ratio\": 0.01, \"warmup_num_steps\": 5}}"),
     {"sched=WarmupCosineLR", "sched_given=192", "total=50", "wmr=0.1", "cmr=0.01", "warmup=5", 0}},
    {"WarmupCosineLR defaults", SCHED("{\"type\": \"WarmupCosineLR\", \"params\": {\"total_num_steps\": \"auto\"}}"),
     {"sched=WarmupCosineLR", "sched_given=64", "cmr=0.0001", "wmr=0", "warmup=1000", 0}},
};

static void test_good(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    tu_setup();
    char path[512];
    tu_write("c.json", good[i].json, path, sizeof path);
    shardrt_plan p;
    shardrt_plan_default(&p);
    if (shardrt_config_load(path, &p) != SHARDRT_OK)
      fail_msg("%s: load failed: %s", good[i].name, shardrt_last_error());
    tu_expect(good[i].name, &p, good[i].expect);
    if (tu_warnings[0]) fail_msg("%s: unexpected warning:\n%s", good[i].name, tu_warnings);
    if (shardrt_plan_resolve(&p, 2) != SHARDRT_OK) fail_msg("%s: resolve failed: %s", good[i].name, shardrt_last_error());
  }
}

typedef struct bad_case {
  const char *name;
  const char *json;
  const char *frags[5];
} bad_case;

static const bad_case bad[] = {
    {"OneBitAdam", OPT("{\"type\": \"OneBitAdam\"}"),
     {"c.json:1:", "optimizer.type: OneBitAdam is not supported by libshardrt (allowed: AdamW, Adam, SGD)", 0}},
    {"Lamb", OPT("{\"type\": \"Lamb\", \"params\": {\"lr\": 1e-3}}"), {"Lamb is not supported", "allowed: AdamW", 0}},
    {"optimizer type typo", OPT("{\"type\": \"AdamX\"}"),
     {"optimizer.type: invalid value 'AdamX' (allowed: AdamW, Adam, SGD); did you mean 'AdamW'?", 0}},
    {"optimizer type auto", OPT("{\"type\": \"auto\"}"), {"optimizer.type: \"auto\" cannot be resolved", 0}},
    {"misspelt optimizer param", OPT("{\"type\": \"AdamW\", \"params\": {\"lrr\": 1e-3}}"),
     {"unknown key 'lrr' in optimizer.params; did you mean 'lr'?", 0}},
    {"unknown optimizer param lists what is allowed", OPT("{\"type\": \"AdamW\", \"params\": {\"foreach\": true}}"),
     {"unknown key 'foreach' in optimizer.params (allowed: lr, betas, eps, weight_decay, momentum", 0}},
    {"misspelt optimizer key", OPT("{\"type\": \"AdamW\", \"param\": {}}"),
     {"unknown key 'param' in optimizer; did you mean 'params'?", 0}},
    {"momentum is not AdamW's", OPT("{\"type\": \"AdamW\", \"params\": {\"momentum\": 0.9}}"),
     {"c.json:1:", "optimizer.params.momentum = 0.9: not a parameter of AdamW (allowed: lr, betas, eps", 0}},
    {"betas are not SGD's", OPT("{\"params\": {\"betas\": [0.9, 0.99]}, \"type\": \"SGD\"}"),
     {"optimizer.params.betas = 0.9,0.99: not a parameter of SGD (allowed: lr, momentum, weight_decay", 0}},
    {"Adam L2 decay", OPT("{\"type\": \"Adam\", \"params\": {\"adam_w_mode\": false, \"weight_decay\": 0.01}}"),
     {"optimizer.params.weight_decay = 0.01", "optimizer.params.adam_w_mode = false", "does not do",
      "allowed: weight_decay 0, or adam_w_mode true", 0}},
    {"Adam L2 decay left auto", OPT("{\"type\": \"Adam\", \"params\": {\"adam_w_mode\": false, \"weight_decay\": \"auto\"}}"),
     {"optimizer.params.weight_decay = auto", "allowed: weight_decay 0", 0}},
    {"three betas", OPT("{\"type\": \"AdamW\", \"params\": {\"betas\": [0.9, 0.99, 0.5]}}"),
     {"optimizer.params.betas: invalid value '0.9,0.99,0.5' (allowed: a list of two numbers", 0}},
    {"beta of 1", OPT("{\"type\": \"AdamW\", \"params\": {\"betas\": [0.9, 1.0]}}"),
     {"optimizer.params.betas: 1 is out of range (allowed: a number in [0, 1))", 0}},
    {"eps 0", OPT("{\"type\": \"AdamW\", \"params\": {\"eps\": 0}}"),
     {"optimizer.params.eps: 0 is out of range (allowed: a number > 0)", 0}},
    {"negative lr", OPT("{\"type\": \"AdamW\", \"params\": {\"lr\": -1e-3}}"),
     {"optimizer.params.lr: -0.001 is out of range (allowed: a number >= 0)", 0}},
    {"lr not a number", OPT("{\"type\": \"AdamW\", \"params\": {\"lr\": \"fast\"}}"),
     {"optimizer.params.lr: invalid value 'fast' (allowed: a number >= 0)", 0}},
    {"amsgrad", OPT("{\"type\": \"AdamW\", \"params\": {\"amsgrad\": true}}"),
     {"optimizer.params.amsgrad: 'true' is not supported (allowed: false)", 0}},
    {"nesterov", OPT("{\"type\": \"SGD\", \"params\": {\"nesterov\": true}}"),
     {"optimizer.params.nesterov: 'true' is not supported (allowed: false)", 0}},
    {"max_grad_norm", OPT("{\"type\": \"AdamW\", \"params\": {\"max_grad_norm\": 1.0}}"),
     {"optimizer.params.max_grad_norm: not an optimizer parameter", "gradient_clipping", 0}},
    {"optimizer without type", OPT("{\"params\": {\"lr\": 1e-3}}"),
     {"optimizer.params.lr = 1e-3: the optimizer section has no \"type\" (allowed: AdamW, Adam, SGD)", 0}},
    {"optimizer as a value", "{" ZERO ", \"optimizer\": \"AdamW\"}",
     {"optimizer: expected a mapping of keys, found a value", 0}},
    {"OneCycle", SCHED("{\"type\": \"OneCycle\", \"params\": {\"cycle_min_lr\": 0}}"),
     {"scheduler.type: OneCycle is not supported by libshardrt (allowed: WarmupLR, WarmupDecayLR, WarmupCosineLR)", 0}},
    {"LRRangeTest", SCHED("{\"type\": \"LRRangeTest\"}"), {"LRRangeTest is not supported", 0}},
    {"scheduler type typo", SCHED("{\"type\": \"WarmupDecay\"}"), {"did you mean 'WarmupDecayLR'?", 0}},
    {"total_num_steps is not WarmupLR's", SCHED("{\"type\": \"WarmupLR\", \"params\": {\"total_num_steps\": 10}}"),
     {"scheduler.params.total_num_steps = 10: not a parameter of WarmupLR (allowed: warmup_min_lr, warmup_max_lr,", 0}},
    {"warmup_max_lr is not WarmupCosineLR's",
     SCHED("{\"type\": \"WarmupCosineLR\", \"params\": {\"warmup_max_lr\": 1e-3, \"total_num_steps\": 10}}"),
     {"scheduler.params.warmup_max_lr = 1e-3: not a parameter of WarmupCosineLR (allowed: total_num_steps,", 0}},
    {"cos_min_ratio is not WarmupDecayLR's",
     SCHED("{\"type\": \"WarmupDecayLR\", \"params\": {\"cos_min_ratio\": 0.1}}"),
     {"not a parameter of WarmupDecayLR", 0}},
    {"zero warmup steps", SCHED("{\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 0}}"),
     {"scheduler.params.warmup_num_steps: 0 is out of range (allowed: an integer >= 1)", 0}},
    {"fractional total", SCHED("{\"type\": \"WarmupDecayLR\", \"params\": {\"total_num_steps\": 1.5}}"),
     {"scheduler.params.total_num_steps: invalid value '1.5' (allowed: an integer >= 1)", 0}},
    {"warmup_type", SCHED("{\"type\": \"WarmupLR\", \"params\": {\"warmup_type\": \"cosine\"}}"),
     {"scheduler.params.warmup_type: invalid value 'cosine' (allowed: log, linear)", 0}},
    {"misspelt scheduler param", SCHED("{\"type\": \"WarmupLR\", \"params\": {\"warmup_num_step\": 10}}"),
     {"unknown key 'warmup_num_step' in scheduler.params; did you mean 'warmup_num_steps'?", 0}},
    {"auto ratio", SCHED("{\"type\": \"WarmupCosineLR\", \"params\": {\"cos_min_ratio\": \"auto\"}}"),
     {"scheduler.params.cos_min_ratio: \"auto\" cannot be resolved", 0}},
    {"scheduler without type", SCHED("{\"params\": {\"warmup_num_steps\": 10}}"),
     {"the scheduler section has no \"type\" (allowed: WarmupLR, WarmupDecayLR, WarmupCosineLR)", 0}},
};

static void test_bad(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tu_setup();
    char path[512];
    tu_write("c.json", bad[i].json, path, sizeof path);
    shardrt_plan p, before;
    shardrt_plan_default(&p);
    before = p;
    shardrt_status rc = shardrt_config_load(path, &p);
    if (rc == SHARDRT_OK) fail_msg("%s: loaded but should fail", bad[i].name);
    if (rc != SHARDRT_ERR_CONFIG) fail_msg("%s: status %d (%s)", bad[i].name, rc, shardrt_last_error());
    tu_expect_error(bad[i].name, bad[i].frags);
    if (memcmp(&p, &before, sizeof p) != 0) fail_msg("%s: failed load changed the plan", bad[i].name);
  }
}

/* The FSDP flavour has no such sections: a JSON read under FSDP changes
 * nothing and says so. */
static void test_fsdp_ignores_sections(void **state) {
  (void)state;
  tu_setup();
  char path[512], jpath[512];
  tu_write("ds.json", OPT("{\"type\": \"SGD\", \"params\": {\"lr\": 0.5}}"), jpath, sizeof jpath);
  tu_write("c.yaml", "distributed_type: FSDP\ndeepspeed_config:\n  deepspeed_config_file: ds.json\n", path, sizeof path);
  shardrt_plan p;
  shardrt_plan_default(&p);
  assert_int_equal(shardrt_config_load(path, &p), SHARDRT_OK);
  static const char *const expect[] = {"dist=FSDP", "optim=program", "sched=none", 0};
  tu_expect("fsdp", &p, expect);
  /* accelerate never reads deepspeed_config_file under FSDP: neither do we. */
  if (strstr(tu_warnings, "optimizer"))
    fail_msg("the JSON was read under FSDP; got:\n%s", tu_warnings);
}

/* The DeepSpeed plugin with hf_ds_config reads the same sections, and a bad
 * one leaves the caller's plan alone. */
static void test_plugin_reads_sections(void **state) {
  (void)state;
  tu_setup();
  shardrt_deepspeed_plugin d;
  shardrt_deepspeed_plugin_default(&d);
  tu_write("ok.json",
           "{" ZERO ", \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 2e-3}},"
           " \"scheduler\": {\"type\": \"WarmupDecayLR\", \"params\": {\"total_num_steps\": 40}}}",
           d.hf_ds_config, sizeof d.hf_ds_config);
  shardrt_plan p;
  shardrt_plan_default(&p);
  assert_int_equal(shardrt_plan_from_deepspeed_plugin(&d, &p), SHARDRT_OK);
  static const char *const expect[] = {"dist=DEEPSPEED", "optim=AdamW", "lr=0.002", "optim_given=1",
                                       "sched=WarmupDecayLR", "total=40", "max_lr=0.001", 0};
  tu_expect("plugin", &p, expect);

  tu_write("bad.json", OPT("{\"type\": \"AdamW\", \"params\": {\"momentum\": 0.5}}"), d.hf_ds_config,
           sizeof d.hf_ds_config);
  shardrt_plan q, before;
  shardrt_plan_default(&q);
  before = q;
  assert_int_equal(shardrt_plan_from_deepspeed_plugin(&d, &q), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "not a parameter of AdamW"));
  assert_memory_equal(&q, &before, sizeof q);
}

/* A plan built in code gets the same range checks at resolve. */
static void test_resolve_checks_sections(void **state) {
  (void)state;
  shardrt_plan p;
  shardrt_plan_default(&p);
  p.scheduler.type = SHARDRT_SCHEDULE_WARMUP_DECAY_LR;
  p.scheduler.given = SHARDRT_GIVEN_TOTAL_NUM_STEPS | SHARDRT_GIVEN_WARMUP_NUM_STEPS;
  p.scheduler.total_num_steps = 0;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "WarmupDecayLR parameters out of range"));
  shardrt_plan_default(&p);
  p.optimizer.type = (shardrt_optimizer_type)7;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "optimizer.type 7 is not an optimizer"));
  shardrt_plan_default(&p);
  p.optimizer.type = SHARDRT_OPTIMIZER_ADAMW;
  p.optimizer.given = SHARDRT_GIVEN_BETAS;
  p.optimizer.beta2 = 1.5;
  assert_int_equal(shardrt_plan_resolve(&p, 1), SHARDRT_ERR_CONFIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good),
      cmocka_unit_test(test_bad),
      cmocka_unit_test(test_fsdp_ignores_sections),
      cmocka_unit_test(test_plugin_reads_sections),
      cmocka_unit_test(test_resolve_checks_sections),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
