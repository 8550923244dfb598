#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""PyTorch twin of examples/train_gpt on the CPU, for the side-by-side
benchmark tests/bench/cpu_gpt_vs_torch.sh. Not a test and not a dependency
of the library (needs torch >= 2.6 for --mode fsdp2).

Trains train_gpt's model (gpt_torch_model.py: same modules, parameter
names, order, init scale) in fp32 on train_gpt's data order, with
torch.optim.AdamW at train_gpt's defaults (lr 1e-3, betas 0.9/0.999, eps
1e-8, weight decay 0.01 on every parameter, no clipping), one torch thread
per process, three ways:

  --mode plain   one process, a plain training loop          (vs train_gpt world 1)
  --mode ddp     DistributedDataParallel over gloo            (vs NO_SHARD)
  --mode fsdp2   fully_shard on every block, then the root,   (vs FULL_SHARD)
                 reshard_after_forward=True, over gloo

A step is what train_gpt's step log times: forward, backward, optimizer
step, zero_grad and the all-reduce of the loss for the log (world > 1).
The global batch is split over the ranks as train_gpt splits it (rank r
takes sequences r*rows .. r*rows+rows-1), so both see the same tokens; with
--init_weights (a `train_gpt --weights_out` file) they start from the same
weights too, and their losses agree step by step.

Prints one JSON line (rank 0; also to --json): tokens/s (global batch
tokens over the median step after --warmup), every step's time and loss,
the parameter count, and each rank's peak RSS (getrusage ru_maxrss).

  python3 torch_gpt_cpu.py --mode plain --preset small --batch 8 --steps 8
  python3 -m torch.distributed.run --standalone --nproc_per_node 2 torch_gpt_cpu.py --mode fsdp2 ...
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt_torch_model as gm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="plain", choices=["plain", "ddp", "fsdp2"])
    ap.add_argument("--preset", default="small", choices=sorted(gm.PRESETS))
    for k in ("n_layer", "n_embd", "n_head", "seq_len", "vocab"):
        ap.add_argument(f"--{k}", type=int, default=0, help="override the preset")
    ap.add_argument("--batch", type=int, default=8, help="global batch in sequences of seq_len tokens")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    ap.add_argument("--data", default=os.path.join(ROOT, "examples", "data", "corpus.txt"),
                    help="raw bytes, one token each (train_gpt's default corpus)")
    ap.add_argument("--seed", type=int, default=1234, help="train_gpt's --seed: the data order")
    ap.add_argument("--init_weights", default="", help="start from a `train_gpt --weights_out` file")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight_decay", type=float, default=0.01)
    ap.add_argument("--grad_norm", action="store_true",
                    help="also record each step's global gradient L2 norm (outside the timing)")
    ap.add_argument("--json", default="", help="also write the result line to this file")
    a = ap.parse_args(argv)
    if not 0 <= a.warmup < a.steps:
        ap.error(f"--warmup {a.warmup} must be in 0..--steps-1 ({a.steps - 1})")
    cfg = dict(gm.PRESETS[a.preset])
    for k in cfg:
        if getattr(a, k):
            cfg[k] = getattr(a, k)
    if cfg["n_embd"] % cfg["n_head"]:
        ap.error(f"n_embd {cfg['n_embd']} is not divisible by n_head {cfg['n_head']}")
    return a, cfg


def init_dist(mode):
    """gloo process group from torchrun's environment; world 1 for plain."""
    if mode == "plain":
        return None, 0, 1
    import torch.distributed as dist
    if "RANK" not in os.environ:
        raise SystemExit(f"torch_gpt_cpu: --mode {mode} needs torchrun (python -m torch.distributed.run)")
    dist.init_process_group("gloo")
    return dist, dist.get_rank(), dist.get_world_size()


def main(argv=None):
    a, cfg = parse(argv)
    # one thread per process, as train_gpt's one BLAS thread per rank; set
    # before any parallel region runs
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    dist, rank, world = init_dist(a.mode)
    if a.batch % world:
        raise SystemExit(f"torch_gpt_cpu: --batch {a.batch} must be divisible by the world size {world}")
    rows, T = a.batch // world, cfg["seq_len"]

    torch.manual_seed(5)
    model = gm.GPT(**cfg)
    n_params = sum(p.numel() for p in model.parameters())
    if a.init_weights:
        gm.load_train_gpt_weights(model, a.init_weights)
    if a.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model)
    elif a.mode == "fsdp2":
        from torch.distributed.fsdp import fully_shard
        for blk in model.h:
            fully_shard(blk, reshard_after_forward=True)
        fully_shard(model, reshard_after_forward=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=a.weight_decay)

    tokens = gm.load_tokens(a.data)
    if int(tokens.max()) >= cfg["vocab"] or tokens.numel() < T + 1:
        raise SystemExit(f"torch_gpt_cpu: {a.data} needs > {T} tokens, each < vocab {cfg['vocab']}")
    # every step's slice of this rank, made before the timed loop
    batches = [gm.batch(tokens, a.seed, s, rank * rows, rows, T) for s in range(1, a.steps + 1)]

    times, losses, norms = [], [], []
    for x, y in batches:
        t0 = time.perf_counter()
        loss = model(x, y)
        loss.backward()
        if a.grad_norm:
            t_n = time.perf_counter()
            norms.append(grad_norm(model, dist))
            t0 += time.perf_counter() - t_n
        opt.step()
        opt.zero_grad(set_to_none=True)
        lv = loss.detach().clone()
        if dist is not None:
            dist.all_reduce(lv)
            lv /= world
        times.append(time.perf_counter() - t0)
        losses.append(float(lv))
    if not all(math.isfinite(v) for v in losses):
        print(f"torch_gpt_cpu: loss is not finite: {losses}", file=sys.stderr)
        return 1

    rss = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024], dtype=torch.int64)
    if dist is not None:
        all_rss = [torch.zeros_like(rss) for _ in range(world)]
        dist.all_gather(all_rss, rss)
        rss_list = [int(r) for r in all_rss]
    else:
        rss_list = [int(rss)]
    step = statistics.median(times[a.warmup:])
    res = dict(impl=f"torch_{a.mode}", torch=torch.__version__, threads=torch.get_num_threads(), world=world,
               **cfg, batch=a.batch, num_params=n_params, warmup=a.warmup, step_s=step,
               tokens_per_s=a.batch * T / step, step_times=times, losses=losses, peak_rss_bytes=rss_list)
    if norms:
        res["grad_norms"] = norms
    if rank == 0:
        line = json.dumps(res)
        print(line)
        if a.json:
            with open(a.json, "w", encoding="utf-8") as f:
                f.write(line + "\n")
    if dist is not None:
        dist.destroy_process_group()
    return 0


def grad_norm(model, dist):
    """Global L2 norm of the gradients, as train_gpt's step log reports it;
    with FSDP2 each rank holds a shard (a DTensor's local part)."""
    sq = torch.zeros((), dtype=torch.float64)
    for p in model.parameters():
        g = p.grad
        if g is None:
            continue
        g = g.to_local() if hasattr(g, "to_local") else g
        sq += g.double().square().sum()
    if dist is not None and hasattr(next(model.parameters()), "to_local"):
        dist.all_reduce(sq)
    return math.sqrt(float(sq))


if __name__ == "__main__":
    sys.exit(main())
