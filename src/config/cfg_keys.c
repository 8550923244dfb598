/* SPDX-License-Identifier: Apache-2.0 */
/* Key tables. Adding a key: a row here, a field in config_internal.h when it
 * feeds a new setting, its parsing in cfg_set.c (cfg_optim.c for the
 * optimizer and scheduler sections), a line in docs/config.md. */
#include "src/config/cfg_keys.h"

#define FIELD(n, f) {n, SHARDRT__K_FIELD, f, 0, 0}
#define SECTION(n, t) {n, SHARDRT__K_SECTION, -1, &t, 0}
#define WARN(n, why) {n, SHARDRT__K_WARN, -1, 0, why}
#define WARN_SECTION(n, why) {n, SHARDRT__K_WARN_SECTION, -1, 0, why}
#define IGNORE(n) {n, SHARDRT__K_IGNORE, -1, 0, 0}
#define ALIAS(n, f, why) {n, SHARDRT__K_ALIAS, f, 0, why}
#define SPELLING(n, f) {n, SHARDRT__K_SPELLING, f, 0, 0}
#define UNSUPPORTED(n) {n, SHARDRT__K_UNSUPPORTED, -1, 0, 0}
#define TABLE(name, arr, prefix) \
  const shardrt__table name = {arr, (int)(sizeof arr / sizeof arr[0]), prefix}

/* ---- accelerate YAML ---- */

static const shardrt__key fsdp_keys[] = {
    FIELD("fsdp_version", SHARDRT__F_FSDP_VERSION),
    FIELD("fsdp_sharding_strategy", SHARDRT__F_STRATEGY),
    FIELD("fsdp_reshard_after_forward", SHARDRT__F_RESHARD),
    FIELD("fsdp_offload_params", SHARDRT__F_OFFLOAD),
    FIELD("fsdp_auto_wrap_policy", SHARDRT__F_WRAP),
    FIELD("fsdp_transformer_layer_cls_to_wrap", SHARDRT__F_CLS),
    FIELD("fsdp_min_num_params", SHARDRT__F_MIN_PARAMS),
    FIELD("fsdp_backward_prefetch", SHARDRT__F_BPREFETCH),
    /* accelerate's launcher no longer reads it: no prefetch follows from it */
    WARN("fsdp_backward_prefetch_policy", "accelerate ignores this old name; write fsdp_backward_prefetch"),
    FIELD("fsdp_forward_prefetch", SHARDRT__F_FPREFETCH),
    FIELD("fsdp_state_dict_type", SHARDRT__F_SDT),
    FIELD("fsdp_use_orig_params", SHARDRT__F_ORIG_PARAMS),
    FIELD("fsdp_cpu_ram_efficient_loading", SHARDRT__F_RAM_EFFICIENT),
    FIELD("fsdp_sync_module_states", SHARDRT__F_SYNC),
    FIELD("fsdp_activation_checkpointing", SHARDRT__F_ACT_CKPT),
    FIELD("fsdp_ignored_modules", SHARDRT__F_IGNORED),
    IGNORE("fsdp_limit_all_gathers"),
};
static TABLE(fsdp_table, fsdp_keys, "fsdp_");

static const shardrt__key ds_keys[] = {
    FIELD("zero_stage", SHARDRT__F_ZERO_STAGE),
    FIELD("offload_optimizer_device", SHARDRT__F_OPT_DEV),
    FIELD("offload_param_device", SHARDRT__F_PARAM_DEV),
    FIELD("offload_optimizer_nvme_path", SHARDRT__F_OPT_NVME),
    FIELD("offload_param_nvme_path", SHARDRT__F_PARAM_NVME),
    FIELD("gradient_accumulation_steps", SHARDRT__F_ACCUM),
    FIELD("gradient_clipping", SHARDRT__F_CLIP),
    FIELD("zero3_init_flag", SHARDRT__F_Z3_INIT),
    FIELD("zero3_save_16bit_model", SHARDRT__F_Z3_SAVE),
    FIELD("deepspeed_config_file", SHARDRT__F_DS_FILE),
    IGNORE("deepspeed_multinode_launcher"),
    FIELD("deepspeed_hostfile", SHARDRT__F_HOSTFILE), /* same format as mpirun's: shardrt launch hands it over */
    WARN("deepspeed_exclusion_filter", "shardrt launch has no host filters"),
    WARN("deepspeed_inclusion_filter", "shardrt launch has no host filters"),
    WARN("deepspeed_moe_layer_cls_names", "libshardrt has no mixture-of-experts support"),
};
static TABLE(ds_table, ds_keys, 0);

static const shardrt__key mpirun_keys[] = {
    FIELD("mpirun_hostfile", SHARDRT__F_HOSTFILE),
    WARN("mpirun_ccl", "oneCCL is not used; collectives run on NCCL or MPI"),
};
static TABLE(mpirun_table, mpirun_keys, 0);

static const shardrt__key root_keys[] = {
    FIELD("compute_environment", SHARDRT__F_COMPUTE_ENV),
    FIELD("distributed_type", SHARDRT__F_DIST),
    FIELD("mixed_precision", SHARDRT__F_MP),
    FIELD("fp16", SHARDRT__F_FP16_LEGACY),
    FIELD("num_processes", SHARDRT__F_NUM_PROC),
    FIELD("num_machines", SHARDRT__F_NUM_MACH),
    FIELD("machine_rank", SHARDRT__F_MACH_RANK),
    FIELD("main_process_ip", SHARDRT__F_IP),
    FIELD("main_process_port", SHARDRT__F_PORT),
    FIELD("gpu_ids", SHARDRT__F_GPU_IDS),
    FIELD("use_cpu", SHARDRT__F_USE_CPU),
    SECTION("fsdp_config", fsdp_table),
    SECTION("deepspeed_config", ds_table),
    SECTION("mpirun_config", mpirun_table),
    FIELD("shardrt_param_dtype", SHARDRT__F_PARAM_DTYPE),
    FIELD("shardrt_reduce_dtype", SHARDRT__F_REDUCE_DTYPE),
    FIELD("shardrt_accum_mode", SHARDRT__F_ACCUM_MODE),
    FIELD("shardrt_shard_group_size", SHARDRT__F_SHARD_GROUP),
    IGNORE("main_training_function"),
    IGNORE("rdzv_backend"),
    IGNORE("same_network"),
    WARN("debug", "collective checks follow the runtime's own settings"),
    WARN("downcast_bf16", "a TPU setting"),
    WARN("enable_cpu_affinity", "shardrt launch does not pin CPUs"),
    WARN("use_mps_device", "Apple MPS is not a libshardrt device"),
    WARN("dynamo_backend", "torch.compile does not apply to C programs"),
    WARN("tpu_name", "TPUs are not supported"),
    WARN("tpu_zone", "TPUs are not supported"),
    WARN("tpu_use_cluster", "TPUs are not supported"),
    WARN("tpu_use_sudo", "TPUs are not supported"),
    WARN("tpu_env", "TPUs are not supported"),
    WARN("tpu_vm", "TPUs are not supported"),
    WARN("command_file", "TPUs are not supported"),
    WARN("commands", "TPUs are not supported"),
    WARN_SECTION("dynamo_config", "torch.compile does not apply to C programs"),
    WARN_SECTION("megatron_lm_config", "Megatron-LM parallelism is not supported"),
    WARN_SECTION("fp8_config", "libshardrt has no fp8 kernels"),
    WARN_SECTION("ipex_config", "Intel Extension for PyTorch does not apply"),
    {"parallelism_config", SHARDRT__K_PARALLELISM, -1, 0, 0},
};
TABLE(shardrt__yaml_root, root_keys, 0);

/* ---- DeepSpeed JSON ---- */

static const shardrt__key offload_param_keys[] = {
    FIELD("device", SHARDRT__F_PARAM_DEV), FIELD("nvme_path", SHARDRT__F_PARAM_NVME), IGNORE("pin_memory"),
    IGNORE("buffer_count"), IGNORE("buffer_size"), IGNORE("max_in_cpu"),
};
static TABLE(offload_param_table, offload_param_keys, 0);

static const shardrt__key offload_opt_keys[] = {
    FIELD("device", SHARDRT__F_OPT_DEV), FIELD("nvme_path", SHARDRT__F_OPT_NVME), IGNORE("pin_memory"),
    IGNORE("buffer_count"), IGNORE("pipeline_read"), IGNORE("pipeline_write"), IGNORE("fast_init"),
    WARN("ratio", "partial optimizer offload is not supported: all or nothing"),
};
static TABLE(offload_opt_table, offload_opt_keys, 0);

static const shardrt__key zero_keys[] = {
    FIELD("stage", SHARDRT__F_ZERO_STAGE),
    SECTION("offload_param", offload_param_table),
    SECTION("offload_optimizer", offload_opt_table),
    FIELD("overlap_comm", SHARDRT__F_OVERLAP),
    FIELD("contiguous_gradients", SHARDRT__F_CONTIGUOUS),
    FIELD("reduce_bucket_size", SHARDRT__F_REDUCE_BUCKET),
    FIELD("allgather_bucket_size", SHARDRT__F_AG_BUCKET),
    FIELD("stage3_prefetch_bucket_size", SHARDRT__F_PREFETCH_BUCKET),
    FIELD("stage3_param_persistence_threshold", SHARDRT__F_PERSISTENCE),
    FIELD("stage3_max_live_parameters", SHARDRT__F_MAX_LIVE),
    FIELD("stage3_max_reuse_distance", SHARDRT__F_MAX_REUSE),
    FIELD("stage3_gather_16bit_weights_on_model_save", SHARDRT__F_Z3_SAVE),
    ALIAS("stage3_gather_fp16_weights_on_model_save", SHARDRT__F_Z3_SAVE,
          "deprecated, write stage3_gather_16bit_weights_on_model_save"),
    FIELD("zero_hpz_partition_size", SHARDRT__F_HPZ),
    /* DeepSpeedZeroConfig takes the field names as well as the stage3_
     * aliases (its model populates by name). */
    SPELLING("prefetch_bucket_size", SHARDRT__F_PREFETCH_BUCKET),
    SPELLING("param_persistence_threshold", SHARDRT__F_PERSISTENCE),
    SPELLING("max_live_parameters", SHARDRT__F_MAX_LIVE),
    SPELLING("max_reuse_distance", SHARDRT__F_MAX_REUSE),
    SPELLING("gather_16bit_weights_on_model_save", SHARDRT__F_Z3_SAVE),
    IGNORE("allgather_partitions"),
    IGNORE("reduce_scatter"),
    IGNORE("sub_group_size"),
    IGNORE("elastic_checkpoint"),
    IGNORE("ignore_unused_parameters"),
    IGNORE("load_from_fp32_weights"),
    IGNORE("memory_efficient_linear"),
    IGNORE("use_multi_rank_bucket_allreduce"),
    WARN("round_robin_gradients", "gradient partitions are contiguous per rank"),
    UNSUPPORTED("zero_quantized_weights"),
    UNSUPPORTED("zero_quantized_gradients"),
    UNSUPPORTED("mics_shard_size"),
    WARN("cpu_offload", "deprecated DeepSpeed key, write offload_optimizer.device"),
    IGNORE("stage3_model_persistence_threshold"),
    IGNORE("model_persistence_threshold"),
    IGNORE("stage3_module_granularity_threshold"),
    IGNORE("module_granularity_threshold"),
    IGNORE("stage3_use_all_reduce_for_fetch_params"),
    IGNORE("use_all_reduce_for_fetch_params"),
    IGNORE("stage3_allgather_sequential"),
    IGNORE("log_trace_cache_warnings"),
    IGNORE("override_module_apply"),
    IGNORE("zeropp_loco_param"),
    IGNORE("allgather_sequential"),
    IGNORE("compute_grad_norm"),
    IGNORE("cpu_offload_use_pin_memory"),
    IGNORE("parameter_alignment"),
    IGNORE("enable_sanity_checks"),
    IGNORE("save_muon_momentum_buffer_in_memory"),
    IGNORE("pipeline_loading_checkpoint"),
    IGNORE("leaf_module"),
    UNSUPPORTED("zenflow"),
    UNSUPPORTED("cpu_offload_param"),
    UNSUPPORTED("legacy_stage1"),
    UNSUPPORTED("zero_quantized_nontrainable_weights"),
    UNSUPPORTED("mics_hierarchical_params_gather"),
};
static TABLE(zero_table, zero_keys, 0);

static const shardrt__key fp16_keys[] = {
    FIELD("enabled", SHARDRT__F_FP16_EN),
    FIELD("loss_scale", SHARDRT__F_LOSS_SCALE),
    FIELD("initial_scale_power", SHARDRT__F_SCALE_POWER),
    FIELD("loss_scale_window", SHARDRT__F_SCALE_WINDOW),
    FIELD("hysteresis", SHARDRT__F_HYSTERESIS),
    FIELD("min_loss_scale", SHARDRT__F_MIN_SCALE),
    WARN("auto_cast", "the program decides what runs in fp16"),
    WARN("consecutive_hysteresis", "hysteresis counts every overflow"),
    WARN("fp16_master_weights_and_grads", "the DeepSpeed flavour keeps fp32 master weights"),
};
static TABLE(fp16_table, fp16_keys, 0);

static const shardrt__key bf16_keys[] = {
    FIELD("enabled", SHARDRT__F_BF16_EN),
    IGNORE("immediate_grad_update"),
    IGNORE("check_grad_overflow"),
};
static TABLE(bf16_table, bf16_keys, 0);

/* "optimizer" and "scheduler": DeepSpeed builds them from the JSON; so does
 * libshardrt (cfg_optim.c checks which params fit the named type). */
static const shardrt__key optim_param_keys[] = {
    FIELD("lr", SHARDRT__F_OPT_LR),
    FIELD("betas", SHARDRT__F_OPT_BETAS),
    FIELD("eps", SHARDRT__F_OPT_EPS),
    FIELD("weight_decay", SHARDRT__F_OPT_WD),
    FIELD("momentum", SHARDRT__F_OPT_MOMENTUM),
    FIELD("adam_w_mode", SHARDRT__F_OPT_ADAM_W_MODE),
    FIELD("bias_correction", SHARDRT__F_OPT_BIAS_CORRECTION),
    FIELD("amsgrad", SHARDRT__F_OPT_AMSGRAD),
    FIELD("nesterov", SHARDRT__F_OPT_NESTEROV),
    FIELD("dampening", SHARDRT__F_OPT_DAMPENING),
    FIELD("max_grad_norm", SHARDRT__F_OPT_MAX_GRAD_NORM),
    IGNORE("torch_adam"),
    /* 1-bit / 0/1 optimizers' parameters: their types are refused anyway. */
    UNSUPPORTED("freeze_step"),
    UNSUPPORTED("cuda_aware"),
    UNSUPPORTED("comm_backend_name"),
    UNSUPPORTED("var_freeze_step"),
    UNSUPPORTED("var_update_scaler"),
    UNSUPPORTED("local_step_scaler"),
    UNSUPPORTED("local_step_clipper"),
    UNSUPPORTED("max_coeff"),
    UNSUPPORTED("min_coeff"),
    UNSUPPORTED("coeff_beta"),
    UNSUPPORTED("factor_max"),
    UNSUPPORTED("factor_min"),
    UNSUPPORTED("factor_threshold"),
};
static TABLE(optim_param_table, optim_param_keys, 0);

static const shardrt__key optim_keys[] = {
    FIELD("type", SHARDRT__F_OPTIM_TYPE),
    SECTION("params", optim_param_table),
};
static TABLE(optim_table, optim_keys, 0);

static const shardrt__key sched_param_keys[] = {
    FIELD("warmup_min_lr", SHARDRT__F_SCHED_MIN_LR),
    FIELD("warmup_max_lr", SHARDRT__F_SCHED_MAX_LR),
    FIELD("warmup_num_steps", SHARDRT__F_SCHED_WARMUP_STEPS),
    FIELD("warmup_type", SHARDRT__F_SCHED_WARMUP_TYPE),
    FIELD("total_num_steps", SHARDRT__F_SCHED_TOTAL),
    FIELD("warmup_min_ratio", SHARDRT__F_SCHED_MIN_RATIO),
    FIELD("cos_min_ratio", SHARDRT__F_SCHED_COS_MIN_RATIO),
};
static TABLE(sched_param_table, sched_param_keys, 0);

static const shardrt__key sched_keys[] = {
    FIELD("type", SHARDRT__F_SCHED_TYPE),
    SECTION("params", sched_param_table),
};
static TABLE(sched_table, sched_keys, 0);

static const shardrt__key json_keys[] = {
    SECTION("zero_optimization", zero_table),
    SECTION("fp16", fp16_table),
    SECTION("bf16", bf16_table),
    /* DeepSpeed still reads the old name, but accelerate's
     * DeepSpeedPlugin.set_mixed_precision inserts a "bf16" section first,
     * which shadows it: under accelerate it never turns bf16 on. */
    WARN_SECTION("bfloat16", "accelerate adds a \"bf16\" section that shadows this old name; write \"bf16\""),
    FIELD("gradient_accumulation_steps", SHARDRT__F_ACCUM),
    FIELD("gradient_clipping", SHARDRT__F_CLIP),
    FIELD("train_micro_batch_size_per_gpu", SHARDRT__F_MICRO_BATCH),
    FIELD("train_batch_size", SHARDRT__F_TRAIN_BATCH),
    FIELD("communication_data_type", SHARDRT__F_REDUCE_DTYPE),
    SECTION("optimizer", optim_table),
    SECTION("scheduler", sched_table),
    WARN_SECTION("activation_checkpointing", "activation memory is the program's business"),
    WARN_SECTION("flops_profiler", "no profiler is built in"),
    WARN_SECTION("amp", "use fp16 or bf16"),
    WARN_SECTION("data_types", "gradient accumulation runs in the reduce dtype"),
    WARN("prescale_gradients", "gradients are averaged after the reduction"),
    WARN("gradient_predivide_factor", "gradients are averaged after the reduction"),
    IGNORE("steps_per_print"),
    IGNORE("wall_clock_breakdown"),
    IGNORE("memory_breakdown"),
    IGNORE("dump_state"),
    IGNORE("zero_allow_untested_optimizer"),
    IGNORE("zero_force_ds_cpu_optimizer"),
    IGNORE("tensorboard"),
    IGNORE("wandb"),
    IGNORE("csv_monitor"),
    IGNORE("comet"),
    IGNORE("comms_logger"),
    IGNORE("gradient_accumulation_dtype"),
    IGNORE("seq_parallel_communication_data_type"),
    IGNORE("graph_harvesting"),
    IGNORE("use_data_before_expert_parallelism"),
    IGNORE("disable_allgather"),
    IGNORE("sparse_gradients"),
    IGNORE("dataloader_drop_last"),
    /* DeepSpeed features libshardrt lacks (deepspeed/runtime/config.py and
     * its section models): named as such, an error when on. */
    UNSUPPORTED("compile"),
    UNSUPPORTED("data_efficiency"),
    UNSUPPORTED("compression_training"),
    UNSUPPORTED("zenflow"),
    UNSUPPORTED("sequence_parallel_size"),
    UNSUPPORTED("tensor_parallel"),
    UNSUPPORTED("comms_config"),
    UNSUPPORTED("torch_autocast"),
    UNSUPPORTED("monitor_config"),
    UNSUPPORTED("aio"),
    UNSUPPORTED("bf16_master_weights_and_grads"),
    UNSUPPORTED("bf16_optimizer_states"),
    UNSUPPORTED("autotuning"),
    UNSUPPORTED("sparse_attention"),
    UNSUPPORTED("pipeline"),
    UNSUPPORTED("elasticity"),
    UNSUPPORTED("curriculum_learning"),
    UNSUPPORTED("quantize_training"),
    UNSUPPORTED("eigenvalue"),
    UNSUPPORTED("progressive_layer_drop"),
    UNSUPPORTED("checkpoint"),
    UNSUPPORTED("nebula"),
    UNSUPPORTED("hybrid_engine"),
    UNSUPPORTED("weight_quantization"),
    UNSUPPORTED("timers"),
};
TABLE(shardrt__json_root, json_keys, 0);
