#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Plots a trainer's JSONL step log (train_gpt --log, train_mlp --log).

    tools/plot_log.py LOG.jsonl OUT.png [--title TEXT]

Top panel: loss per step. Bottom panel: tokens/s per step when the log has
it (train_gpt), otherwise step time. Needs matplotlib (pip install
matplotlib); exits 1 with that instruction when it is missing, 2 on a bad
log.
"""
import argparse
import json
import math
import sys


def read_log(path):
    steps, loss, tps, step_time = [], [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                steps.append(int(rec["step"]))
                loss.append(float(rec["loss"]))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: not a step record with 'step' and 'loss' ({e})")
            tps.append(float(rec["tokens_per_s"]) if "tokens_per_s" in rec else math.nan)
            step_time.append(float(rec.get("step_time_s", math.nan)))
    if not steps:
        raise ValueError(f"{path}: no step records")
    return steps, loss, tps, step_time


def main(argv):
    ap = argparse.ArgumentParser(description="Plot loss and throughput from a JSONL step log.")
    ap.add_argument("log", help="JSONL step log written with --log")
    ap.add_argument("out", help="output image (.png, .svg, .pdf)")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_log: error: matplotlib is not installed; install it with\n"
              "    python3 -m pip install matplotlib", file=sys.stderr)
        return 1
    try:
        steps, loss, tps, step_time = read_log(args.log)
    except OSError as e:
        print(f"plot_log: error: cannot read {args.log}: {e.strerror}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"plot_log: error: {e}", file=sys.stderr)
        return 2

    have_tps = any(not math.isnan(v) for v in tps)
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    ax1.plot(steps, loss, color="tab:blue")
    ax1.set_ylabel("loss")
    ax1.grid(alpha=0.3)
    if have_tps:
        ax2.plot(steps, tps, color="tab:green")
        ax2.set_ylabel("tokens / s")
    else:
        ax2.plot(steps, [t * 1e3 for t in step_time], color="tab:orange")
        ax2.set_ylabel("step time (ms)")
    ax2.set_xlabel("step")
    ax2.grid(alpha=0.3)
    fig.suptitle(args.title or args.log)
    fig.tight_layout()
    try:
        fig.savefig(args.out, dpi=120)
    except (OSError, ValueError) as e:
        print(f"plot_log: error: cannot write {args.out}: {e}", file=sys.stderr)
        return 2
    print(f"plot_log: wrote {args.out} ({len(steps)} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
