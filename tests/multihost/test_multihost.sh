#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two hosts x two ranks, made of network namespaces (netns_hosts.sh), driven
# by `shardrt launch --hostfile` from host 0 as on a real cluster:
#  * HYBRID_SHARD, HYBRID_SHARD_ZERO2, FULL_SHARD and ZeRO-3 with hpZ
#    reproduce NO_SHARD at one rank (losses within 1e-5 relative and final
#    weights, the rule of tests/examples/train_mlp_equiv.sh);
#  * the runtime sees 2 hosts, and its cross-host byte counters follow the
#    groups: under the hybrid strategies only the replica all-reduce
#    crosses, under FULL_SHARD every all-gather and reduce-scatter does;
#  * the bytes that really crossed (the hosts' link counters, per step, from
#    the difference of a 10- and a 20-step run so start-up traffic cancels)
#    lie between the least any algorithm must send for those collectives
#    and 2.2 times it (Open MPI's ring / recursive doubling send up to 2x
#    the least across 2 hosts; TCP/IP headers add ~5%);
#  * ranks placed round-robin across hosts are renumbered host by host (a
#    note says so) and still train identically;
#  * HYBRID_SHARD whose config leaves num_machines at 1 shards per host;
#  * a config whose num_machines or layout disagrees with the hosts fails
#    with both named.
set -euo pipefail
BIN=${SHARDRT_BIN_DIR:?}; SRC=${SHARDRT_SOURCE_DIR:?}; MPIRUN=${SHARDRT_MPIRUN:-mpirun}
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/netns_hosts.sh"
T=$(mktemp -d)
trap 'mh_teardown; rm -rf "$T"' EXIT
mh_can_run
mh_setup 2 "$T"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SHARDRT_MPIRUN_FLAGS="$MH_FLAGS"
ARGS=(--num_processes 4 --num_machines 2)
TRAIN=(--quiet --global_batch 32 --lr 3e-3)

# Reference: NO_SHARD on one rank, on this machine.
ref() { # tag [extra]
  local tag=$1; shift
  "$MPIRUN" --oversubscribe --bind-to none --mca btl self,vader -np 1 "$BIN/train_mlp" --quiet \
    --config_file "$SRC/configs/fsdp_no_shard.yaml" --num_processes 1 --steps 20 --global_batch 32 --lr 3e-3 \
    --log "$T/$tag.jsonl" --weights_out "$T/$tag.bin" "$@"
}
ref ref
ref ref_clip --gradient_clipping 1.0 # the DeepSpeed configs clip at 1.0

# One launch across the two hosts; prints the link bytes it moved.
launch() { # config steps tag [extra]
  local cfg=$1 steps=$2 tag=$3; shift 3
  local w0 w1
  w0=$(mh_wire_bytes)
  timeout 300 ip netns exec "${MH_NS[0]}" unshare --uts sh -c 'hostname host0; exec "$@"' sh \
    "$BIN/shardrt" launch --hostfile "$T/hostfile" --config_file "$SRC/configs/$cfg" "${ARGS[@]}" "$@" \
    "$BIN/train_mlp" "${TRAIN[@]}" --steps "$steps" --log "$T/$tag.jsonl" --weights_out "$T/$tag.bin" >"$T/$tag.out" 2>&1 ||
    { echo "FAIL: $cfg on 2 hosts:"; cat "$T/$tag.out"; exit 1; }
  w1=$(mh_wire_bytes)
  echo $((w1 - w0)) >"$T/$tag.wire"
}

fsdp=(); fsdpw=("$T/ref.bin"); ds=(); dsw=("$T/ref_clip.bin")
for cfg in fsdp_hybrid_shard.yaml fsdp_hybrid_shard_zero2.yaml fsdp_full_shard.yaml ds_zero3_hpz.yaml; do
  tag=${cfg%.yaml}
  launch "$cfg" 10 "${tag}_10"
  launch "$cfg" 20 "$tag"
  if [[ $cfg == ds_* ]]; then ds+=("$T/$tag.jsonl"); dsw+=("$T/$tag.bin")
  else fsdp+=("$T/$tag.jsonl"); fsdpw+=("$T/$tag.bin"); fi
done
python3 "$SRC/tests/examples/compare_logs.py" "$T/ref.jsonl" "${fsdp[@]}" --rtol 1e-5 --weights "${fsdpw[@]}"
python3 "$SRC/tests/examples/compare_logs.py" "$T/ref_clip.jsonl" "${ds[@]}" --rtol 1e-5 --weights "${dsw[@]}"
# The cost model for each run's model (its padded size, which depends on
# the shard group: the fp32 reduce-scatter's bytes per step / 4), 4 ranks,
# 2 per host.
for tag in fsdp_hybrid_shard fsdp_hybrid_shard_zero2 fsdp_full_shard ds_zero3_hpz; do
  n=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])["comm_bytes"]["reduce_scatter"] // 4)' "$T/$tag.jsonl")
  "$BIN/shardrt" estimate-time --num_params "$n" --world_size 4 --gpus_per_node 2 --format json >"$T/$tag.est.json"
done
python3 "$HERE/check_cross_bytes.py" "$T" fsdp_hybrid_shard:hybrid fsdp_hybrid_shard_zero2:hybrid \
  fsdp_full_shard:full ds_zero3_hpz:hybrid --estimate

# Ranks dealt round-robin over the hosts (0,2 on host0; 1,3 on host1):
# renumbered host by host, same training, hybrid groups still per host.
timeout 300 ip netns exec "${MH_NS[0]}" unshare --uts sh -c 'hostname host0; exec "$@"' sh \
  "$MPIRUN" $MH_FLAGS --hostfile "$T/hostfile" --map-by node -np 4 "$BIN/train_mlp" \
  --config_file "$SRC/configs/fsdp_hybrid_shard.yaml" "${ARGS[@]}" "${TRAIN[@]}" --steps 20 \
  --log "$T/rr.jsonl" --weights_out "$T/rr.bin" >"$T/rr.out" 2>&1 || { cat "$T/rr.out"; exit 1; }
grep -q "ranks of a host are not contiguous" "$T/rr.out" || { echo "FAIL: no renumbering note:"; cat "$T/rr.out"; exit 1; }
python3 "$SRC/tests/examples/compare_logs.py" "$T/ref.jsonl" "$T/rr.jsonl" --rtol 1e-5 --weights "$T/ref.bin" "$T/rr.bin"
python3 - "$T/rr.jsonl" <<'PY'
import json, sys
last = json.loads(open(sys.argv[1]).readlines()[-1])
x = last["cross_host_bytes"]
assert last["hosts"] == 2 and x["shard"] == 0 and x["replica"] == last["comm_bytes"]["all_reduce"] > 0, last
print("round-robin placement: renumbered, shard groups inside hosts:", x)
PY

# HYBRID_SHARD with num_machines left at 1 and no group size: unambiguous,
# the shard groups follow the hosts, with a note.
timeout 300 ip netns exec "${MH_NS[0]}" unshare --uts sh -c 'hostname host0; exec "$@"' sh \
  "$MPIRUN" $MH_FLAGS --hostfile "$T/hostfile" --npernode 2 -np 4 "$BIN/train_mlp" \
  --config_file "$SRC/configs/fsdp_hybrid_shard.yaml" --num_processes 4 --num_machines 1 "${TRAIN[@]}" --steps 20 \
  --log "$T/follow.jsonl" >"$T/follow.out" 2>&1 || { cat "$T/follow.out"; exit 1; }
grep -q "shard groups follow the hosts (num_machines 2)" "$T/follow.out" ||
  { echo "FAIL: no note that the groups follow the hosts:"; cat "$T/follow.out"; exit 1; }
python3 "$SRC/tests/examples/compare_logs.py" "$T/ref.jsonl" "$T/follow.jsonl" --rtol 1e-5
python3 - "$T/follow.jsonl" <<'PY'
import json, sys
last = json.loads(open(sys.argv[1]).readlines()[-1])
x = last["cross_host_bytes"]
assert x["shard"] == 0 and x["replica"] == last["comm_bytes"]["all_reduce"] > 0, last
print("num_machines 1 on 2 hosts: shard groups follow the hosts:", x)
PY

# The config against the hosts: each failure names what the config says and what the hosts are.
expect_fail() { # pattern mpirun-args...
  local pat=$1; shift
  if timeout 120 ip netns exec "${MH_NS[0]}" unshare --uts sh -c 'hostname host0; exec "$@"' sh \
    "$MPIRUN" $MH_FLAGS --hostfile "$T/hostfile" "$@" >"$T/e.out" 2>&1; then
    echo "FAIL: expected an error ($pat), the run succeeded"; exit 1
  fi
  grep -q -- "$pat" "$T/e.out" || { echo "FAIL: '$pat' not in:"; cat "$T/e.out"; exit 1; }
  echo "refused as expected: $(grep -m1 -o -- "$pat.*" "$T/e.out" | cut -c1-160)"
}
expect_fail "num_machines 4 but the 4 ranks run on 2 hosts" --npernode 2 -np 4 "$BIN/train_mlp" --quiet --steps 1 \
  --config_file "$SRC/configs/fsdp_full_shard.yaml" --num_processes 4 --num_machines 4
expect_fail "needs the same number of ranks on every host" -np 3 "$BIN/train_mlp" --quiet --steps 1 \
  --config_file "$SRC/configs/fsdp_hybrid_shard.yaml" --num_processes 3 --num_machines 1
echo "multi-host: all checks passed"
