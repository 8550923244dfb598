#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the conformance configs (configs/*.yaml|json, configs/json/*).

They are shaped like the accelerate and DeepSpeed configs found in training
repositories (accelerate's templates, trl, alignment-handbook, peft, open-r1,
LLaMA-Factory, axolotl, DeepSpeedExamples, transformers' tests,
open-instruct...), written here from scratch: both dialects, every class of
issue #11, legacy spellings and "auto" wherever it may appear. The files are
committed; rerun this only to change the suite (then gen_golden.py)."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
C = os.path.join(HERE, "configs")
J = os.path.join(C, "json")

HEAD = "compute_environment: LOCAL_MACHINE\ndebug: false\n"
TAIL = ("machine_rank: 0\nmain_training_function: main\nnum_machines: {nm}\nnum_processes: {np}\n"
        "rdzv_backend: static\nsame_network: true\ntpu_env: []\ntpu_use_cluster: false\ntpu_use_sudo: false\n"
        "use_cpu: false\n")


def yaml(name, body, mp="bf16", np=8, nm=1, dist="FSDP"):
    text = HEAD + f"distributed_type: {dist}\ndowncast_bf16: 'no'\n" + body
    if mp is not None:
        text += f"mixed_precision: {mp}\n"
    text += TAIL.format(np=np, nm=nm)
    with open(os.path.join(C, name + ".yaml"), "w") as f:
        f.write(text)


def fsdp(name, keys, mp="bf16", np=8, nm=1, extra=""):
    body = "fsdp_config:\n" + "".join(f"  {k}: {v}\n" for k, v in keys.items()) + extra
    yaml(name, body, mp, np, nm)


def ds(name, keys, mp="bf16", np=8, nm=1, extra=""):
    body = "deepspeed_config:\n" + "".join(f"  {k}: {v}\n" for k, v in keys.items()) + extra
    yaml(name, body, mp, np, nm, dist="DEEPSPEED")


def dsjson(name, cfg, mp=None, np=4, ext="json", path_style="cwd"):
    fn = f"{name}.{ext}"
    with open(os.path.join(J, fn), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    ref = {"cwd": f"configs/json/{fn}", "beside": f"json/{fn}"}[path_style]
    ds(name, {"deepspeed_config_file": ref, "deepspeed_multinode_launcher": "standard"}, mp=mp, np=np)


os.makedirs(J, exist_ok=True)

# ---- FSDP, accelerate YAML ----
T = "TRANSFORMER_BASED_WRAP"
template = {"fsdp_auto_wrap_policy": T, "fsdp_backward_prefetch": "BACKWARD_PRE", "fsdp_cpu_ram_efficient_loading":
            "true", "fsdp_forward_prefetch": "false", "fsdp_offload_params": "false", "fsdp_sharding_strategy":
            "FULL_SHARD", "fsdp_state_dict_type": "SHARDED_STATE_DICT", "fsdp_sync_module_states": "true",
            "fsdp_use_orig_params": "true"}
fsdp("fsdp_accelerate_template", template)
fsdp("fsdp_trl_v1", {"fsdp_auto_wrap_policy": T, "fsdp_backward_prefetch": "BACKWARD_PRE",
                     "fsdp_cpu_ram_efficient_loading": "true", "fsdp_forward_prefetch": "true",
                     "fsdp_offload_params": "false", "fsdp_sharding_strategy": "FULL_SHARD",
                     "fsdp_state_dict_type": "FULL_STATE_DICT", "fsdp_sync_module_states": "true",
                     "fsdp_use_orig_params": "true"})
fsdp("fsdp_minimal_wrap_only", {"fsdp_auto_wrap_policy": T})
fsdp("fsdp_no_prefetch_key", {"fsdp_auto_wrap_policy": T, "fsdp_sharding_strategy": "FULL_SHARD",
                              "fsdp_state_dict_type": "SHARDED_STATE_DICT"})
fsdp("fsdp_no_loading_keys", {"fsdp_auto_wrap_policy": T, "fsdp_backward_prefetch": "BACKWARD_PRE",
                              "fsdp_sharding_strategy": "SHARD_GRAD_OP"}, mp="fp16")
fsdp("fsdp_ram_efficient_off", {"fsdp_auto_wrap_policy": T, "fsdp_cpu_ram_efficient_loading": "false"})
fsdp("fsdp_sync_off_only", {"fsdp_auto_wrap_policy": T, "fsdp_sync_module_states": "false"})
fsdp("fsdp_both_off", {"fsdp_auto_wrap_policy": T, "fsdp_cpu_ram_efficient_loading": "false",
                       "fsdp_sync_module_states": "false"})
fsdp("fsdp_ram_on_sync_off", {"fsdp_auto_wrap_policy": T, "fsdp_cpu_ram_efficient_loading": "true",
                              "fsdp_sync_module_states": "false"})
fsdp("fsdp_cls_named", dict(template, fsdp_transformer_layer_cls_to_wrap="LlamaDecoderLayer"))
fsdp("fsdp_cls_list", dict(template, fsdp_transformer_layer_cls_to_wrap="'GPT2Block,GPT2MLP'"))
fsdp("fsdp_strategy_int_1", {"fsdp_auto_wrap_policy": T, "fsdp_sharding_strategy": 1,
                             "fsdp_backward_prefetch_policy": "BACKWARD_PRE"})
fsdp("fsdp_strategy_int_2", {"fsdp_auto_wrap_policy": T, "fsdp_sharding_strategy": 2})
fsdp("fsdp_strategy_int_3", {"fsdp_auto_wrap_policy": T, "fsdp_sharding_strategy": 3}, mp="'no'")
fsdp("fsdp_strategy_int_4_two_nodes", {"fsdp_auto_wrap_policy": T, "fsdp_sharding_strategy": 4}, np=16, nm=2)
fsdp("fsdp_hybrid_zero2_two_nodes", {"fsdp_auto_wrap_policy": T, "fsdp_sharding_strategy": "HYBRID_SHARD_ZERO2"},
     np=16, nm=2)
fsdp("fsdp_shard_grad_op_post", {"fsdp_auto_wrap_policy": T, "fsdp_sharding_strategy": "SHARD_GRAD_OP",
                                 "fsdp_backward_prefetch": "BACKWARD_POST"})
fsdp("fsdp_no_prefetch_named", {"fsdp_auto_wrap_policy": T, "fsdp_backward_prefetch": "NO_PREFETCH"})
fsdp("fsdp_legacy_prefetch_policy", {"fsdp_auto_wrap_policy": T, "fsdp_backward_prefetch_policy": "BACKWARD_PRE"})
fsdp("fsdp_size_based", {"fsdp_auto_wrap_policy": "SIZE_BASED_WRAP", "fsdp_min_num_params": 100000000,
                         "fsdp_sharding_strategy": "FULL_SHARD"})
fsdp("fsdp_size_based_small", {"fsdp_auto_wrap_policy": "SIZE_BASED_WRAP", "fsdp_min_num_params": 2000})
fsdp("fsdp_no_wrap", {"fsdp_auto_wrap_policy": "NO_WRAP", "fsdp_sharding_strategy": "FULL_SHARD"})
fsdp("fsdp_offload", dict(template, fsdp_offload_params="true"))
fsdp("fsdp_fp16", dict(template), mp="fp16")
fsdp("fsdp_no_mixed_precision", dict(template), mp="'no'")
fsdp("fsdp_no_mixed_precision_bare", dict(template), mp="no")
fsdp("fsdp_unprefixed_keys", {"auto_wrap_policy": T, "sharding_strategy": "SHARD_GRAD_OP",
                              "backward_prefetch": "BACKWARD_PRE", "state_dict_type": "FULL_STATE_DICT"})
fsdp("fsdp_activation_ckpt", dict(template, fsdp_activation_checkpointing="true"))
fsdp("fsdp_local_state_dict", {"fsdp_auto_wrap_policy": T, "fsdp_state_dict_type": "LOCAL_STATE_DICT"})
fsdp("fsdp_v1_reshard_only", {"fsdp_auto_wrap_policy": T, "fsdp_reshard_after_forward": "SHARD_GRAD_OP",
                              "fsdp_version": 1})
fsdp("fsdp_orig_params_false", dict(template, fsdp_use_orig_params="false"))
fsdp("fsdp_with_unselected_ds", {"fsdp_auto_wrap_policy": T},
     extra="deepspeed_config:\n  deepspeed_config_file: configs/json/does_not_exist.json\n  zero3_init_flag: true\n")
# FSDP2
v2 = {"fsdp_activation_checkpointing": "false", "fsdp_auto_wrap_policy": T, "fsdp_cpu_ram_efficient_loading": "true",
      "fsdp_offload_params": "false", "fsdp_reshard_after_forward": "true", "fsdp_state_dict_type":
      "SHARDED_STATE_DICT", "fsdp_version": 2}
fsdp("fsdp2_handbook", v2)
fsdp("fsdp2_reshard_false", dict(v2, fsdp_reshard_after_forward="false"))
fsdp("fsdp2_strategy_only_sgo", {"fsdp_auto_wrap_policy": T, "fsdp_sharding_strategy": "SHARD_GRAD_OP",
                                 "fsdp_version": 2})
fsdp("fsdp2_strategy_hybrid", {"fsdp_auto_wrap_policy": T, "fsdp_sharding_strategy": "HYBRID_SHARD",
                               "fsdp_version": 2})
fsdp("fsdp2_minimal", {"fsdp_version": 2})
fsdp("fsdp2_cls_named", dict(v2, fsdp_transformer_layer_cls_to_wrap="Qwen2DecoderLayer"))
fsdp("fsdp2_full_state_dict", dict(v2, fsdp_state_dict_type="FULL_STATE_DICT"))
fsdp("fsdp2_offload_fp16", dict(v2, fsdp_offload_params="true"), mp="fp16")
fsdp("fsdp2_ram_off", dict(v2, fsdp_cpu_ram_efficient_loading="false"))
fsdp("fsdp2_obsolete_keys", dict(v2, fsdp_use_orig_params="true", fsdp_sync_module_states="true"))
fsdp("fsdp2_parallelism_dp", v2, np=8,
     extra="parallelism_config:\n  parallelism_config_dp_replicate_size: 2\n  parallelism_config_dp_shard_size: 4\n")
fsdp("fsdp2_parallelism_tp", v2, np=8,
     extra="parallelism_config:\n  parallelism_config_dp_shard_size: 4\n  parallelism_config_tp_size: 2\n")
fsdp("fsdp2_parallelism_cp", v2, np=8,
     extra="parallelism_config:\n  parallelism_config_dp_shard_size: 4\n  parallelism_config_cp_size: 2\n"
     "  parallelism_config_cp_backend: torch\n")
fsdp("fsdp1_parallelism", template, np=8,
     extra="parallelism_config:\n  parallelism_config_dp_replicate_size: 2\n  parallelism_config_dp_shard_size: 4\n")

# ---- DeepSpeed, accelerate YAML ----
base = {"offload_optimizer_device": "none", "offload_param_device": "none"}
ds("ds_yaml_zero0", dict(base, zero_stage=0))
ds("ds_yaml_zero1", dict(base, zero_stage=1, gradient_accumulation_steps=1))
ds("ds_yaml_zero2", dict(base, zero_stage=2, gradient_accumulation_steps=4))
ds("ds_yaml_zero2_clip", dict(base, zero_stage=2, gradient_clipping=1.0))
ds("ds_yaml_zero2_clip_half", dict(base, zero_stage=2, gradient_clipping=0.5), mp="fp16")
ds("ds_yaml_zero3", dict(base, zero_stage=3, zero3_save_16bit_model="true"))
ds("ds_yaml_zero3_init_false", dict(base, zero_stage=3, zero3_init_flag="false"))
ds("ds_yaml_zero3_init_true", dict(base, zero_stage=3, zero3_init_flag="true", zero3_save_16bit_model="false"))
ds("ds_yaml_zero2_init_true", dict(base, zero_stage=2, zero3_init_flag="true"))
ds("ds_yaml_zero3_offload_cpu", {"offload_optimizer_device": "cpu", "offload_param_device": "cpu", "zero_stage": 3,
                                 "zero3_init_flag": "true", "zero3_save_16bit_model": "true"})
ds("ds_yaml_zero2_offload_opt", {"offload_optimizer_device": "cpu", "offload_param_device": "none", "zero_stage": 2})
ds("ds_yaml_zero3_nvme", {"offload_optimizer_device": "nvme", "offload_optimizer_nvme_path": "/local_nvme",
                          "offload_param_device": "nvme", "offload_param_nvme_path": "/local_nvme",
                          "zero_stage": 3})
ds("ds_yaml_no_mp", dict(base, zero_stage=2), mp="'no'")
ds("ds_yaml_fp16", dict(base, zero_stage=3), mp="fp16")
ds("ds_yaml_minimal", {"zero_stage": 2}, mp=None)
ds("ds_yaml_stage_only_3", {"zero_stage": 3}, mp=None)

# ---- DeepSpeed JSON through deepspeed_config_file ----
A = "auto"
hf_z2 = {"fp16": {"enabled": A, "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16,
                  "hysteresis": 2, "min_loss_scale": 1}, "bf16": {"enabled": A},
         "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memory": True},
                               "allgather_partitions": True, "allgather_bucket_size": 2e8, "overlap_comm": True,
                               "reduce_scatter": True, "reduce_bucket_size": A, "contiguous_gradients": True},
         "gradient_accumulation_steps": A, "gradient_clipping": A, "steps_per_print": 2000,
         "train_batch_size": A, "train_micro_batch_size_per_gpu": A, "wall_clock_breakdown": False}
dsjson("ds_hf_zero2_auto", hf_z2)
hf_z3 = {"fp16": {"enabled": A}, "bf16": {"enabled": A},
         "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "none"}, "offload_param": {"device": "none"},
                               "overlap_comm": True, "contiguous_gradients": True, "sub_group_size": 1e9,
                               "reduce_bucket_size": A, "stage3_prefetch_bucket_size": A,
                               "stage3_param_persistence_threshold": A, "stage3_max_live_parameters": 1e9,
                               "stage3_max_reuse_distance": 1e9, "stage3_gather_16bit_weights_on_model_save": A},
         "gradient_accumulation_steps": A, "gradient_clipping": A, "steps_per_print": 2000,
         "train_batch_size": A, "train_micro_batch_size_per_gpu": A, "wall_clock_breakdown": False}
dsjson("ds_hf_zero3_auto", hf_z3)
dsjson("ds_hf_zero3_auto_fp16", dict(hf_z3, fp16={"enabled": True, "loss_scale": 0, "initial_scale_power": 16}))
dsjson("ds_hf_zero3_auto_nomp", hf_z3, mp="'no'")
dsjson("ds_json_zero2_no_clip", {"zero_optimization": {"stage": 2}, "bf16": {"enabled": True},
                                 "train_micro_batch_size_per_gpu": 4})
dsjson("ds_json_zero1_no_overlap_key", {"zero_optimization": {"stage": 1}, "bf16": {"enabled": True},
                                        "gradient_clipping": 1.0})
dsjson("ds_json_zero2_overlap_false", {"zero_optimization": {"stage": 2, "overlap_comm": False},
                                       "gradient_clipping": 1.0})
dsjson("ds_json_zero3_no_overlap_key", {"zero_optimization": {"stage": 3}, "fp16": {"enabled": True}})
dsjson("ds_json_zero0", {"zero_optimization": {"stage": 0}, "bf16": {"enabled": True}, "gradient_clipping": 1.0})
dsjson("ds_json_unprefixed", {"zero_optimization": {"stage": 3, "max_live_parameters": 3e8, "max_reuse_distance": 2e8,
                                                    "prefetch_bucket_size": 1e7, "param_persistence_threshold": 1e4,
                                                    "gather_16bit_weights_on_model_save": True},
                              "bf16": {"enabled": True}})
dsjson("ds_json_auto_unfilled", {"zero_optimization": {"stage": 3, "stage3_max_live_parameters": A,
                                                       "stage3_max_reuse_distance": A},
                                 "bf16": {"enabled": A}, "gradient_clipping": A})
dsjson("ds_json_comment_keys", {"_comment": "ZeRO-2 for 8 GPUs", "cuda_visible_devices": "0,1,2,3",
                                "zero_optimization": {"stage": 2}, "bf16": {"enabled": True}})
dsjson("ds_json_comm_fp32", {"zero_optimization": {"stage": 2}, "bf16": {"enabled": True},
                             "communication_data_type": "fp32"})
dsjson("ds_json_comm_bf16_fp16", {"zero_optimization": {"stage": 3}, "fp16": {"enabled": True},
                                  "communication_data_type": "fp16", "gradient_clipping": 1.0})
dsjson("ds_json_hpz", {"zero_optimization": {"stage": 3, "zero_hpz_partition_size": 2}, "bf16": {"enabled": True}})
dsjson("ds_json_offload_both", {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu",
                                "pin_memory": True}, "offload_param": {"device": "cpu", "pin_memory": True}},
                                "bf16": {"enabled": True}, "gradient_clipping": 1.0})
dsjson("ds_json_offload_param_stage2", {"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}},
                                        "bf16": {"enabled": True}})
dsjson("ds_json_legacy_fp16_save", {"zero_optimization": {"stage": 3, "stage3_gather_fp16_weights_on_model_save": True},
                                    "fp16": {"enabled": True}})
dsjson("ds_json_bfloat16_key", {"zero_optimization": {"stage": 2}, "bfloat16": {"enabled": True}})
dsjson("ds_json_accum_8", {"zero_optimization": {"stage": 2}, "gradient_accumulation_steps": 8,
                           "train_micro_batch_size_per_gpu": 2, "bf16": {"enabled": True}})
dsjson("ds_json_buckets", {"zero_optimization": {"stage": 2, "allgather_bucket_size": 5e8, "reduce_bucket_size": 5e8,
                                                 "contiguous_gradients": False}, "gradient_clipping": 1.0})
dsjson("ds_json_torch_autocast_off", {"zero_optimization": {"stage": 2}, "bf16": {"enabled": True},
                                      "torch_autocast": {"enabled": False}})
dsjson("ds_json_comms_config_quiet", {"zero_optimization": {"stage": 2}, "bf16": {"enabled": True},
                                      "comms_logger": {"enabled": False}, "comms_config": {"verbose": False}})
dsjson("ds_json_compile_on", {"zero_optimization": {"stage": 2}, "bf16": {"enabled": True},
                              "compile": {"enabled": True, "backend": "inductor"}})
dsjson("ds_json_data_efficiency", {"zero_optimization": {"stage": 2}, "bf16": {"enabled": True},
                                   "data_efficiency": {"enabled": True, "seed": 1234}})
dsjson("ds_json_optimizer_auto", {"zero_optimization": {"stage": 2}, "bf16": {"enabled": A},
                                  "optimizer": {"type": "AdamW", "params": {"lr": A, "betas": [0.9, 0.95],
                                                "eps": 1e-8, "weight_decay": A}},
                                  "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": A,
                                                "warmup_max_lr": A, "warmup_num_steps": A, "total_num_steps": A}},
                                  "gradient_clipping": A, "gradient_accumulation_steps": A,
                                  "train_micro_batch_size_per_gpu": A})
dsjson("ds_json_fp16_loss_scale", {"zero_optimization": {"stage": 2}, "fp16": {"enabled": True, "loss_scale": 0,
                                   "initial_scale_power": 12, "loss_scale_window": 500, "hysteresis": 2,
                                   "min_loss_scale": 1}, "gradient_clipping": 1.0})
dsjson("ds_json_conf_ext", {"bf16": {"enabled": True}, "zero_optimization": {"stage": 3, "overlap_comm": True,
                            "contiguous_gradients": True, "sub_group_size": 1e9, "reduce_bucket_size": A,
                            "stage3_prefetch_bucket_size": A, "stage3_param_persistence_threshold": A,
                            "stage3_max_live_parameters": 1e9, "stage3_max_reuse_distance": 1e9,
                            "stage3_gather_16bit_weights_on_model_save": True},
                            "gradient_accumulation_steps": A, "gradient_clipping": A, "steps_per_print": 1e5,
                            "train_batch_size": A, "train_micro_batch_size_per_gpu": A, "wall_clock_breakdown": False},
       ext="conf")
dsjson("ds_json_stage_auto", {"zero_optimization": {"stage": A}, "bf16": {"enabled": A}})
dsjson("ds_json_beside_yaml", {"zero_optimization": {"stage": 2}, "bf16": {"enabled": True}}, path_style="beside")
dsjson("ds_json_fp16_vs_yaml_bf16", {"zero_optimization": {"stage": 2}, "fp16": {"enabled": True}}, mp="bf16")
dsjson("ds_json_zero3_mp_none", {"zero_optimization": {"stage": 3, "overlap_comm": False}, "gradient_clipping": 2.0})

# ---- other distributed types, and accelerate configs saved as JSON ----
yaml("multi_gpu_basic", "gpu_ids: all\n", mp="bf16", np=8, dist="MULTI_GPU")
yaml("no_with_ds_file", "deepspeed_config:\n  deepspeed_config_file: configs/json/missing_on_purpose.json\n",
     mp="'no'", np=1, dist="'NO'")
for name, cfg in (("accel_json_fsdp", {"compute_environment": "LOCAL_MACHINE", "distributed_type": "FSDP",
                                       "fsdp_config": {"fsdp_auto_wrap_policy": T, "fsdp_sharding_strategy":
                                                       "FULL_SHARD", "fsdp_version": 1},
                                       "mixed_precision": "bf16", "num_machines": 1, "num_processes": 4}),
                  ("accel_json_ds", {"compute_environment": "LOCAL_MACHINE", "distributed_type": "DEEPSPEED",
                                     "deepspeed_config": {"zero_stage": 3, "offload_optimizer_device": "none",
                                                          "offload_param_device": "none"},
                                     "mixed_precision": "fp16", "num_machines": 1, "num_processes": 4})):
    with open(os.path.join(C, name + ".json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
print(len([n for n in os.listdir(C) if os.path.isfile(os.path.join(C, n))]), "configs")
