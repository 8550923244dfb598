#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""PyTorch FSDP2 twin of examples/train_gpt, for the side-by-side benchmark
(tests/bench/gpu_gpt_vs_torch.sh). Not a test and not a dependency of the
library: it needs torch >= 2.6 (fully_shard, MixedPrecisionPolicy).

The model is train_gpt's (gpt_torch_model.py, shared with the CPU
benchmark's torch_gpt_cpu.py): learned position embeddings, pre-LN blocks
(ln_1, c_attn, c_proj, ln_2, c_fc, GELU tanh, c_proj), ln_f and an UNTIED
lm_head without bias, the same parameter count; the loss is the mean token
cross-entropy. What a PyTorch user would write: causal attention through
F.scaled_dot_product_attention (flash attention on a GPU), fully_shard on
every block and then the root with a bf16 MixedPrecisionPolicy, fused
AdamW, optionally torch.compile.

Prints one JSON line: tokens/s (median step after warm-up), step time,
peak memory, loss of the first and last step, parameter count.

  python3 torch_gpt_fsdp2.py --preset gpt2 --batch 16 --steps 20 [--compile]
  torchrun --nproc_per_node 2 torch_gpt_fsdp2.py --preset tiny --device cpu   (gloo)
"""
import argparse
import json
import math
import os
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_torch_model import GPT, PRESETS  # noqa: E402  train_gpt's model, shared with torch_gpt_cpu.py


def flops_per_token(n_params, cfg):
    """llm.c's estimate: 6N for the parameters, 6 L C T for attention."""
    return 6 * n_params + 6 * cfg["n_layer"] * cfg["n_embd"] * cfg["seq_len"]


def init_dist(device):
    if "RANK" not in os.environ:  # a single process: world 1 without torchrun
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="gpt2", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=16, help="global batch in sequences of seq_len tokens")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5, help="steps left out of the timing (compile, autotune)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"], help="MixedPrecisionPolicy param dtype")
    ap.add_argument("--compile", action="store_true", help="torch.compile the sharded model")
    ap.add_argument("--no_shard", action="store_true", help="fully_shard with reshard_after_forward=False")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--peak_tflops", type=float, default=0.0, help="bf16 dense peak for MFU (0: not printed)")
    ap.add_argument("--json", default="", help="also write the result line to this file")
    a = ap.parse_args(argv)
    if a.warmup >= a.steps:
        ap.error(f"--warmup {a.warmup} must be smaller than --steps {a.steps}")

    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    rank, world = init_dist(a.device)
    if a.batch % world:
        ap.error(f"--batch {a.batch} must be divisible by the world size {world}")
    cfg = PRESETS[a.preset]
    dev = torch.device(a.device, int(os.environ.get("LOCAL_RANK", "0"))) if a.device == "cuda" else torch.device("cpu")
    torch.manual_seed(5)
    model = GPT(**cfg).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    pdt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    mp = MixedPrecisionPolicy(param_dtype=pdt, reduce_dtype=torch.float32)
    reshard = not a.no_shard
    for blk in model.h:
        fully_shard(blk, mp_policy=mp, reshard_after_forward=reshard)
    fully_shard(model, mp_policy=mp, reshard_after_forward=reshard)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.0,
                            fused=a.device == "cuda")
    step_fn = torch.compile(model) if a.compile else model

    rows = a.batch // world
    g = torch.Generator().manual_seed(1000 + rank)
    data = torch.randint(0, cfg["vocab"], (rows, cfg["seq_len"] + 1), generator=g).to(dev)
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, losses = [], []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step_fn(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        if a.device == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    losses = [float(v) for v in losses]
    if not all(math.isfinite(v) for v in losses):
        print(f"torch_gpt_fsdp2: loss is not finite: {losses}", file=sys.stderr)
        return 1
    step = statistics.median(times[a.warmup:])
    tok = a.batch * cfg["seq_len"] / step
    res = dict(impl="torch_fsdp2" + ("_compile" if a.compile else "_eager") + ("_noshard" if a.no_shard else ""),
               torch=torch.__version__, world=world, preset=a.preset, batch=a.batch, seq_len=cfg["seq_len"],
               num_params=n_params, step_s=step, tokens_per_s=tok, first_loss=losses[0], last_loss=losses[-1],
               flops_per_token=flops_per_token(n_params, cfg))
    if a.peak_tflops > 0:
        res["mfu"] = tok / world * res["flops_per_token"] / (a.peak_tflops * 1e12)
    if a.device == "cuda":
        res["peak_alloc_bytes"] = torch.cuda.max_memory_allocated(dev)
        res["peak_reserved_bytes"] = torch.cuda.max_memory_reserved(dev)
    if rank == 0:
        line = json.dumps(res)
        print(line)
        if a.json:
            with open(a.json, "w", encoding="utf-8") as f:
                f.write(line + "\n")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
