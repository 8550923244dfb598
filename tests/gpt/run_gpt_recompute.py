#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Activation checkpointing in train_gpt's CPU model is exact and saves memory.

Each case trains the same model twice, without and with recompute
(fsdp_activation_checkpointing: true in the config, or train_gpt's
--activation_checkpointing flag), and requires:
  - the step log's losses to be the same bits (the log prints 9 significant
    digits: the float's shortest exact form) and the saved weights
    (--weights_out, raw fp32) to be byte-identical: recompute re-runs the
    same operations on the same inputs, so nothing may differ, not even
    rounding;
  - act_peak_bytes to fall, and under recompute to grow with depth by
    exactly one residual stream (B*T*C floats) per layer, since only the
    block inputs are kept per layer.
The cases cover world 1 and 2, FULL_SHARD / SHARD_GRAD_OP / NO_SHARD /
HYBRID_SHARD, gradient accumulation (the one slot is re-filled across
micro-batches), bf16 mixed precision and a DeepSpeed ZeRO-3 config.

Environment (set by ctest): SHARDRT_BIN_DIR, SHARDRT_MPIRUN.
"""
import json
import os
import subprocess
import sys
import tempfile

BIN = os.path.join(os.environ.get("SHARDRT_BIN_DIR", "build/bin"), "train_gpt")
MPIRUN = os.environ.get("SHARDRT_MPIRUN", "mpirun")
MPI_FLAGS = ["--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader"]
# 3 layers: the backward of blocks 0 and 1 must recompute (the last block's
# activations are still in the slot after the forward)
COMMON = ["--preset", "tiny", "--n_layer", "3", "--steps", "4", "--seed", "11", "--lr", "3e-3", "--quiet"]

FSDP_YAML = """distributed_type: FSDP
mixed_precision: '{mp}'
num_processes: {np}
fsdp_config:
  fsdp_sharding_strategy: {strategy}
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: GPT2Block
  fsdp_activation_checkpointing: {ac}
"""
DS_YAML = """distributed_type: DEEPSPEED
mixed_precision: 'no'
num_processes: {np}
deepspeed_config:
  zero_stage: 3
  gradient_accumulation_steps: {accum}
"""


def run(cmd, timeout=300):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if p.returncode != 0:
        print(f"FAILED (exit {p.returncode}): {' '.join(cmd)}\n{p.stdout}", file=sys.stderr)
        sys.exit(1)
    return p


def records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def raw_losses(path):
    """The loss fields as printed (strings), so equality is bit equality."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(line.split('"loss": ', 1)[1].split(",", 1)[0])
    return out


def train(tmp, name, np, cfg_text, flags):
    cfg = os.path.join(tmp, name + ".yaml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(cfg_text)
    log, weights = os.path.join(tmp, name + ".jsonl"), os.path.join(tmp, name + ".bin")
    cmd = [MPIRUN, *MPI_FLAGS, "-np", str(np), BIN, "--config_file", cfg, *COMMON, *flags,
           "--log", log, "--weights_out", weights]
    run(cmd)
    with open(weights, "rb") as f:
        w = f.read()
    recs = records(log)
    return raw_losses(log), w, recs[-1]["act_peak_bytes"]


def fail(msg):
    print(f"FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def case(tmp, name, np, make_cfg, flags=(), via_flag=False):
    flags = list(flags)
    off = train(tmp, name + "_off", np, make_cfg(False), flags)
    on = train(tmp, name + "_on", np, make_cfg(not via_flag),
               flags + (["--activation_checkpointing"] if via_flag else []))
    if off[0] != on[0]:
        fail(f"{name}: losses differ with recompute:\n  off {off[0]}\n  on  {on[0]}")
    if off[1] != on[1]:
        diff = next(i for i in range(min(len(off[1]), len(on[1]))) if off[1][i] != on[1][i])
        fail(f"{name}: saved weights differ with recompute (first differing byte {diff} of {len(off[1])})")
    if not on[2] < off[2]:
        fail(f"{name}: act_peak_bytes did not fall: {off[2]} without, {on[2]} with recompute")
    print(f"ok: {name}: losses {on[0][0]} .. {on[0][-1]} and {len(on[1])} weight bytes identical; "
          f"activations {off[2]} -> {on[2]} bytes ({on[2] / off[2]:.2f}x)")


def depth_growth(tmp):
    """Under recompute only the residual stream is kept per layer."""
    gb = 4
    sizes = {}
    for layers in (3, 6):
        cfg = FSDP_YAML.format(mp="no", np=1, strategy="FULL_SHARD", ac="true")
        path = os.path.join(tmp, f"depth{layers}.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(cfg)
        log = os.path.join(tmp, f"depth{layers}.jsonl")
        flags = [x for x in COMMON if x not in ("--n_layer", "3")]
        run([MPIRUN, *MPI_FLAGS, "-np", "1", BIN, "--config_file", path, *flags, "--n_layer", str(layers),
             "--steps", "1", "--global_batch", str(gb), "--log", log])
        sizes[layers] = records(log)[-1]["act_peak_bytes"]
    T, C = 32, 32  # the tiny preset
    want = 3 * gb * T * C * 4
    if sizes[6] - sizes[3] != want:
        fail(f"recompute: 3 more layers added {sizes[6] - sizes[3]} activation bytes, want {want} "
             "(one fp32 residual stream per layer)")
    print(f"ok: recompute: 3 more layers add exactly 3 residual streams ({want} bytes)")


def main():
    if not os.path.exists(BIN):
        fail(f"{BIN} does not exist (build the train_gpt target)")
    with tempfile.TemporaryDirectory(prefix="gpt_recompute_") as tmp:
        def fsdp(np, strategy, mp="no"):
            return lambda ac: FSDP_YAML.format(mp=mp, np=np, strategy=strategy, ac="true" if ac else "false")
        case(tmp, "FULL_SHARD_w1", 1, fsdp(1, "FULL_SHARD"), ["--global_batch", "4"])
        case(tmp, "FULL_SHARD_w2", 2, fsdp(2, "FULL_SHARD"), ["--global_batch", "4"])
        case(tmp, "SHARD_GRAD_OP_w2_accum2", 2, fsdp(2, "SHARD_GRAD_OP"),
             ["--global_batch", "8", "--gradient_accumulation_steps", "2"])
        case(tmp, "NO_SHARD_w2", 2, fsdp(2, "NO_SHARD"), ["--global_batch", "4"])
        case(tmp, "HYBRID_SHARD_w2", 2, fsdp(2, "HYBRID_SHARD"), ["--global_batch", "4"])
        case(tmp, "FULL_SHARD_w2_bf16", 2, fsdp(2, "FULL_SHARD", mp="bf16"), ["--global_batch", "4"])
        case(tmp, "ZeRO3_w2_flag", 2, lambda ac: DS_YAML.format(np=2, accum=1), ["--global_batch", "4"],
             via_flag=True)
        depth_growth(tmp)


if __name__ == "__main__":
    main()
