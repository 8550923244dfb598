#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""train_gpt on the GPU against train_gpt on the CPU, 10 steps of the tiny
preset with the same global batch (cuda label: exits 77 without a GPU).

  fp32      GPU NO_SHARD vs CPU NO_SHARD: first step within 1e-5 relative
            (test_gpt_cuda's forward bound), every step within 1e-4 (ten
            AdamW steps compound the per-step 1e-5 differences); GPU
            FULL_SHARD == GPU NO_SHARD within 1e-5 (same kernels, only the
            runtime's path differs); --tf32 trains.
  bf16      --mixed_precision bf16 on both (identical bf16 parameters): the
            GPU computes in bf16 on tensor cores, the CPU in fp32. First
            step within 2^-8 (one bf16 rounding of the loss, as derived in
            test_gpt_cuda.c); every step within 2e-2, the suite's bound for
            bf16 against fp32 training (run_gpt_equivalence.py: 1e-2), doubled
            because the GPU's bf16 activations add gradient noise of the same
            order as the bf16 parameters do. Both must train.
  fp16      --mixed_precision fp16 on both: the GPU computes in fp16 under
            the runtime's dynamic loss scaling (the CPU in fp32 with the same
            scaler). The bf16 bounds scaled by 2^-3 (fp16 keeps 11
            significant bits to bf16's 8): first step within 2^-11, every
            step within 2.5e-3; the two must skip the same steps (no fp16
            overflow on the GPU that fp32 would not have) and both train.
  recompute --fsdp_activation_checkpointing: the GPU re-runs each block's
            forward in its backward with the same kernels on the same inputs
            at the same alignment, and no kernel adds in a
            scheduling-dependent order (the embedding backward has no
            atomics), so in fp32, bf16 and fp16 the losses and gradient
            norms are the same numbers as without it (exactly, as logged
            with 9 significant digits). Flash attention's backward sums dQ
            with atomics, so it is compared with the CPU instead.

Environment (set by ctest): SHARDRT_BIN_DIR, SHARDRT_MPIRUN.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_losses  # noqa: E402

BIN = os.path.join(os.environ.get("SHARDRT_BIN_DIR", "build/bin"), "train_gpt")
MPIRUN = os.environ.get("SHARDRT_MPIRUN", "mpirun")
COMMON = ["--preset", "tiny", "--steps", "10", "--global_batch", "4", "--seed", "5", "--lr", "3e-3", "--quiet",
          "--use_fsdp", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
          "--fsdp_transformer_layer_cls_to_wrap", "GPT2Block"]


def have_gpu():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    p = subprocess.run([smi, "-L"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode == 0 and "GPU" in p.stdout


def train(tmp, name, flags):
    log = os.path.join(tmp, name + ".jsonl")
    cmd = [MPIRUN, "--oversubscribe", "--bind-to", "none", "-np", "1", BIN, *COMMON, "--log", log, *flags]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if p.returncode != 0:
        print(f"FAILED (exit {p.returncode}): {' '.join(cmd)}\n{p.stdout}", file=sys.stderr)
        sys.exit(1)
    return compare_losses.load_losses(log)


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{") and '"step"' in line]


def same_numbers(tmp, a, b):
    """'' when runs a and b logged the same loss, grad_norm and skipped flag
    at every step, else the first difference."""
    ra, rb = records(os.path.join(tmp, a + ".jsonl")), records(os.path.join(tmp, b + ".jsonl"))
    if len(ra) != len(rb) or not ra:
        return f"{a} logged {len(ra)} steps, {b} {len(rb)}"
    for x, y in zip(ra, rb):
        for k in ("loss", "grad_norm", "skipped"):
            if x.get(k) != y.get(k):
                return f"step {x.get('step')}: {k} {x.get(k)!r} ({a}) vs {y.get(k)!r} ({b})"
    return ""


def skipped(tmp, name):
    return [r.get("step") for r in records(os.path.join(tmp, name + ".jsonl")) if r.get("skipped")]


def check(msg, what):
    if msg:
        print(f"FAILED: {what}: {msg}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    if not have_gpu():
        print("run_gpt_cuda_equivalence: no GPU (nvidia-smi -L lists none): skipped")
        return 77
    if not os.path.exists(BIN):
        print(f"FAILED: {BIN} does not exist (build the train_gpt target)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="gpt_cuda_equiv_") as tmp:
        ns = ["--fsdp_sharding_strategy", "NO_SHARD"]
        fs = ["--fsdp_sharding_strategy", "FULL_SHARD"]
        cpu = train(tmp, "cpu_f32", ["--device", "cpu", *ns])
        gpu = train(tmp, "gpu_f32", ["--device", "cuda", *ns])
        check(compare_losses.compare(cpu[:1], gpu[:1], 1e-5), "fp32 GPU first step == CPU within 1e-5")
        check(compare_losses.compare(cpu, gpu, 1e-4), "fp32 GPU 10 steps == CPU within 1e-4")
        gpu_fs = train(tmp, "gpu_f32_full", ["--device", "cuda", *fs])
        check(compare_losses.compare(gpu, gpu_fs, 1e-5), "fp32 GPU FULL_SHARD == NO_SHARD within 1e-5")
        train(tmp, "gpu_f32_ckpt", ["--device", "cuda", *ns, "--fsdp_activation_checkpointing", "true"])
        check(same_numbers(tmp, "gpu_f32", "gpu_f32_ckpt"), "fp32 GPU with activation checkpointing == without, exactly")
        tf32 = train(tmp, "gpu_tf32", ["--device", "cuda", "--tf32", *ns])
        check(compare_losses.check_decreasing(tf32, 0.05), "fp32 GPU with --tf32 trains")
        cpu_bf = train(tmp, "cpu_bf16", ["--device", "cpu", "--mixed_precision", "bf16", *ns])
        gpu_bf = train(tmp, "gpu_bf16", ["--device", "cuda", "--mixed_precision", "bf16", *fs])
        check(compare_losses.check_decreasing(gpu_bf, 0.05), "bf16 GPU FULL_SHARD trains")
        check(compare_losses.compare(cpu_bf[:1], gpu_bf[:1], 2.0 ** -8), "bf16 GPU first step ~ CPU within 2^-8")
        check(compare_losses.compare(cpu_bf, gpu_bf, 2e-2), "bf16 GPU 10 steps ~ CPU within 2e-2")
        train(tmp, "gpu_bf16_ckpt", ["--device", "cuda", "--mixed_precision", "bf16", *fs,
                                     "--fsdp_activation_checkpointing", "true"])
        check(same_numbers(tmp, "gpu_bf16", "gpu_bf16_ckpt"), "bf16 GPU with activation checkpointing == without, exactly")
        flash = train(tmp, "gpu_bf16_flash", ["--device", "cuda", "--mixed_precision", "bf16", *fs,
                                              "--flash_attention"])
        check(compare_losses.compare(cpu_bf, flash, 2e-2), "bf16 GPU flash attention 10 steps ~ CPU within 2e-2")
        cpu_h = train(tmp, "cpu_fp16", ["--device", "cpu", "--mixed_precision", "fp16", *ns])
        gpu_h = train(tmp, "gpu_fp16", ["--device", "cuda", "--mixed_precision", "fp16", *fs])
        check(compare_losses.check_decreasing(gpu_h, 0.05), "fp16 GPU FULL_SHARD trains")
        check(compare_losses.compare(cpu_h[:1], gpu_h[:1], 2.0 ** -11), "fp16 GPU first step ~ CPU within 2^-11")
        check(compare_losses.compare(cpu_h, gpu_h, 2.5e-3), "fp16 GPU 10 steps ~ CPU within 2.5e-3")
        sk_c, sk_g = skipped(tmp, "cpu_fp16"), skipped(tmp, "gpu_fp16")
        check("" if sk_c == sk_g else f"CPU skipped steps {sk_c}, GPU {sk_g}", "fp16 GPU skips the steps the CPU skips")
        train(tmp, "gpu_fp16_ckpt", ["--device", "cuda", "--mixed_precision", "fp16", *fs,
                                     "--fsdp_activation_checkpointing", "true"])
        check(same_numbers(tmp, "gpu_fp16", "gpu_fp16_ckpt"), "fp16 GPU with activation checkpointing == without, exactly")
        hflash = train(tmp, "gpu_fp16_flash", ["--device", "cuda", "--mixed_precision", "fp16", *fs,
                                               "--flash_attention"])
        check(compare_losses.compare(cpu_h, hflash, 2.5e-3), "fp16 GPU flash attention 10 steps ~ CPU within 2.5e-3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
