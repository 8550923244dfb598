#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# --trace writes one Chrome/Perfetto trace per rank: valid JSON with compute
# spans per unit, each collective with its bytes, waits, and optimizer steps.
set -euo pipefail
BIN=${SHARDRT_BIN_DIR:?}; MPIRUN=${SHARDRT_MPIRUN:-mpirun}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$MPIRUN" --oversubscribe --bind-to none --mca btl self,vader -np 2 "$BIN/train_gpt" --quiet --preset tiny --steps 3 \
  --global_batch 4 --num_processes 2 --use_fsdp --fsdp_sharding_strategy FULL_SHARD \
  --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP --fsdp_transformer_layer_cls_to_wrap GPT2Block \
  --fsdp_forward_prefetch true --trace "$T/trace_%r.json" --log "$T/log.jsonl"
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
for rank in (0, 1):
    ev = json.load(open(f"{t}/trace_{rank}.json"))["traceEvents"]
    spans = [e for e in ev if e.get("ph") == "X"]
    cats = {e["cat"] for e in spans}
    assert {"forward", "backward", "comm", "wait", "step"} <= cats, f"rank {rank}: categories {cats}"
    for phase in ("forward", "backward"):
        names = {e["name"] for e in spans if e["cat"] == phase}
        assert any(n.startswith("h.") for n in names), f"rank {rank}: no per-block {phase} span in {names}"
        assert "root" in names, f"rank {rank}: no {phase} span of the root unit"
    # the root unit's forward encloses the blocks' forward spans
    fwd = [e for e in spans if e["cat"] == "forward"]
    root = [e for e in fwd if e["name"] == "root"][0]
    inner = [e for e in fwd if e["name"].startswith("h.") and e["ts"] >= root["ts"]][0]
    assert inner["ts"] + inner["dur"] <= root["ts"] + root["dur"] + 1e-3, (root, inner)
    comm = [e for e in spans if e["cat"] == "comm"]
    assert all(e["args"]["bytes"] > 0 for e in comm), "a collective without bytes"
    kinds = {e["name"] for e in comm}
    assert {"all_gather", "reduce_scatter"} <= kinds, kinds
    assert all(e["pid"] == rank for e in spans)
    print(f"rank {rank}: {len(spans)} spans, collectives {sorted(kinds)}")
log = [json.loads(l) for l in open(f"{t}/log.jsonl")]
for r in log:
    assert r["tokens_per_s"] > 0 and r["comm_time_s"] >= r["exposed_comm_s"] >= 0, r
PY
# A name without %r at world 2: every rank still writes its own valid file
# (the rank goes into the name), never one file both ranks write into.
SRC=${SHARDRT_SOURCE_DIR:?}
"$MPIRUN" --oversubscribe --bind-to none --mca btl self,vader -np 2 "$BIN/train_gpt" --quiet --preset tiny --steps 2 \
  --global_batch 4 --num_processes 2 --use_fsdp --fsdp_sharding_strategy FULL_SHARD \
  --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP --fsdp_transformer_layer_cls_to_wrap GPT2Block \
  --trace "$T/plain.json" 2> "$T/plain.err"
grep -q "has no %r" "$T/plain.err" || { echo "no warning about the missing %r:"; cat "$T/plain.err"; exit 1; }
test ! -e "$T/plain.json" || { echo "both ranks wrote into $T/plain.json"; exit 1; }
python3 "$SRC/tools/merge_traces.py" "$T/merged.json" "$T/plain.rank0.json" "$T/plain.rank1.json"
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
for rank in (0, 1):
    d = json.load(open(f"{t}/plain.rank{rank}.json"))
    spans = [e for e in d["traceEvents"] if e.get("ph") == "X"]
    assert spans and all(e["pid"] == rank for e in spans), f"rank {rank}: spans of other ranks"
    assert d["otherData"]["rank"] == rank and d["otherData"]["world_size"] == 2
    assert {"comm", "step"} <= {e["cat"] for e in spans}
m = json.load(open(f"{t}/merged.json"))
pids = {e["pid"] for e in m["traceEvents"] if e.get("ph") == "X"}
assert pids == {0, 1}, pids
print("plain name at world 2: plain.rank0.json, plain.rank1.json valid; merged trace has both ranks")
PY
echo "1 passed, 0 failed"
