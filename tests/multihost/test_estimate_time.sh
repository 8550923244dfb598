#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `shardrt estimate-time` against the formulas of docs/multihost.md, written
# out again here independently of the C code, for fp32 and bf16 plans on
# 2x8 and 8x8 ranks and a custom link; and its argument errors.
# usage: test_estimate_time.sh SHARDRT_BIN
set -euo pipefail
BIN=$1
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$BIN" estimate-time --num_params 7e9 --world_size 16 --gpus_per_node 8 --format json >"$T/a.json"
"$BIN" estimate-time --num_params 7e9 --world_size 64 --gpus_per_node 8 --mixed_precision bf16 --format json >"$T/b.json"
"$BIN" estimate-time --num_params 1e6 --world_size 12 --gpus_per_node 4 --nvlink_GBps 100 --net_Gbps 25 \
  --num_units 4 --mixed_precision bf16 --format json >"$T/c.json"
python3 - "$T" <<'PY'
import json, sys
d = sys.argv[1]

def expect(n, W, G, cdt, rdt, pdt, nv, net, U):
    """Per strategy: list of (kind, S bytes, group size, spans nodes?, exposed fraction)."""
    H = W // G
    first = 1.0 / U
    def full(g, span):
        return [("g", n * cdt, g, span, first), ("g", n * cdt, g, span, 0.0), ("r", n * rdt, g, span, first)]
    def zero2(g, span):
        return [("r", n * rdt, g, span, first), ("g", n * pdt, g, span, 1.0)]
    rep = [("a", n / G * rdt, H, H > 1, first)]
    plans = {
        "NO_SHARD": [("a", n * rdt, W, H > 1, first)],
        "ZERO1": [("a", n * rdt, W, H > 1, first), ("g", n * pdt, W, H > 1, 1.0)],
        "SHARD_GRAD_OP": zero2(W, H > 1),
        "FULL_SHARD": full(W, H > 1),
        "HYBRID_SHARD": full(G, False) + rep,
        "HYBRID_SHARD_ZERO2": zero2(G, False) + rep,
    }
    out = {}
    for name, colls in plans.items():
        intra = inter = node_out = comm = exposed = 0.0
        for kind, S, k, span, ex in colls:
            if k <= 1:
                continue
            f = 2.0 if kind == "a" else 1.0
            moved = f * S * (k - 1) / k                 # a ring's bytes per rank (nccl-tests busbw rule)
            secs = moved / (net * 1e9 / 8 if span else nv * 1e9)
            if span:
                inter += moved
                ranks_per_node_in_group = k / H
                node_out += (G / ranks_per_node_in_group) * f * S * (H - 1) / H
            else:
                intra += moved
            comm += secs
            exposed += ex * secs
        out[name] = dict(intra_node_bytes_per_rank=intra, inter_node_bytes_per_rank=inter, node_out_bytes=node_out,
                         comm_s=comm, exposed_s=exposed, must_hide_s=comm - exposed)
    return out

cases = {  # file: (n, W, G, compute, reduce, stored-param dtype bytes, NVLink GB/s, net Gbit/s, units)
    "a": (7e9, 16, 8, 4, 4, 4, 370, 400, 32),    # fp32: everything in fp32
    # bf16: gathers and reductions in bf16 (the plan's default reduce dtype is
    # the compute dtype, as accelerate's MixedPrecision policy), fp32 flat params
    "b": (7e9, 64, 8, 2, 2, 4, 370, 400, 32),
    "c": (1e6, 12, 4, 2, 2, 4, 100, 25, 4),
}
bad = 0
for f, args in cases.items():
    got = json.load(open(f"{d}/{f}.json"))["strategies"]
    want = expect(*args)
    assert set(got) == set(want), (f, sorted(got))
    for s, w in want.items():
        for k, v in w.items():
            # 1e-9 relative: the same sums in double, in another order.
            if abs(got[s][k] - v) > 1e-9 * max(abs(v), 1e-30):
                print(f"FAIL {f} {s} {k}: estimate-time {got[s][k]!r}, formula {v!r}")
                bad += 1
# The point of hybrid sharding at 8 nodes: a fraction of FULL_SHARD's network time.
b = json.load(open(f"{d}/b.json"))["strategies"]
assert b["HYBRID_SHARD"]["comm_s"] < 0.3 * b["FULL_SHARD"]["comm_s"], b
print("estimate-time matches the formulas" if not bad else f"{bad} mismatches")
sys.exit(1 if bad else 0)
PY
fails=0
err() { # pattern args...
  local pat=$1; shift
  if "$BIN" estimate-time "$@" >"$T/o" 2>"$T/e"; then echo "FAIL: accepted $*"; fails=$((fails + 1))
  elif ! grep -q -- "$pat" "$T/e"; then echo "FAIL: '$pat' not in:"; cat "$T/e"; fails=$((fails + 1)); fi
}
err "--num_params N is required" --world_size 8
err "not a multiple of --gpus_per_node 8" --num_params 1e9 --world_size 12
err "needs a number" --num_params 1e9 --net_Gbps -3
err "needs a number" --num_params lots
err "unknown argument --bogus" --num_params 1e9 --bogus 1
"$BIN" estimate-time --num_params 1e9 --compute_s 0.5 | grep -q "hide/compute" || { echo "FAIL: no hide/compute column"; fails=$((fails + 1)); }
[ "$fails" -eq 0 ] && echo "estimate-time argument checks passed"
exit "$fails"
