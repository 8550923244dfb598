/* SPDX-License-Identifier: Apache-2.0 */
/* Every file in configs/ loads and resolves at its own num_processes, and
 * the strategy and precision each name promises is what the plan says. */
#include <dirent.h>

#include "tests/config/config_test_util.h"

typedef struct promise {
  const char *file;
  const char *expect[8];
} promise;

static const promise promises[] = {
    {"fsdp_full_shard.yaml", {"dist=FSDP", "strategy=FULL_SHARD", "np=2", 0}},
    {"fsdp_shard_grad_op.yaml", {"strategy=SHARD_GRAD_OP", 0}},
    {"fsdp_no_shard.yaml", {"strategy=NO_SHARD", 0}},
    {"fsdp_hybrid_shard.yaml", {"strategy=HYBRID_SHARD", "np=4", "nm=2", "group=2", 0}},
    {"fsdp_hybrid_shard_zero2.yaml", {"strategy=HYBRID_SHARD_ZERO2", "np=4", "group=2", 0}},
    {"fsdp_offload.yaml", {"strategy=FULL_SHARD", "offload_params=cpu", "offload_optimizer=cpu", 0}},
    {"fsdp_bf16_no_mp.yaml", {"load_dtype=bf16", "mp=no", 0}},
    {"fsdp_bf16_mp.yaml", {"load_dtype=bf16", "mp=bf16", 0}},
    {"ds_zero0.yaml", {"dist=DEEPSPEED", "strategy=NO_SHARD", 0}},
    {"ds_zero1.yaml", {"strategy=ZERO1", 0}},
    {"ds_zero2.yaml", {"strategy=SHARD_GRAD_OP", 0}},
    {"ds_zero3.yaml", {"strategy=FULL_SHARD", "save16=1", 0}},
    {"ds_zero3_offload.yaml", {"strategy=FULL_SHARD", "offload_params=cpu", "offload_optimizer=cpu", 0}},
    {"ds_zero3_nvme.yaml", {"offload_params=nvme", "offload_optimizer=nvme", "param_nvme=/tmp/shardrt_nvme/params", 0}},
    {"ds_zero3_hpz.yaml", {"strategy=HYBRID_SHARD", "group=2", "np=4", 0}},
    {"ds_json.yaml", {"strategy=SHARD_GRAD_OP", "ag_bucket=200000000", 0}},
    {"ds_zero2_schedule.yaml", {"strategy=SHARD_GRAD_OP", "optim=AdamW", "betas=0.9,0.95", "sched=WarmupDecayLR",
                                "warmup=5", "wtype=linear", "sched_given=64", 0}},
    {"ds_bf16.yaml", {"strategy=FULL_SHARD", "mp=bf16", "load_dtype=bf16", 0}},
    {"multi_cpu.yaml", {"dist=MULTI_CPU", "strategy=NO_SHARD", 0}},
};

static void test_every_config(void **state) {
  (void)state;
  const char *src = getenv("SHARDRT_SOURCE_DIR");
  if (!src) skip();
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/configs", src);
  DIR *d = opendir(dir);
  assert_non_null(d);
  int loaded = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    bool yaml = l > 5 && strcmp(e->d_name + l - 5, ".yaml") == 0;
    bool json = l > 5 && strcmp(e->d_name + l - 5, ".json") == 0;
    if (!yaml && !json) continue;
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    shardrt__warn_set_sink(NULL, NULL);
    shardrt_plan p;
    shardrt_plan_default(&p);
    if (shardrt_config_load(path, &p) != SHARDRT_OK) fail_msg("%s: %s", e->d_name, shardrt_last_error());
    int world = p.num_processes > 0 ? p.num_processes : 2;
    if (shardrt_plan_resolve(&p, world) != SHARDRT_OK) fail_msg("%s: resolve: %s", e->d_name, shardrt_last_error());
    for (size_t i = 0; i < sizeof promises / sizeof promises[0]; i++)
      if (strcmp(promises[i].file, e->d_name) == 0) tu_expect(e->d_name, &p, promises[i].expect);
    loaded++;
  }
  closedir(d);
  /* Every promised file exists (and was loaded above). */
  for (size_t i = 0; i < sizeof promises / sizeof promises[0]; i++) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, promises[i].file);
    if (access(path, R_OK) != 0) fail_msg("configs/%s is missing", promises[i].file);
  }
  assert_true(loaded >= (int)(sizeof promises / sizeof promises[0]));
}

static void test_precision_rows(void **state) {
  (void)state;
  const char *src = getenv("SHARDRT_SOURCE_DIR");
  if (!src) skip();
  /* The seed's table: FSDP bf16/no-mp keeps everything bf16; with bf16 mixed
   * precision FSDP and DeepSpeed keep fp32 params and optimizer. */
  static const struct {
    const char *file;
    shardrt_dtype flat, compute, opt;
  } rows[] = {{"fsdp_bf16_no_mp.yaml", SHARDRT_BF16, SHARDRT_BF16, SHARDRT_BF16},
              {"fsdp_bf16_mp.yaml", SHARDRT_F32, SHARDRT_BF16, SHARDRT_F32},
              {"ds_bf16.yaml", SHARDRT_F32, SHARDRT_BF16, SHARDRT_F32}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    char path[2048];
    snprintf(path, sizeof path, "%s/configs/%s", src, rows[i].file);
    shardrt_plan p;
    shardrt_plan_default(&p);
    assert_int_equal(shardrt_config_load(path, &p), SHARDRT_OK);
    assert_int_equal(shardrt_plan_resolve(&p, p.num_processes), SHARDRT_OK);
    assert_int_equal(p.flat_param_dtype, rows[i].flat);
    assert_int_equal(p.compute_dtype, rows[i].compute);
    assert_int_equal(p.optimizer_dtype, rows[i].opt);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_config), cmocka_unit_test(test_precision_rows)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
