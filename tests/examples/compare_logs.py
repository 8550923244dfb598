#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Compares per-step losses of JSONL step logs against a reference log.

usage: compare_logs.py REF.jsonl CAND.jsonl [CAND.jsonl ...] [--rtol X] [--weights REF.bin CAND.bin ...]
Exits 1 naming the first step (or weight) that differs by more than rtol.
"""
import json
import struct
import sys


def losses(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        sys.exit(f"{path}: empty log")
    return [r["loss"] for r in rows]


def weights(path):
    with open(path, "rb") as f:
        data = f.read()
    return struct.unpack(f"<{len(data) // 4}f", data)


def main(argv):
    rtol = 1e-5
    if "--rtol" in argv:
        i = argv.index("--rtol")
        rtol = float(argv[i + 1])
        del argv[i:i + 2]
    wfiles = []
    if "--weights" in argv:
        i = argv.index("--weights")
        wfiles = argv[i + 1:]
        del argv[i:]
    ref, cands = argv[0], argv[1:]
    r = losses(ref)
    for c in cands:
        l = losses(c)
        if len(l) != len(r):
            sys.exit(f"{c}: {len(l)} steps, reference {ref} has {len(r)}")
        for s, (a, b) in enumerate(zip(r, l), 1):
            if abs(a - b) > rtol * max(abs(a), 1e-12):
                sys.exit(f"{c}: step {s} loss {b!r} vs reference {a!r} (rtol {rtol})")
        if l[-1] >= l[0]:
            sys.exit(f"{c}: the loss did not fall ({l[0]} -> {l[-1]})")
        print(f"{c}: {len(l)} steps match {ref} within {rtol}")
    if wfiles:
        w0 = weights(wfiles[0])
        scale = max(abs(x) for x in w0)
        for wf in wfiles[1:]:
            w = weights(wf)
            if len(w) != len(w0):
                sys.exit(f"{wf}: {len(w)} weights, reference has {len(w0)}")
            worst = max(abs(a - b) for a, b in zip(w0, w))
            if worst > 10 * rtol * scale:
                sys.exit(f"{wf}: weights differ by {worst} (max |w| {scale})")
            print(f"{wf}: final weights match within {worst:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
