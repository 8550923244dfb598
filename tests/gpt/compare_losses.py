#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Compares the per-step losses of train_gpt / train_mlp JSONL step logs.

    compare_losses.py A.jsonl B.jsonl [--rtol 1e-5]   same losses, step by step
    compare_losses.py --decreasing LOG.jsonl [--drop 0.05]
                                                     finite, and the last loss is
                                                     at least `drop` (relative)
                                                     below the first

Exit status 0 when the check holds, 1 (with the offending step) when it
does not, 2 for unreadable input. Standard library only.
"""
import argparse
import json
import math
import sys


class LogError(Exception):
    pass


def load_losses(path):
    """Returns [(step, loss)] in file order; raises LogError naming path:line."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    out.append((int(rec["step"]), float(rec["loss"])))
                except (ValueError, KeyError, TypeError) as e:
                    raise LogError(f"{path}:{lineno}: not a step record with 'step' and 'loss' ({e})")
    except OSError as e:
        raise LogError(f"cannot read {path}: {e.strerror}")
    if not out:
        raise LogError(f"{path}: no step records")
    return out


def compare(a, b, rtol):
    """Returns None when every step matches within rtol, else a message."""
    if [s for s, _ in a] != [s for s, _ in b]:
        return f"the logs cover different steps: {[s for s, _ in a]} vs {[s for s, _ in b]}"
    worst = 0.0
    for (step, la), (_, lb) in zip(a, b):
        if not (math.isfinite(la) and math.isfinite(lb)):
            return f"step {step}: non-finite loss ({la} vs {lb})"
        rel = abs(la - lb) / max(abs(la), abs(lb), 1e-30)
        worst = max(worst, rel)
        if rel > rtol:
            return f"step {step}: loss {la:.9g} vs {lb:.9g} (relative difference {rel:.3g} > {rtol:g})"
    return None


def check_decreasing(a, drop):
    for step, loss in a:
        if not math.isfinite(loss):
            return f"step {step}: loss is {loss}"
    first, last = a[0][1], a[-1][1]
    if not last < first * (1.0 - drop):
        return f"loss did not decrease by {drop:.0%}: step {a[0][0]} {first:.6g} -> step {a[-1][0]} {last:.6g}"
    return None


def main(argv):
    ap = argparse.ArgumentParser(description="Compare the losses of JSONL step logs.")
    ap.add_argument("logs", nargs="+")
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--decreasing", action="store_true")
    ap.add_argument("--drop", type=float, default=0.05)
    args = ap.parse_args(argv)
    try:
        logs = [load_losses(p) for p in args.logs]
    except LogError as e:
        print(f"compare_losses: error: {e}", file=sys.stderr)
        return 2
    if args.decreasing:
        for path, log in zip(args.logs, logs):
            msg = check_decreasing(log, args.drop)
            if msg:
                print(f"compare_losses: {path}: {msg}", file=sys.stderr)
                return 1
        return 0
    if len(logs) != 2:
        print("compare_losses: error: give exactly two logs to compare (or --decreasing)", file=sys.stderr)
        return 2
    msg = compare(logs[0], logs[1], args.rtol)
    if msg:
        print(f"compare_losses: {args.logs[0]} vs {args.logs[1]}: {msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
