/* SPDX-License-Identifier: Apache-2.0 */
/* shardrt_plan_from_args: flag precedence over files and the launch
 * environment, argv consumption, DeepSpeed JSON "auto" filling; the plugin
 * API; program hints. */
#include "tests/config/config_test_util.h"

#define FSDP_FILE "distributed_type: FSDP\nnum_processes: 2\nfsdp_config:\n  fsdp_sharding_strategy: FULL_SHARD\n"

static int run_args(char **argv, int argc, shardrt_plan *p) {
  int n = argc;
  shardrt_status rc = shardrt_plan_from_args(&n, argv, p);
  return rc == SHARDRT_OK ? n : -(int)rc;
}

static void test_consumes_known_flags(void **state) {
  (void)state;
  tu_setup();
  char path[512];
  tu_write("c.yaml", FSDP_FILE, path, sizeof path);
  char *argv[] = {"prog", "--config_file", path, "--steps", "3", "--mixed_precision=bf16", "--fsdp_offload_params",
                  "--lr", "0.1", "--fsdp_use_orig_params", "false", "data.bin", "--param_dtype", "bf16", NULL};
  shardrt_plan p;
  int left = run_args(argv, 14, &p);
  assert_int_equal(left, 6);
  const char *want[] = {"prog", "--steps", "3", "--lr", "0.1", "data.bin"};
  for (int i = 0; i < 6; i++) assert_string_equal(argv[i], want[i]);
  assert_null(argv[6]);
  const char *expect[] = {"dist=FSDP", "strategy=FULL_SHARD", "mp=bf16", "offload_params=cpu", "orig=0",
                          "load_dtype=bf16", 0};
  tu_expect("consume", &p, expect);
}

static void test_flags_beat_file(void **state) {
  (void)state;
  tu_setup();
  char path[512];
  tu_write("c.yaml", FSDP_FILE, path, sizeof path);
  char *argv[] = {"prog", "--fsdp_sharding_strategy", "SHARD_GRAD_OP", "--config_file", path, "--num_processes=4",
                  "--gradient_accumulation_steps", "8", "--gradient_clipping", "0.5", "--accum_mode", "no_sync",
                  "--reduce_dtype", "bf16", "--fsdp_transformer_layer_cls_to_wrap", "Block,MLP", NULL};
  shardrt_plan p;
  assert_int_equal(run_args(argv, 16, &p), 1);
  const char *expect[] = {"strategy=SHARD_GRAD_OP", "np=4", "accum=8", "clip=0.5", "accum_mode=no_sync",
                          "reduce_dtype=bf16", "classes=Block|MLP", "wrap=TRANSFORMER_BASED_WRAP", 0};
  tu_expect("flags", &p, expect);
}

static void test_switches(void **state) {
  (void)state;
  tu_setup();
  char *a1[] = {"prog", "--use_deepspeed", "--zero_stage", "3", "--offload_optimizer_device", "cpu", NULL};
  shardrt_plan p;
  assert_int_equal(run_args(a1, 6, &p), 1);
  const char *e1[] = {"dist=DEEPSPEED", "strategy=FULL_SHARD", "offload_optimizer=cpu", 0};
  tu_expect("deepspeed switch", &p, e1);
  char *a2[] = {"prog", "--multi_gpu", "--cpu", "--num_processes", "3", NULL};
  assert_int_equal(run_args(a2, 5, &p), 1);
  const char *e2[] = {"dist=MULTI_CPU", "use_cpu=1", "np=3", "strategy=NO_SHARD", 0};
  tu_expect("cpu switch", &p, e2);
  char *a3[] = {"prog", "--use_fsdp", "--fsdp_version", "2", "--fsdp_reshard_after_forward", "false", NULL};
  assert_int_equal(run_args(a3, 6, &p), 1);
  const char *e3[] = {"dist=FSDP", "strategy=SHARD_GRAD_OP", "version=2", 0};
  tu_expect("fsdp2 flags", &p, e3);
}

static void test_no_config_defaults(void **state) {
  (void)state;
  tu_setup();
  char *argv[] = {"prog", "--steps", "2", NULL};
  shardrt_plan p, d;
  assert_int_equal(run_args(argv, 3, &p), 3);
  shardrt_plan_default(&d);
  d.strategy = SHARDRT_NO_SHARD; /* distributed_type NO replicates */
  assert_int_equal(p.distributed_type, SHARDRT_DIST_NO);
  assert_int_equal(p.strategy, d.strategy);
  assert_int_equal(p.num_processes, -1);
  int argc0 = 1;
  char *only[] = {"prog", NULL};
  assert_int_equal(shardrt_plan_from_args(&argc0, only, &p), SHARDRT_OK);
  assert_int_equal(argc0, 1);
}

static void test_double_dash_stops(void **state) {
  (void)state;
  tu_setup();
  char *argv[] = {"prog", "--zero_stage", "1", "--use_deepspeed", "--", "--zero_stage", "3", NULL};
  shardrt_plan p;
  assert_int_equal(run_args(argv, 7, &p), 4);
  assert_string_equal(argv[1], "--");
  assert_string_equal(argv[2], "--zero_stage");
  assert_int_equal(p.strategy, SHARDRT_ZERO1);
}

static void test_flag_errors(void **state) {
  (void)state;
  tu_setup();
  shardrt_plan p;
  char *a1[] = {"prog", "--fsdp_sharding_stratgy", "FULL_SHARD", NULL};
  assert_int_equal(run_args(a1, 3, &p), -SHARDRT_ERR_CONFIG);
  const char *f1[] = {"command line: unknown option --fsdp_sharding_stratgy", "did you mean --fsdp_sharding_strategy?", 0};
  tu_expect_error("typo", f1);
  assert_string_equal(a1[1], "--fsdp_sharding_stratgy"); /* argv untouched on error */
  char *a2[] = {"prog", "--zero_stage", NULL};
  assert_int_equal(run_args(a2, 2, &p), -SHARDRT_ERR_CONFIG);
  const char *f2[] = {"--zero_stage needs a value", 0};
  tu_expect_error("missing value", f2);
  char *a3[] = {"prog", "--use_fsdp", "--fsdp_sharding_strategy", "FULLSHARD", NULL};
  assert_int_equal(run_args(a3, 4, &p), -SHARDRT_ERR_CONFIG);
  const char *f3[] = {"command line: --fsdp_sharding_strategy: invalid value 'FULLSHARD'", "did you mean 'FULL_SHARD'?", 0};
  tu_expect_error("bad value", f3);
  char *a4[] = {"prog", "--use_fsdp=yes", NULL};
  assert_int_equal(run_args(a4, 2, &p), -SHARDRT_ERR_CONFIG);
  const char *f4[] = {"--use_fsdp takes no value", 0};
  tu_expect_error("switch value", f4);
  char *a5[] = {"prog", "--config_file", "/nonexistent.yaml", NULL};
  assert_int_equal(run_args(a5, 3, &p), -SHARDRT_ERR_IO);
  /* The plan is left at defaults after an error. */
  shardrt_plan d;
  shardrt_plan_default(&d);
  assert_memory_equal(&p, &d, sizeof p);
  int neg = -1;
  assert_int_equal(shardrt_plan_from_args(&neg, a1, &p), SHARDRT_ERR_INVALID_ARGUMENT);
}

static void test_environment(void **state) {
  (void)state;
  tu_setup();
  char path[512];
  tu_write("c.yaml", FSDP_FILE, path, sizeof path);
  char enc[1024] = "";
  assert_int_equal(shardrt__overrides_append(enc, sizeof enc, "fsdp_sharding_strategy", "NO_SHARD"), SHARDRT_OK);
  assert_int_equal(shardrt__overrides_append(enc, sizeof enc, "mixed_precision", "fp16"), SHARDRT_OK);
  assert_int_equal(shardrt__overrides_append(enc, sizeof enc, "fsdp_ignored_modules", "a b%c"), SHARDRT_OK);
  assert_string_equal(enc, "--fsdp_sharding_strategy=NO_SHARD --mixed_precision=fp16 --fsdp_ignored_modules=a%20b%25c");
  setenv("SHARDRT_CONFIG_FILE", path, 1);
  setenv("SHARDRT_OVERRIDES", enc, 1);
  char *argv[] = {"prog", "--mixed_precision", "bf16", NULL};
  shardrt_plan p;
  assert_int_equal(run_args(argv, 3, &p), 1);
  /* file FULL_SHARD < env NO_SHARD; env fp16 < argv bf16 */
  const char *expect[] = {"dist=FSDP", "strategy=NO_SHARD", "mp=bf16", "ignored=a b%c", "np=2", 0};
  tu_expect("env", &p, expect);
  setenv("SHARDRT_OVERRIDES", "--zero_stagee=3", 1);
  char *a2[] = {"prog", NULL};
  assert_int_equal(run_args(a2, 1, &p), -SHARDRT_ERR_CONFIG);
  const char *f[] = {"SHARDRT_OVERRIDES: unknown option --zero_stagee; did you mean --zero_stage?", 0};
  tu_expect_error("env typo", f);
  setenv("SHARDRT_OVERRIDES", "--mixed_precision=%zz", 1);
  assert_int_equal(run_args(a2, 1, &p), -SHARDRT_ERR_CONFIG);
  unsetenv("SHARDRT_CONFIG_FILE");
  unsetenv("SHARDRT_OVERRIDES");
}

#define DS_YAML "distributed_type: DEEPSPEED\nnum_processes: 2\ndeepspeed_config:\n  deepspeed_config_file: ds.json\n"
#define DS_JSON                                                                                                 \
  "{\"zero_optimization\": {\"stage\": \"auto\", \"offload_optimizer\": {\"device\": \"auto\"}},\n"            \
  " \"bf16\": {\"enabled\": \"auto\"}, \"gradient_accumulation_steps\": 4, \"gradient_clipping\": \"auto\"}"

static void test_flags_fill_json_auto(void **state) {
  (void)state;
  tu_setup();
  char path[512], jpath[512];
  tu_write("ds.json", DS_JSON, jpath, sizeof jpath);
  tu_write("c.yaml", DS_YAML, path, sizeof path);
  char *a1[] = {"prog", "--config_file", path, "--zero_stage", "3", "--mixed_precision", "bf16",
                "--offload_optimizer_device", "cpu", "--gradient_clipping", "2", "--gradient_accumulation_steps", "4", NULL};
  shardrt_plan p;
  assert_int_equal(run_args(a1, 13, &p), 1);
  const char *e1[] = {"strategy=FULL_SHARD", "mp=bf16", "offload_optimizer=cpu", "clip=2", "accum=4", 0};
  tu_expect("fill auto", &p, e1);
  /* Nothing fills them: the documented fallbacks. */
  char *a2[] = {"prog", "--config_file", path, NULL};
  assert_int_equal(run_args(a2, 3, &p), 1);
  const char *e2[] = {"strategy=SHARD_GRAD_OP", "mp=no", "offload_optimizer=none", "clip=1", 0};
  tu_expect("auto fallbacks", &p, e2);
  /* An explicit JSON value cannot be contradicted by a flag. */
  char *a3[] = {"prog", "--config_file", path, "--gradient_accumulation_steps", "2", NULL};
  assert_int_equal(run_args(a3, 5, &p), -SHARDRT_ERR_CONFIG);
  const char *f3[] = {"command line: --gradient_accumulation_steps 2 contradicts the DeepSpeed JSON",
                      "ds.json:2:62: gradient_accumulation_steps = 4", 0};
  tu_expect_error("contradiction", f3);
  /* --deepspeed_config_file given as a flag, after the flags it governs. */
  char *a4[] = {"prog", "--use_deepspeed", "--zero_stage", "1", "--deepspeed_config_file", jpath, NULL};
  assert_int_equal(run_args(a4, 6, &p), 1);
  const char *e4[] = {"dist=DEEPSPEED", "strategy=ZERO1", "accum=4", 0};
  tu_expect("json flag", &p, e4);
}

static void test_json_precision_conflict(void **state) {
  (void)state;
  tu_setup();
  char path[512], jpath[512];
  tu_write("ds.json", "{\"zero_optimization\": {\"stage\": 2}, \"fp16\": {\"enabled\": true}}", jpath, sizeof jpath);
  tu_write("c.yaml", DS_YAML, path, sizeof path);
  char *argv[] = {"prog", "--config_file", path, "--mixed_precision", "bf16", NULL};
  shardrt_plan p;
  assert_int_equal(run_args(argv, 5, &p), -SHARDRT_ERR_CONFIG);
  const char *f[] = {"ds.json:1:57: fp16.enabled = true contradicts command line: --mixed_precision = bf16", 0};
  tu_expect_error("precision", f);
}

static void test_plugins(void **state) {
  (void)state;
  tu_setup();
  shardrt_plan p;
  shardrt_plan_default(&p);
  shardrt_fsdp_plugin fp;
  shardrt_fsdp_plugin_default(&fp);
  fp.sharding_strategy = SHARDRT_HYBRID_SHARD;
  fp.reshard_after_forward = 0;
  fp.cpu_offload = true;
  fp.cpu_ram_efficient_loading = true;
  fp.auto_wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
  snprintf(fp.transformer_cls_names_to_wrap, sizeof fp.transformer_cls_names_to_wrap, "Block");
  p.mixed_precision = SHARDRT_MP_BF16;
  assert_int_equal(shardrt_plan_from_fsdp_plugin(&fp, &p), SHARDRT_OK);
  const char *e1[] = {"dist=FSDP", "strategy=HYBRID_SHARD_ZERO2", "offload_params=cpu", "sync=1", "mp=bf16",
                      "classes=Block", "sdt=FULL_STATE_DICT", 0};
  tu_expect("fsdp plugin", &p, e1);
  assert_non_null(strstr(tu_warnings, "turning sync_module_states on"));
  fp.sharding_strategy = SHARDRT_ZERO1;
  assert_int_equal(shardrt_plan_from_fsdp_plugin(&fp, &p), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "ZERO1 has no FSDP twin"));
  shardrt_fsdp_plugin_default(&fp);
  fp.fsdp_version = 2;
  fp.forward_prefetch = true;
  assert_int_equal(shardrt_plan_from_fsdp_plugin(&fp, &p), SHARDRT_ERR_CONFIG);

  shardrt_deepspeed_plugin dp;
  shardrt_deepspeed_plugin_default(&dp);
  shardrt_plan_default(&p);
  dp.zero_stage = 3;
  dp.zero_hpz_partition_size = 4;
  dp.offload_param_device = SHARDRT_OFFLOAD_NVME;
  snprintf(dp.offload_param_nvme_path, sizeof dp.offload_param_nvme_path, "/tmp/nv");
  dp.reduce_bucket_size = SHARDRT_AUTO;
  assert_int_equal(shardrt_plan_from_deepspeed_plugin(&dp, &p), SHARDRT_OK);
  const char *e2[] = {"dist=DEEPSPEED", "flavor=deepspeed", "strategy=HYBRID_SHARD", "group=4", "offload_params=nvme",
                      "param_nvme=/tmp/nv", "unresolved=1", 0};
  tu_expect("ds plugin", &p, e2);

  /* With a JSON: plugin fields fill "auto", must match explicit values. */
  char jpath[512];
  tu_write("ds.json", DS_JSON, jpath, sizeof jpath);
  shardrt_deepspeed_plugin_default(&dp);
  snprintf(dp.hf_ds_config, sizeof dp.hf_ds_config, "%s", jpath);
  dp.zero_stage = 1;
  shardrt_plan_default(&p);
  p.mixed_precision = SHARDRT_MP_FP16;
  assert_int_equal(shardrt_plan_from_deepspeed_plugin(&dp, &p), SHARDRT_OK);
  const char *e3[] = {"strategy=ZERO1", "accum=4", "mp=fp16", 0};
  tu_expect("ds plugin json", &p, e3);
  dp.gradient_accumulation_steps = 8;
  assert_int_equal(shardrt_plan_from_deepspeed_plugin(&dp, &p), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "gradient_accumulation_steps contradicts the DeepSpeed JSON"));
  shardrt_deepspeed_plugin_default(&dp);
  dp.zero_stage = 7;
  assert_int_equal(shardrt_plan_from_deepspeed_plugin(&dp, &p), SHARDRT_ERR_CONFIG);
  assert_int_equal(shardrt_plan_from_deepspeed_plugin(NULL, &p), SHARDRT_ERR_INVALID_ARGUMENT);
}

static void test_program_hints(void **state) {
  (void)state;
  tu_setup();
  char path[512], jpath[512];
  tu_write("ds.json",
           "{\"zero_optimization\": {\"stage\": 3, \"reduce_bucket_size\": \"auto\", \"stage3_prefetch_bucket_size\":"
           " \"auto\", \"stage3_param_persistence_threshold\": \"auto\"}, \"train_micro_batch_size_per_gpu\": \"auto\","
           " \"train_batch_size\": \"auto\", \"gradient_accumulation_steps\": 2}",
           jpath, sizeof jpath);
  tu_write("c.yaml", DS_YAML, path, sizeof path);
  shardrt_plan p;
  shardrt_plan_default(&p);
  assert_int_equal(shardrt_config_load(path, &p), SHARDRT_OK);
  assert_int_equal(p.unresolved, 31u);
  assert_int_equal(shardrt_plan_set_program_hints(&p, 1024, 0, 0), SHARDRT_OK);
  const char *e1[] = {"reduce_bucket=1048576", "prefetch_bucket=943718", "persistence=10240", "unresolved=24", 0};
  tu_expect("hidden", &p, e1);
  assert_int_equal(shardrt_plan_set_program_hints(&p, 0, 4, 2), SHARDRT_OK);
  const char *e2[] = {"micro=4", "train_batch=16", "unresolved=0", 0};
  tu_expect("batch", &p, e2);
  assert_int_equal(shardrt_plan_set_program_hints(&p, 0, 8, 0), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "micro batch 8 differs"));
  assert_int_equal(shardrt_plan_set_program_hints(&p, -1, 0, 0), SHARDRT_ERR_INVALID_ARGUMENT);
  /* Explicit train batch, auto micro: micro = train / (accum x world). */
  shardrt_plan_default(&p);
  p.train_batch_size = 24;
  p.gradient_accumulation_steps = 3;
  p.unresolved = SHARDRT_UNRESOLVED_MICRO_BATCH;
  assert_int_equal(shardrt_plan_set_program_hints(&p, 0, 0, 4), SHARDRT_OK);
  assert_int_equal(p.train_micro_batch_size_per_gpu, 2);
  p.train_batch_size = 25;
  assert_int_equal(shardrt_plan_set_program_hints(&p, 0, 0, 4), SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "train_batch_size 25 !="));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_consumes_known_flags), cmocka_unit_test(test_flags_beat_file),
      cmocka_unit_test(test_switches),             cmocka_unit_test(test_no_config_defaults),
      cmocka_unit_test(test_double_dash_stops),    cmocka_unit_test(test_flag_errors),
      cmocka_unit_test(test_environment),          cmocka_unit_test(test_flags_fill_json_auto),
      cmocka_unit_test(test_json_precision_conflict), cmocka_unit_test(test_plugins),
      cmocka_unit_test(test_program_hints),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
