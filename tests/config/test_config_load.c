/* SPDX-License-Identifier: Apache-2.0 */
/* Table-driven checks of the accelerate YAML and DeepSpeed JSON loaders:
 * good files and the plan fields they give, bad files and the exact pieces
 * of the error text (file:line:col, key path, allowed values, suggestion). */
#include "tests/config/config_test_util.h"

typedef struct good_case {
  const char *name;
  const char *yaml;      /* written to c.yaml (or c.json when json_main) */
  const char *json;      /* written to ds.json when set */
  const char *expect[16];
  const char *warning;   /* a fragment some warning must hold, or NULL: none allowed */
  bool json_main;
} good_case;

#define FSDP_HEAD "distributed_type: FSDP\nnum_processes: 2\n"
#define DS_HEAD "distributed_type: DEEPSPEED\nnum_processes: 2\n"

static const good_case good[] = {
    {"fsdp basic", FSDP_HEAD "fsdp_config:\n  fsdp_sharding_strategy: FULL_SHARD\n", 0,
     {"dist=FSDP", "flavor=fsdp", "strategy=FULL_SHARD", "np=2", "sdt=FULL_STATE_DICT", "wrap=NO_WRAP", 0}},
    {"strategy as 1-based integer", FSDP_HEAD "fsdp_config:\n  fsdp_sharding_strategy: 2\n", 0,
     {"strategy=SHARD_GRAD_OP", 0}},
    {"strategy as quoted digit", FSDP_HEAD "fsdp_config:\n  fsdp_sharding_strategy: '5'\n", 0,
     {"strategy=HYBRID_SHARD_ZERO2", 0}},
    {"strategy lower case", FSDP_HEAD "fsdp_config:\n  fsdp_sharding_strategy: shard_grad_op\n", 0,
     {"strategy=SHARD_GRAD_OP", 0}},
    {"keys without the fsdp_ prefix", FSDP_HEAD "fsdp_config:\n  sharding_strategy: NO_SHARD\n  offload_params: true\n", 0,
     {"strategy=NO_SHARD", "offload_params=cpu", "offload_optimizer=cpu", 0}},
    /* accelerate launch always passes a strategy under v1, so the plugin never reads this key */
    {"reshard_after_forward is ignored under v1", FSDP_HEAD "fsdp_config:\n  fsdp_reshard_after_forward: SHARD_GRAD_OP\n", 0,
     {"strategy=FULL_SHARD", 0}, "ignored with fsdp_version 1"},
    {"fsdp_sharding_strategy beats reshard_after_forward",
     FSDP_HEAD "fsdp_config:\n  fsdp_sharding_strategy: NO_SHARD\n  fsdp_reshard_after_forward: FULL_SHARD\n", 0,
     {"strategy=NO_SHARD", 0}, "fsdp_sharding_strategy NO_SHARD, which wins"},
    {"fsdp2 reshard_after_forward false", FSDP_HEAD "fsdp_config:\n  fsdp_version: 2\n  fsdp_reshard_after_forward: false\n", 0,
     {"strategy=SHARD_GRAD_OP", "version=2", "sdt=SHARDED_STATE_DICT", "orig=1", 0}},
    {"fsdp2 obsolete keys warn", FSDP_HEAD "fsdp_config:\n  fsdp_version: 2\n  fsdp_backward_prefetch: BACKWARD_POST\n", 0,
     {"bprefetch=BACKWARD_PRE", 0}, "obsolete with fsdp_version 2"},
    {"backward_prefetch_policy alias", FSDP_HEAD "fsdp_config:\n  fsdp_backward_prefetch_policy: BACKWARD_POST\n", 0,
     {"bprefetch=NO_PREFETCH", 0}, "accelerate ignores this old name; write fsdp_backward_prefetch"},
    {"backward_prefetch by number", FSDP_HEAD "fsdp_config:\n  fsdp_backward_prefetch: 3\n", 0,
     {"bprefetch=NO_PREFETCH", 0}},
    {"class list trimmed, wrap policy implied",
     FSDP_HEAD "fsdp_config:\n  fsdp_transformer_layer_cls_to_wrap: ' Block , MLP ,Attn,'\n", 0,
     {"wrap=TRANSFORMER_BASED_WRAP", "classes=Block|MLP|Attn", 0}},
    {"class list as a YAML list", FSDP_HEAD "fsdp_config:\n  fsdp_transformer_layer_cls_to_wrap: [Block, MLP]\n", 0,
     {"classes=Block|MLP", 0}},
    {"min_num_params in 1e8 notation",
     FSDP_HEAD "fsdp_config:\n  fsdp_auto_wrap_policy: SIZE_BASED_WRAP\n  fsdp_min_num_params: 2e6\n", 0,
     {"wrap=SIZE_BASED_WRAP", "min_params=2000000", 0}},
    {"unquoted no for mixed_precision", FSDP_HEAD "mixed_precision: no\n", 0, {"mp=no", 0}},
    {"unquoted off for mixed_precision", FSDP_HEAD "mixed_precision: off\n", 0, {"mp=no", 0}},
    {"quoted NO distributed type", "distributed_type: 'NO'\nnum_processes: 1\n", 0, {"dist=NO", "strategy=NO_SHARD", 0}},
    {"unquoted NO distributed type", "distributed_type: NO\n", 0, {"dist=NO", "np=-1", 0}},
    {"legacy fp16: true", FSDP_HEAD "fp16: true\n", 0, {"mp=fp16", 0}},
    {"ram-efficient loading implies sync", FSDP_HEAD "fsdp_config:\n  fsdp_cpu_ram_efficient_loading: true\n", 0,
     {"ram=1", "sync=1", 0}},
    {"hybrid shard group from machines",
     "distributed_type: FSDP\nnum_processes: 4\nnum_machines: 2\nfsdp_config:\n  fsdp_sharding_strategy: HYBRID_SHARD\n", 0,
     {"strategy=HYBRID_SHARD", "group=2", "nm=2", 0}},
    {"hybrid on one machine leaves the group to resolve",
     "distributed_type: FSDP\nnum_processes: 4\nfsdp_config:\n  fsdp_sharding_strategy: 4\n", 0,
     {"strategy=HYBRID_SHARD", "group=0", 0}},
    {"multi cpu", "distributed_type: MULTI_CPU\nnum_processes: 2\nuse_cpu: true\n", 0,
     {"dist=MULTI_CPU", "strategy=NO_SHARD", "use_cpu=1", 0}},
    {"fsdp keys under another type warn", "distributed_type: MULTI_GPU\nfsdp_config:\n  fsdp_offload_params: true\n", 0,
     {"dist=MULTI_GPU", "offload_params=none", 0}, "ignored, distributed_type is MULTI_GPU"},
    {"use_cpu turns MULTI_GPU into MULTI_CPU", "distributed_type: MULTI_GPU\nuse_cpu: true\n", 0, {"dist=MULTI_CPU", 0}},
    {"zero stage 0", DS_HEAD "deepspeed_config:\n  zero_stage: 0\n", 0,
     {"dist=DEEPSPEED", "flavor=deepspeed", "strategy=NO_SHARD", 0}},
    {"zero stage 1", DS_HEAD "deepspeed_config:\n  zero_stage: 1\n", 0, {"strategy=ZERO1", 0}},
    {"zero stage default 2", DS_HEAD "deepspeed_config: {}\n", 0, {"strategy=SHARD_GRAD_OP", 0}},
    {"zero stage 3 offload", DS_HEAD "deepspeed_config:\n  zero_stage: 3\n  offload_param_device: cpu\n"
     "  offload_optimizer_device: cpu\n  zero3_init_flag: true\n  zero3_save_16bit_model: true\n", 0,
     {"strategy=FULL_SHARD", "offload_params=cpu", "offload_optimizer=cpu", "ram=1", "sync=1", "save16=1",
      "sdt=FULL_STATE_DICT", 0}},
    {"zero3 without 16-bit save is sharded", DS_HEAD "deepspeed_config:\n  zero_stage: 3\n", 0,
     {"sdt=SHARDED_STATE_DICT", 0}},
    {"param offload below stage 3 warns", DS_HEAD "deepspeed_config:\n  zero_stage: 2\n  offload_param_device: cpu\n"
     "  offload_optimizer_device: cpu\n", 0,
     {"offload_params=none", "offload_optimizer=cpu", 0}, "only applies to ZeRO stage 3"},
    {"nvme paths", DS_HEAD "deepspeed_config:\n  zero_stage: 3\n  offload_param_device: nvme\n"
     "  offload_param_nvme_path: /tmp/p\n  offload_optimizer_device: nvme\n  offload_optimizer_nvme_path: /tmp/o\n", 0,
     {"offload_params=nvme", "param_nvme=/tmp/p", "opt_nvme=/tmp/o", 0}},
    {"accumulation and clipping", DS_HEAD "deepspeed_config:\n  gradient_accumulation_steps: 4\n  gradient_clipping: 0.5\n", 0,
     {"accum=4", "clip=0.5", 0}},
    {"json with auto values", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 3, \"reduce_bucket_size\": \"auto\", \"stage3_prefetch_bucket_size\": \"auto\","
     " \"stage3_param_persistence_threshold\": \"auto\", \"allgather_bucket_size\": 2e8},"
     " \"fp16\": {\"enabled\": \"auto\"}, \"gradient_clipping\": \"auto\", \"train_micro_batch_size_per_gpu\": \"auto\","
     " \"train_batch_size\": \"auto\"}",
     {"strategy=FULL_SHARD", "mp=no", "clip=1", "unresolved=31", "ag_bucket=200000000", 0}},
    {"json explicit fp16 settings", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 1}, \"fp16\": {\"enabled\": true, \"loss_scale\": 128, \"initial_scale_power\": 12,"
     " \"hysteresis\": 3}, \"gradient_accumulation_steps\": 2}",
     {"strategy=ZERO1", "mp=fp16", "loss_scale=128", "scale_power=12", "hysteresis=3", "accum=2", 0}},
    {"json hpZ is hybrid", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 3, \"zero_hpz_partition_size\": 2}}",
     {"strategy=HYBRID_SHARD", "group=2", 0}},
    {"json with tabs and compact colons", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\n\t\"zero_optimization\":{\"stage\":2,\"offload_optimizer\":{\"device\":\"cpu\",\"pin_memory\":true}},\n"
     "\t\"bf16\":{\"enabled\":true}\n}\n",
     {"strategy=SHARD_GRAD_OP", "offload_optimizer=cpu", "mp=bf16", 0}},
    {"json optimizer section is read", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 2}, \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": \"auto\"}}}",
     {"strategy=SHARD_GRAD_OP", "optim=AdamW", "optim_given=0", "sched=none", 0}},
    {"json communication dtype", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 2}, \"communication_data_type\": \"fp32\"}", {"reduce_dtype=fp32", 0}},
    {"ds yaml stage 3: accelerate's defaults", DS_HEAD "deepspeed_config:\n  zero_stage: 3\n", 0,
     {"strategy=FULL_SHARD", "clip=1", "ram=1", "sync=1", "overlap=1", 0}},
    {"ds yaml stage 2: no overlap, no zero3 init", DS_HEAD "deepspeed_config:\n  zero_stage: 2\n", 0,
     {"strategy=SHARD_GRAD_OP", "clip=1", "ram=0", "overlap=0", 0}},
    {"json without gradient_clipping: DeepSpeed 0.19.8 clips at 1.0", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 3}}", {"clip=1", "ram=1", "overlap=1", 0}},
    {"json names without the stage3_ prefix", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 3, \"max_live_parameters\": 5, \"max_reuse_distance\": 7,"
     " \"gather_16bit_weights_on_model_save\": true}}", {"max_live=5", "max_reuse=7", "save16=1", 0}},
    {"json auto that nothing fills takes DeepSpeed's default", DS_HEAD "deepspeed_config:\n"
     "  deepspeed_config_file: ds.json\n", "{\"zero_optimization\": {\"stage\": 3, \"stage3_max_live_parameters\": \"auto\"}}",
     {"max_live=1000000000", 0}},
    {"json top-level key DeepSpeed ignores", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"_comment\": \"x\", \"zero_optimization\": {\"stage\": 2}}", {"strategy=SHARD_GRAD_OP", 0},
     "_comment is not a DeepSpeed key; DeepSpeed ignores it"},
    {"json feature that is off warns", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 2}, \"torch_autocast\": {\"enabled\": false}}", {"strategy=SHARD_GRAD_OP", 0},
     "DeepSpeed's torch_autocast is not supported by libshardrt; it is off here"},
    {"fsdp launch defaults", FSDP_HEAD "fsdp_config:\n  fsdp_sharding_strategy: FULL_SHARD\n", 0,
     {"bprefetch=NO_PREFETCH", "ram=1", "sync=1", 0}},
    {"fsdp2 ignores the sharding strategy", FSDP_HEAD "fsdp_config:\n  fsdp_version: 2\n"
     "  fsdp_sharding_strategy: SHARD_GRAD_OP\n", 0, {"strategy=FULL_SHARD", 0}, "ignored with fsdp_version 2"},
    {"parallelism dp sizes: hybrid", "distributed_type: FSDP\nnum_processes: 4\nfsdp_config:\n  fsdp_version: 2\n"
     "parallelism_config:\n  parallelism_config_dp_replicate_size: 2\n  parallelism_config_dp_shard_size: 2\n", 0,
     {"strategy=HYBRID_SHARD", "group=2", 0}},
    {"deepspeed file under NO is never opened", "distributed_type: 'NO'\ndeepspeed_config:\n"
     "  deepspeed_config_file: missing.json\n", 0, {"dist=NO", 0}, "ignored, distributed_type is NO"},
    {"accelerate config saved as json", "{\"compute_environment\": \"LOCAL_MACHINE\", \"distributed_type\": \"FSDP\","
     " \"num_processes\": 2}", 0, {"dist=FSDP", 0}, NULL, true},
    {"json as the config itself",
     "{\"zero_optimization\": {\"stage\": 3, \"overlap_comm\": false, \"stage3_max_live_parameters\": 1e8}}", 0,
     {"dist=DEEPSPEED", "strategy=FULL_SHARD", "overlap=0", "max_live=100000000", 0}, NULL, true},
    {"load dtype key", FSDP_HEAD "shardrt_param_dtype: bf16\nshardrt_reduce_dtype: fp32\nshardrt_accum_mode: no_sync\n", 0,
     {"load_dtype=bf16", "reduce_dtype=fp32", "accum_mode=no_sync", 0}},
    {"tpu key asking for nothing is quiet", FSDP_HEAD "tpu_use_cluster: false\ntpu_env: []\ndowncast_bf16: 'no'\n", 0,
     {"dist=FSDP", 0}},
    {"tpu key asking for something warns", FSDP_HEAD "tpu_use_cluster: true\n", 0, {"dist=FSDP", 0},
     "tpu_use_cluster is not used by libshardrt"},
    {"dynamo section warns", FSDP_HEAD "dynamo_config:\n  dynamo_backend: INDUCTOR\n", 0, {"dist=FSDP", 0},
     "dynamo_config is not used by libshardrt"},
    {"null values are absent", FSDP_HEAD "fsdp_config:\n  fsdp_transformer_layer_cls_to_wrap: null\n  fsdp_min_num_params:\n", 0,
     {"classes=", "min_params=100000000", 0}},
    {"launch fields", FSDP_HEAD "main_process_ip: 10.0.0.1\nmain_process_port: 29501\ngpu_ids: 0, 1\n"
     "mpirun_config:\n  mpirun_hostfile: hosts.txt\n", 0,
     {"ip=10.0.0.1", "port=29501", "gpu_ids=0,1", "hostfile=$DIR/hosts.txt", 0}},
    {"ignored modules regex", FSDP_HEAD "fsdp_config:\n  fsdp_ignored_modules: 'lm_head|emb.*'\n", 0,
     {"ignored=lm_head|emb.*", 0}},
    {"accelerate questionnaire output",
     "compute_environment: LOCAL_MACHINE\ndebug: false\ndistributed_type: FSDP\ndowncast_bf16: 'no'\n"
     "enable_cpu_affinity: false\nfsdp_config:\n  fsdp_activation_checkpointing: true\n"
     "  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n  fsdp_backward_prefetch: BACKWARD_PRE\n"
     "  fsdp_cpu_ram_efficient_loading: true\n  fsdp_forward_prefetch: false\n  fsdp_offload_params: false\n"
     "  fsdp_reshard_after_forward: FULL_SHARD\n  fsdp_state_dict_type: SHARDED_STATE_DICT\n"
     "  fsdp_sync_module_states: true\n  fsdp_transformer_layer_cls_to_wrap: GPT2Block\n  fsdp_use_orig_params: true\n"
     "  fsdp_version: 1\nmachine_rank: 0\nmain_training_function: main\nmixed_precision: bf16\nnum_machines: 1\n"
     "num_processes: 8\nrdzv_backend: static\nsame_network: true\ntpu_env: []\ntpu_use_cluster: false\n"
     "tpu_use_sudo: false\nuse_cpu: false\n", 0,
     {"strategy=FULL_SHARD", "mp=bf16", "np=8", "classes=GPT2Block", "sdt=SHARDED_STATE_DICT", "ackpt=1", "ram=1", 0}},
};

static void test_good(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    const good_case *g = &good[i];
    tu_setup();
    char path[512], jpath[512];
    if (g->json) tu_write("ds.json", g->json, jpath, sizeof jpath);
    tu_write(g->json_main ? "c.json" : "c.yaml", g->yaml, path, sizeof path);
    shardrt_plan p;
    shardrt_plan_default(&p);
    if (shardrt_config_load(path, &p) != SHARDRT_OK) fail_msg("%s: load failed: %s", g->name, shardrt_last_error());
    tu_expect(g->name, &p, g->expect);
    if (g->warning && !strstr(tu_warnings, g->warning))
      fail_msg("%s: no warning with '%s'; got:\n%s", g->name, g->warning, tu_warnings);
    if (!g->warning && tu_warnings[0]) fail_msg("%s: unexpected warning:\n%s", g->name, tu_warnings);
    int world = p.num_processes > 0 ? p.num_processes : 0;
    bool needs_classes = p.wrap_policy == SHARDRT_WRAP_TRANSFORMER_BASED && p.num_wrap_classes == 0;
    if (!needs_classes && shardrt_plan_resolve(&p, world) != SHARDRT_OK)
      fail_msg("%s: resolve failed: %s", g->name, shardrt_last_error());
  }
}

typedef struct bad_case {
  const char *name;
  const char *yaml;
  const char *json;
  const char *frags[6];
  shardrt_status rc;
} bad_case;

static const bad_case bad[] = {
    {"misspelt top-level key", "distributed_typ: FSDP\n", 0,
     {"c.yaml:1:1: ", "unknown key 'distributed_typ'", "did you mean 'distributed_type'?", 0}},
    {"misspelt nested key", FSDP_HEAD "fsdp_config:\n  fsdp_sharding_stratgy: FULL_SHARD\n", 0,
     {"c.yaml:4:3: ", "in fsdp_config", "did you mean 'fsdp_sharding_strategy'?", 0}},
    {"unknown key with no close match lists the keys", FSDP_HEAD "mpirun_config:\n  hostfile_for_everything: x\n", 0,
     {"c.yaml:4:3: ", "unknown key 'hostfile_for_everything' in mpirun_config", "allowed: mpirun_hostfile, mpirun_ccl", 0}},
    {"misspelt strategy", FSDP_HEAD "fsdp_config:\n  fsdp_sharding_strategy: FULL_SHRAD\n", 0,
     {"c.yaml:4:27: ", "fsdp_config.fsdp_sharding_strategy", "'FULL_SHRAD'",
      "allowed: FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, HYBRID_SHARD, HYBRID_SHARD_ZERO2", "did you mean 'FULL_SHARD'?", 0}},
    {"strategy number out of range", FSDP_HEAD "fsdp_config:\n  sharding_strategy: 6\n", 0,
     {"c.yaml:4:22: ", "fsdp_config.sharding_strategy", "or 1-5 for those in order", 0}},
    {"missing distributed_type", "num_processes: 2\n", 0, {"c.yaml: missing required key distributed_type", "FSDP, DEEPSPEED", 0}},
    {"foreign distributed_type", "distributed_type: XLA\n", 0,
     {"c.yaml:1:19: ", "XLA is not supported by libshardrt", "allowed: NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED", 0}},
    {"fp8", FSDP_HEAD "mixed_precision: fp8\n", 0, {"c.yaml:3:18: mixed_precision: fp8 is not supported", 0}},
    {"mixed_precision typo", FSDP_HEAD "mixed_precision: fp61\n", 0, {"allowed: no, fp16, bf16", "did you mean 'fp16'?", 0}},
    {"legacy fp16 against bf16", FSDP_HEAD "fp16: true\nmixed_precision: bf16\n", 0,
     {"c.yaml:4:18: mixed_precision = bf16 contradicts", "c.yaml:3:7: fp16 = true", 0}},
    {"ram-efficient loading without sync", FSDP_HEAD "fsdp_config:\n  fsdp_cpu_ram_efficient_loading: true\n"
     "  fsdp_sync_module_states: false\n", 0,
     {"c.yaml:4:35: fsdp_config.fsdp_cpu_ram_efficient_loading = true: needs fsdp_sync_module_states true",
      "c.yaml:5:28: fsdp_config.fsdp_sync_module_states = false", 0}},
    {"fsdp2 forward prefetch", FSDP_HEAD "fsdp_config:\n  fsdp_version: 2\n  fsdp_forward_prefetch: true\n", 0,
     {"c.yaml:5:26: fsdp_config.fsdp_forward_prefetch = true: not available with fsdp_version 2", "allowed: false", 0}},
    {"fsdp_version 3", FSDP_HEAD "fsdp_config:\n  fsdp_version: 3\n", 0,
     {"c.yaml:4:17: fsdp_config.fsdp_version: 3 is out of range (allowed: 1 to 2)", 0}},
    {"fractional process count", "distributed_type: FSDP\nnum_processes: 2.5\n", 0,
     {"c.yaml:2:16: num_processes: invalid value '2.5'", "an integer", 0}},
    {"bool that is not", FSDP_HEAD "fsdp_config:\n  fsdp_offload_params: maybe\n", 0,
     {"fsdp_config.fsdp_offload_params: invalid value 'maybe' (allowed: true or false)", 0}},
    {"zero stage 4", DS_HEAD "deepspeed_config:\n  zero_stage: 4\n", 0,
     {"c.yaml:4:15: deepspeed_config.zero_stage: 4 is out of range (allowed: 0 to 3)", 0}},
    {"yaml keys the json decides", DS_HEAD "deepspeed_config:\n  zero_stage: 3\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 2}}",
     {"c.yaml:4:15: deepspeed_config.zero_stage = 3: not allowed together with deepspeed_config_file", 0}},
    {"top-level mixed precision with a json", DS_HEAD "mixed_precision: bf16\ndeepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 2}}", {"c.yaml:3:18: mixed_precision = bf16: not allowed together", 0}},
    {"json without zero_optimization", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"fp16\": {\"enabled\": true}}", {"ds.json: missing required section zero_optimization", 0}},
    {"json feature that is on", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 2},\n \"compile\": {\"enabled\": true}}",
     {"ds.json:2:2: DeepSpeed's compile is not supported by libshardrt", 0}},
    {"json typo in a known section", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 2, \"overlap_com\": true}}", {"did you mean 'overlap_comm'?", 0}},
    {"json top-level typo", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimisation\": {\"stage\": 2}}", {"did you mean 'zero_optimization'?", 0}},
    {"tensor parallelism", "distributed_type: FSDP\nnum_processes: 4\nfsdp_config:\n  fsdp_version: 2\n"
     "parallelism_config:\n  parallelism_config_tp_size: 2\n", 0,
     {"tp_size 2: accelerate's tensor/context/sequence parallelism is not supported by libshardrt", 0}},
    {"parallelism sizes that are not the world", "distributed_type: FSDP\nnum_processes: 4\nfsdp_config:\n"
     "  fsdp_version: 2\nparallelism_config:\n  parallelism_config_dp_replicate_size: 3\n"
     "  parallelism_config_dp_shard_size: 2\n", 0, {"dp_replicate_size 3 x dp_shard_size 2 is not num_processes 4", 0}},
    {"parallelism outside fsdp2", "distributed_type: FSDP\nnum_processes: 4\nparallelism_config:\n"
     "  parallelism_config_dp_replicate_size: 2\n", 0, {"needs distributed_type FSDP with fsdp_version 2", 0}},
    {"deepspeed file nowhere", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: nowhere.json\n", 0,
     {"deepspeed_config_file 'nowhere.json' not found; tried ", "(the working directory, as accelerate does)",
      "nowhere.json (beside the config)", 0}, SHARDRT_ERR_IO},
    {"json fp16 and bf16", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 2}, \"fp16\": {\"enabled\": true}, \"bf16\": {\"enabled\": true}}",
     {"fp16.enabled = true and", "bf16.enabled = true: only one of fp16 and bf16", 0}},
    {"json misspelt nested key", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stagee\": 2}}",
     {"ds.json:1:24: unknown key 'stagee' in zero_optimization; did you mean 'stage'?", 0}},
    {"json bad offload device", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 3, \"offload_param\": {\"device\": \"disk\"}}}",
     {"zero_optimization.offload_param.device: invalid value 'disk' (allowed: none, cpu, nvme)", 0}},
    {"json syntax error", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 2,}", {"ds.json:1:", "not valid JSON", 0}},
    {"json comments are not JSON", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 2}} # ZeRO-2\n", {"ds.json:1:", "not valid JSON", 0}},
    {"json duplicate keys", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: ds.json\n",
     "{\"zero_optimization\": {\"stage\": 2}, \"zero_optimization\": {\"stage\": 3}}", {"duplicate object key", 0}},
    {"missing json file", DS_HEAD "deepspeed_config:\n  deepspeed_config_file: nope.json\n", 0,
     {"deepspeed_config_file 'nope.json' not found; tried ", 0}, SHARDRT_ERR_IO},
    {"yaml syntax error", "distributed_type: FSDP\n  bad: [1,\n", 0, {"c.yaml:", "syntax error", 0}},
    {"duplicate key", "distributed_type: FSDP\nnum_processes: 2\nnum_processes: 4\n", 0,
     {"c.yaml:3:1: duplicate key 'num_processes' in the top level (first at line 2)", 0}},
    {"top level is a list", "- distributed_type: FSDP\n", 0, {"c.yaml:1:1: expected a mapping of keys at the top, found a list", 0}},
    {"empty file", "", 0, {"c.yaml: the file is empty", 0}},
    {"section that is a value", FSDP_HEAD "fsdp_config: yes\n", 0,
     {"c.yaml:3:14: fsdp_config: expected a mapping of keys, found a value", 0}},
    {"value that is a mapping", FSDP_HEAD "num_machines: {a: 1}\n", 0, {"c.yaml:3:15: num_machines: expected a value, found a mapping", 0}},
    {"nvme without a path", DS_HEAD "deepspeed_config:\n  zero_stage: 3\n  offload_optimizer_device: nvme\n", 0,
     {"offload_optimizer_device is nvme but offload_optimizer_nvme_path is empty", 0}},
    {"hybrid processes not divisible", "distributed_type: FSDP\nnum_processes: 5\nnum_machines: 2\n"
     "fsdp_config:\n  fsdp_sharding_strategy: HYBRID_SHARD\n", 0,
     {"c.yaml: HYBRID_SHARD shards within a machine, so num_processes 5 must be a multiple of num_machines 2", 0}},
    {"machine rank too large", FSDP_HEAD "num_machines: 2\nmachine_rank: 2\n", 0,
     {"c.yaml:4:15: machine_rank = 2: machine_rank 2 is not below num_machines 2", 0}},
    {"class name with a bad character", FSDP_HEAD "fsdp_config:\n  fsdp_transformer_layer_cls_to_wrap: Block;rm\n", 0,
     {"'Block;rm' is not a class name", 0}},
    {"bad ignored_modules regex", FSDP_HEAD "fsdp_config:\n  fsdp_ignored_modules: 'emb('\n", 0,
     {"ignored_modules 'emb(' is not a valid regex", 0}},
    {"NUL in a value", FSDP_HEAD "main_process_ip: \"10.0\\0.1\"\n", 0, {"c.yaml:3:18: main_process_ip: value contains a NUL", 0}},
    {"gpu_ids not numbers", FSDP_HEAD "gpu_ids: a,b\n", 0, {"gpu_ids: invalid value 'a,b'", "comma list of GPU indices", 0}},
    {"sagemaker", "compute_environment: AMAZON_SAGEMAKER\ndistributed_type: FSDP\n", 0,
     {"c.yaml:1:22: compute_environment: invalid value 'AMAZON_SAGEMAKER' (allowed: LOCAL_MACHINE", 0}},
    {"zero processes", "distributed_type: FSDP\nnum_processes: 0\n", 0,
     {"num_processes: invalid value '0' (allowed: -1 (take the launch's world size) or a count >= 1)", 0}},
    {"two documents", "distributed_type: FSDP\n---\ndistributed_type: NO\n", 0, {"holds more than one YAML document", 0}},
    {"deep nesting", "distributed_type: FSDP\nx: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n", 0, {"c.yaml:2:", "nested deeper than 32 levels", 0}},
    {"alias merge key", "base: &b {x: 1}\n", 0, {"c.yaml:1:1: unknown key 'base'", 0}},
};

static void test_bad(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const bad_case *b = &bad[i];
    tu_setup();
    char path[512], jpath[512];
    if (b->json) tu_write("ds.json", b->json, jpath, sizeof jpath);
    tu_write("c.yaml", b->yaml, path, sizeof path);
    shardrt_plan p, before;
    shardrt_plan_default(&p);
    before = p;
    shardrt_status rc = shardrt_config_load(path, &p);
    if (rc == SHARDRT_OK) fail_msg("%s: loaded but should fail", b->name);
    shardrt_status want = b->rc ? b->rc : SHARDRT_ERR_CONFIG;
    if (rc != want) fail_msg("%s: status %d, expected %d (%s)", b->name, rc, want, shardrt_last_error());
    tu_expect_error(b->name, b->frags);
    /* A failed load leaves the plan as it was. */
    if (memcmp(&p, &before, sizeof p) != 0) fail_msg("%s: failed load changed the plan", b->name);
  }
}

static void test_missing_file(void **state) {
  (void)state;
  shardrt_plan p;
  shardrt_plan_default(&p);
  assert_int_equal(shardrt_config_load("/nonexistent/cfg.yaml", &p), SHARDRT_ERR_IO);
  assert_non_null(strstr(shardrt_last_error(), "/nonexistent/cfg.yaml: cannot open"));
  assert_int_equal(shardrt_config_load(NULL, &p), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_config_load("/tmp", &p), SHARDRT_ERR_IO);
}

static void test_warning_once(void **state) {
  (void)state;
  tu_setup();
  char path[512];
  tu_write("c.yaml", FSDP_HEAD "tpu_use_cluster: true\n", path, sizeof path);
  shardrt_plan p;
  for (int k = 0; k < 3; k++) {
    shardrt_plan_default(&p);
    assert_int_equal(shardrt_config_load(path, &p), SHARDRT_OK);
  }
  const char *first = strstr(tu_warnings, "tpu_use_cluster");
  assert_non_null(first);
  assert_null(strstr(first + 1, "tpu_use_cluster"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good),
      cmocka_unit_test(test_bad),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_warning_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
