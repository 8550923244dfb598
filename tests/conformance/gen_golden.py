#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Golden plans for the conformance configs, computed by the peers' own code.

For every file in configs/ this runs, in a fresh interpreter, what
`accelerate launch --config_file F train.py` does before the script starts
(accelerate.commands.launch: the parser, _validate_launch_command, then
prepare_multi_gpu_env / prepare_deepspeed_cmd_env), puts that environment in
place, builds the plugin the script's Accelerator would build
(FullyShardedDataParallelPlugin / DeepSpeedPlugin, then set_mixed_precision),
fills the DeepSpeed "auto" entries the way Accelerator._prepare_deepspeed
does, and reads the result through DeepSpeed's own config code
(deepspeed.runtime.config / deepspeed.runtime.zero.config). It writes one
golden/<config>.json per config: the fields of the plan that change the run,
or {"error": ...} when the peers refuse the config.

Needs accelerate 1.15.0, deepspeed 0.19.8 and torch (regen.sh makes a
throwaway virtual environment with them). CI does not run this: it compares
`shardrt plan --json` with the committed goldens (compare.py).
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PINNED = {"accelerate": "1.15.0", "deepspeed": "0.19.8"}
# The model the goldens assume when a DeepSpeed JSON leaves sizes "auto":
# those entries are reported as "auto" (libshardrt fills them from the
# program), the numbers only keep accelerate from refusing the config.
HIDDEN, MICRO = 64, 4


def dtype_name(dt):
    import torch
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dt]


def fsdp_plan(mp):
    import torch
    import accelerate.utils.dataclasses as acc_dc
    from accelerate.utils import FullyShardedDataParallelPlugin
    # sync_module_states makes the plugin pick the device its param_init_fn
    # moves to; this machine has none, and the device is no part of the plan.
    acc_dc.is_cuda_available = lambda: True
    torch.cuda.current_device = lambda: 0
    p = FullyShardedDataParallelPlugin()
    if mp != "no":
        p.set_mixed_precision(mp)
    out = {"distributed_type": "FSDP", "fsdp_version": p.fsdp_version, "mixed_precision": mp}
    if p.fsdp_version == 1:
        out["strategy"] = p.sharding_strategy.name.lstrip("_")  # torch spells it _HYBRID_SHARD_ZERO2
        out["backward_prefetch"] = p.backward_prefetch.name if p.backward_prefetch is not None else "NO_PREFETCH"
        out["forward_prefetch"] = bool(p.forward_prefetch)
        out["sync_module_states"] = bool(p.sync_module_states)
        out["use_orig_params"] = bool(p.use_orig_params)
    else:
        out["strategy"] = "FULL_SHARD" if p.reshard_after_forward else "SHARD_GRAD_OP"
        # accelerate's ParallelismConfig (from the launch environment) meshes
        # dp_replicate x dp_shard: HSDP, sharded within dp_shard
        if os.environ.get("ACCELERATE_USE_PARALLELISM_CONFIG") == "true":
            rep = int(os.environ.get("PARALLELISM_CONFIG_DP_REPLICATE_SIZE", "1"))
            shard = int(os.environ.get("PARALLELISM_CONFIG_DP_SHARD_SIZE", "1"))
            if rep > 1:
                out["strategy"] = "HYBRID_SHARD" if p.reshard_after_forward else "HYBRID_SHARD_ZERO2"
                out["shard_group_size"] = shard
    if p.fsdp_version == 1:
        out["offload_params"] = "cpu" if p.cpu_offload.offload_params else "none"
    else:
        from torch.distributed.fsdp import CPUOffloadPolicy
        out["offload_params"] = "cpu" if isinstance(p.cpu_offload, CPUOffloadPolicy) else "none"
    out["cpu_ram_efficient_loading"] = bool(p.cpu_ram_efficient_loading)
    pol = p.auto_wrap_policy
    name = getattr(pol, "__name__", getattr(getattr(pol, "func", None), "__name__", None)) if pol else None
    if name == "transformer_auto_wrap_policy":
        out["wrap_policy"] = "TRANSFORMER_BASED_WRAP"
        names = p.transformer_cls_names_to_wrap
        # None: accelerate wraps the model's _no_split_modules at prepare time
        out["wrap_classes_from"] = "config" if names else "program"
        out["wrap_classes"] = [n.strip() for n in names if n.strip()] if names else []
    elif name == "size_based_auto_wrap_policy":
        out["wrap_policy"] = "SIZE_BASED_WRAP"
        out["min_num_params"] = p.min_num_params
    else:
        out["wrap_policy"] = "NO_WRAP"
    out["state_dict_type"] = p.state_dict_type.name
    out["activation_checkpointing"] = bool(p.activation_checkpointing)
    # FSDP1 MixedPrecision / FSDP2 MixedPrecisionPolicy: reduce_dtype
    mpp = p.mixed_precision_policy
    out["reduce_dtype"] = dtype_name(mpp.reduce_dtype) if mpp is not None and mpp.reduce_dtype else "fp32"
    return out


def ds_plan(mp, num_processes):
    from accelerate.utils import DeepSpeedPlugin
    from deepspeed.runtime import config as dsc
    from deepspeed.runtime.precision_config import get_bfloat16_config, get_float16_config
    from deepspeed.runtime.zero.config import get_zero_config
    p = DeepSpeedPlugin()
    p.set_mixed_precision(mp)
    cfg = p.deepspeed_config
    zo = cfg.get("zero_optimization", {})
    hidden_auto = {k: zo.get(k) == "auto" for k in
                   ("reduce_bucket_size", "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold")}
    gas = p.get_value("gradient_accumulation_steps")
    gas = gas if isinstance(gas, int) else 1
    # Accelerator._prepare_deepspeed: its config_kwargs
    kw = {"gradient_clipping": 1.0, "zero_optimization.stage3_gather_16bit_weights_on_model_save": False,
          "train_micro_batch_size_per_gpu": MICRO, "train_batch_size": MICRO * gas * max(num_processes, 1),
          "zero_optimization.reduce_bucket_size": HIDDEN * HIDDEN,
          "zero_optimization.stage3_prefetch_bucket_size": int(0.9 * HIDDEN * HIDDEN),
          "zero_optimization.stage3_param_persistence_threshold": 10 * HIDDEN,
          # what a DummyOptim / DummyScheduler script passes (Accelerator._prepare_deepspeed)
          "optimizer.params.lr": 1e-3, "optimizer.params.weight_decay": 0.0, "scheduler.params.warmup_min_lr": 0,
          "scheduler.params.warmup_max_lr": 1e-3, "scheduler.params.warmup_num_steps": 10,
          "scheduler.params.total_num_steps": 100}
    p.fill_match("gradient_accumulation_steps", must_match=False, gradient_accumulation_steps=1)
    p.deepspeed_config_process(must_match=False, **kw)
    z = get_zero_config(cfg)
    stage = int(z.stage)
    strategy = ["NO_SHARD", "ZERO1", "SHARD_GRAD_OP", "FULL_SHARD"][stage]
    if stage == 3 and z.zero_hpz_partition_size > 1:
        strategy = "HYBRID_SHARD"
    fp16 = bool(get_float16_config(cfg).enabled)
    bf16 = bool(get_bfloat16_config(cfg).enabled)
    if fp16 and bf16:
        raise ValueError("bfloat16 and fp16 modes cannot be simultaneously enabled")  # DeepSpeedConfig's assert
    comm = dsc.get_communication_data_type(cfg)
    out = {"distributed_type": "DEEPSPEED", "strategy": strategy, "zero_stage": stage,
           "mixed_precision": "fp16" if fp16 else "bf16" if bf16 else "no",
           "reduce_dtype": dtype_name(comm) if comm is not None else "fp16" if fp16 else "bf16" if bf16 else "fp32",
           "gradient_clipping": float(dsc.get_gradient_clipping(cfg)),
           "gradient_accumulation_steps": int(cfg.get("gradient_accumulation_steps", 1)),
           "overlap_comm": bool(z.overlap_comm), "contiguous_gradients": bool(z.contiguous_gradients),
           "allgather_bucket_size": int(z.allgather_bucket_size),
           "max_live_parameters": int(z.max_live_parameters), "max_reuse_distance": int(z.max_reuse_distance),
           "save_16bit_model": bool(z.gather_16bit_weights_on_model_save),
           "cpu_ram_efficient_loading": bool(p.zero3_init_flag)}
    def dev(section):
        d = getattr(z, section)
        if d is None or d.device is None:
            return "none"
        return str(getattr(d.device, "value", d.device))
    out["offload_optimizer"] = dev("offload_optimizer")
    out["offload_params"] = dev("offload_param") if stage == 3 else "none"
    for key, plan_key, val in (("reduce_bucket_size", "reduce_bucket_size", z.reduce_bucket_size),
                               ("stage3_prefetch_bucket_size", "prefetch_bucket_size", z.prefetch_bucket_size),
                               ("stage3_param_persistence_threshold", "param_persistence_threshold",
                                z.param_persistence_threshold)):
        out[plan_key] = "auto" if hidden_auto[key] else int(val)
    return out


def one(path):
    """What accelerate launch + the plugins would run for one config."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env
    args = launch_command_parser().parse_args(["--config_file", path, "train.py"])
    args, defaults, mp_from_config_flag = _validate_launch_command(args)
    if args.use_deepspeed:
        # as launch_command does before deepspeed_launcher
        fields = list(defaults.deepspeed_config.keys()) if defaults else []
        if mp_from_config_flag:
            fields.append("mixed_precision")
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    elif args.use_fsdp or args.multi_gpu:
        env = prepare_multi_gpu_env(args)
    else:
        env = {"ACCELERATE_MIXED_PRECISION": str(args.mixed_precision)}
    os.environ.update(env)
    mp = env.get("ACCELERATE_MIXED_PRECISION", "no")
    if mp == "fp8":
        return {"error": "fp8 mixed precision"}
    if args.use_fsdp:
        return fsdp_plan(mp)
    if args.use_deepspeed:
        return ds_plan(mp, args.num_processes or 1)
    return {"distributed_type": "MULTI_GPU" if args.multi_gpu else "NO", "mixed_precision": mp}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        try:
            res = one(sys.argv[2])
        except Exception as e:  # the peers refuse the config
            res = {"error": f"{type(e).__name__}: {e}"[:400]}
        print(json.dumps(res, sort_keys=True))
        return 0
    import importlib.metadata as md
    for pkg, want in PINNED.items():
        have = md.version(pkg)
        if have != want:
            sys.exit(f"gen_golden: {pkg} {have} is installed, the goldens pin {want} (edit PINNED to move)")
    cdir, gdir = os.path.join(HERE, "configs"), os.path.join(HERE, "golden")
    env = dict(os.environ, DS_BUILD_OPS="0", CUDA_VISIBLE_DEVICES="", ACCELERATE_CONFIG_FILE="/nonexistent")
    names = sorted(n for n in os.listdir(cdir) if os.path.isfile(os.path.join(cdir, n)))
    only = sys.argv[1:]
    names = [n for n in names if not only or n in only]

    def run(name):
        r = subprocess.run([sys.executable, __file__, "--one", os.path.join("configs", name)], cwd=HERE, env=env,
                           capture_output=True, text=True, timeout=300)
        return name, r

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(run, names))
    for name, r in results:
        line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else json.dumps({"error": r.stderr[-400:]})
        res = json.loads(line)
        res["_peers"] = "accelerate %s, deepspeed %s" % (PINNED["accelerate"], PINNED["deepspeed"])
        with open(os.path.join(gdir, name + ".json"), "w") as f:
            json.dump(res, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"{name}: {'error' if 'error' in res else res.get('strategy', res['distributed_type'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
