#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Cross-host bytes of 2-host runs: the runtime's counters against the group
layout, and the link counters against the least traffic the collectives need.

usage: check_cross_bytes.py DIR TAG:KIND ... [--estimate]   (KIND: hybrid | full)
DIR holds TAG.jsonl (20 steps), TAG_10.jsonl (10 steps) and TAG.wire /
TAG_10.wire (bytes the hosts sent onto their links during each run).

Least cross-host traffic for H hosts of P ranks (per step, both directions),
from rank 0's logical byte counters (nccl-tests' S of each call):
  full   (one shard group over all ranks): every host must receive the
         (H-1)/H of each gathered / reduced buffer it lacks:
         (H-1) * (all_gather + reduce_scatter)
  hybrid (shard groups inside hosts, replica groups of one rank per host):
         each of the P replica all-reduces of s bytes needs every host to
         send and receive (H-1)/H * s twice (reduce, then share):
         2 * (H-1) * P * all_reduce
With --estimate (DIR/TAG.est.json: `shardrt estimate-time --format json`
for the run's padded model size, world and ranks per host): its least bytes out of a node, times H, must be
the least above for the run's strategy, and the link bytes must lie within
[1, SLACK] of it too -- the cost model checked against measured traffic.
"""
import json
import sys

H, P = 2, 2
SLACK = 2.2  # ring / recursive doubling send up to 2x the least over 2 hosts; TCP/IP headers ~5%


def last(path):
    with open(path) as f:
        return json.loads(f.readlines()[-1])


def main(argv):
    use_est = "--estimate" in argv
    if use_est:
        argv.remove("--estimate")
    d, specs = argv[0], argv[1:]
    bad = 0
    rows = []
    for spec in specs:
        tag, kind = spec.split(":")
        rec = last(f"{d}/{tag}.jsonl")
        b, x = rec["comm_bytes"], rec["cross_host_bytes"]
        assert rec["hosts"] == H, f"{tag}: the runtime sees {rec['hosts']} hosts, want {H}"
        if kind == "hybrid":
            want = {"world": 0, "shard": 0, "replica": b["all_reduce"]}
            least = 2 * (H - 1) * P * b["all_reduce"]
            assert b["all_reduce"] > 0, f"{tag}: no replica all-reduce"
        else:
            want = {"world": 0, "shard": b["all_gather"] + b["reduce_scatter"], "replica": 0}
            least = (H - 1) * (b["all_gather"] + b["reduce_scatter"])
        if x != want:
            print(f"FAIL: {tag}: cross_host_bytes {x}, the {kind} layout gives {want}")
            bad += 1
        w20 = int(open(f"{d}/{tag}.wire").read())
        w10 = int(open(f"{d}/{tag}_10.wire").read())
        per_step = (w20 - w10) / 10
        ok = least <= per_step <= SLACK * least
        rows.append((tag, kind, sum(x.values()), least, per_step, per_step / least))
        if not ok:
            print(f"FAIL: {tag}: {per_step:.0f} link bytes per step, outside [{least}, {SLACK} x {least}]")
            bad += 1
        est = json.load(open(f"{d}/{tag}.est.json"))["strategies"] if use_est else {}
        if rec["strategy"] in est:
            model = H * est[rec["strategy"]]["node_out_bytes"]
            if abs(model - least) > 1e-9 * least:
                print(f"FAIL: {tag}: estimate-time says {model:.0f} bytes leave the hosts per step, "
                      f"the run's collectives need {least}")
                bad += 1
            else:
                print(f"{tag}: estimate-time's bytes out of the hosts ({model:.0f}/step) = the run's least; "
                      f"the link carried {per_step / model:.2f}x that")
    print(f"{'run':28} {'layout':6} {'counted':>10} {'least':>10} {'on the link':>12} {'ratio':>6}  (bytes/step)")
    for r in rows:
        print(f"{r[0]:28} {r[1]:6} {r[2]:>10} {r[3]:>10} {r[4]:>12.0f} {r[5]:>6.2f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
