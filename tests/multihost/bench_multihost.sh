#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# FULL_SHARD against HYBRID_SHARD on 2 hosts x 2 ranks (network namespaces,
# netns_hosts.sh) with the inter-host link limited (default 1 Gbit/s and
# 1 ms; without tc netem in the kernel the delay is left out, as printed),
# side by side: step time, exposed communication, the cross-host bytes the
# runtime counts, the bytes the link carried and the least estimate-time
# says must leave the hosts.
#   bash tests/multihost/bench_multihost.sh [build/bin]
# Env: MH_RATE (1gbit), MH_DELAY (1ms), MH_HIDDEN (1024), MH_LAYERS (4),
#      MH_STEPS (12); SHARDRT_BENCH_QUICK=1 for a small, fast run (CI).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
BIN=$(cd "${1:-${SHARDRT_BIN_DIR:-$SRC/build/bin}}" && pwd)
source "$HERE/netns_hosts.sh"
RATE=${MH_RATE:-1gbit} DELAY=${MH_DELAY:-1ms}
HIDDEN=${MH_HIDDEN:-1024} LAYERS=${MH_LAYERS:-4} STEPS=${MH_STEPS:-12}
[ "${SHARDRT_BENCH_QUICK:-0}" = 1 ] && HIDDEN=256 LAYERS=2 STEPS=6
WARM=$((STEPS / 3))
T=$(mktemp -d)
trap 'mh_teardown; rm -rf "$T"' EXIT
mh_can_run
mh_setup 2 "$T"
mh_limit "$RATE" "$DELAY"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SHARDRT_MPIRUN_FLAGS="$MH_FLAGS"
MODEL=(--hidden "$HIDDEN" --layers "$LAYERS" --global_batch 32 --quiet)

run() { # strategy steps tag
  local w0 w1
  w0=$(mh_wire_bytes)
  timeout 600 ip netns exec "${MH_NS[0]}" unshare --uts sh -c 'hostname host0; exec "$@"' sh \
    "$BIN/shardrt" launch --hostfile "$T/hostfile" --config_file "$SRC/configs/fsdp_hybrid_shard.yaml" \
    --fsdp_sharding_strategy "$1" "$BIN/train_mlp" "${MODEL[@]}" --steps "$2" --log "$T/$3.jsonl" >"$T/$3.out" 2>&1 ||
    { cat "$T/$3.out"; exit 1; }
  w1=$(mh_wire_bytes)
  echo $((w1 - w0)) >"$T/$3.wire"
}
for s in FULL_SHARD HYBRID_SHARD; do
  run "$s" "$WARM" "${s}_warm"
  run "$s" "$STEPS" "$s"
done
for s in FULL_SHARD HYBRID_SHARD; do # the padded size depends on the shard group: fp32 reduce-scatter bytes / 4
  n=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])["comm_bytes"]["reduce_scatter"] // 4)' "$T/$s.jsonl")
  "$BIN/shardrt" estimate-time --num_params "$n" --world_size 4 --gpus_per_node 2 --format json >"$T/$s.est.json"
done
python3 - "$T" "$STEPS" "$WARM" "$MH_SHAPER" "$n" <<'PY'
import json, statistics, sys
d, steps, warm, shaper, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
print(f"2 hosts x 2 ranks, link {shaper}; train_mlp {n} parameters (padded), fp32, "
      f"median over steps {warm + 1}..{steps}")
print(f"{'strategy':14} {'step time':>10} {'exposed':>9} {'counted cross-host':>19} {'on the link':>12} "
      f"{'least (estimate)':>17}   (bytes per step)")
t, wire = {}, {}
for s in ("FULL_SHARD", "HYBRID_SHARD"):
    rows = [json.loads(l) for l in open(f"{d}/{s}.jsonl")][warm:]
    t[s] = statistics.median(r["step_time_s"] for r in rows)
    exp = statistics.median(r["exposed_comm_s"] for r in rows)
    counted = sum(rows[-1]["cross_host_bytes"].values())
    link = (int(open(f"{d}/{s}.wire").read()) - int(open(f"{d}/{s}_warm.wire").read())) / (steps - warm)
    least = 2 * json.load(open(f"{d}/{s}.est.json"))["strategies"][s]["node_out_bytes"]
    print(f"{s:14} {t[s] * 1e3:8.1f}ms {exp * 1e3:7.1f}ms {counted:>19} {link:>12.0f} {least:>17.0f}")
    wire[s] = link
print(f"FULL_SHARD / HYBRID_SHARD step time: {t['FULL_SHARD'] / t['HYBRID_SHARD']:.2f}x, "
      f"link bytes: {wire['FULL_SHARD'] / wire['HYBRID_SHARD']:.2f}x")
# Bytes, not times, are the invariant (times depend on the machine's load).
assert wire["HYBRID_SHARD"] < wire["FULL_SHARD"], "HYBRID_SHARD sent no fewer bytes across hosts than FULL_SHARD"
PY
