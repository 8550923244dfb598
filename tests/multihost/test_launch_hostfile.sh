#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `shardrt launch` with a hostfile (--dry_run: nothing starts): the mpirun
# line places num_processes / num_machines ranks per host, the hostfile comes
# from the flag, mpirun_config.mpirun_hostfile or deepspeed_hostfile, and a
# hostfile that cannot serve the config is refused naming both.
# usage: test_launch_hostfile.sh SHARDRT_BIN CONFIGS_DIR
set -u
BIN=$1; CFG=$2
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
unset SHARDRT_CONFIG_FILE SHARDRT_OVERRIDES SHARDRT_MPIRUN_FLAGS
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; sed 's/^/    /' "$T/o" "$T/e"; fails=$((fails + 1)); }
# expect DESC RC PATTERN-IN-OUTPUT launch-args...
expect() {
  local desc=$1 rc=$2 pat=$3; shift 3
  "$BIN" launch --dry_run "$@" true >"$T/o" 2>"$T/e"
  local got=$?
  if [ "$got" -ne "$rc" ]; then bad "$desc (exit $got, want $rc)"
  elif ! grep -q -- "$pat" "$T/o" "$T/e"; then bad "$desc ('$pat' not in the output)"
  else ok "$desc"; fi
}
printf '# two hosts\nnodeA slots=2\nnodeB slots=2 max_slots=4\n\n' >"$T/hosts"
printf 'nodeA slots=1\nnodeB slots=1\n' >"$T/small"
printf 'nodeA slots=4\n' >"$T/one"
printf 'nodeA slots=2\nnodeA slots=2\n' >"$T/dup"
printf 'nodeA slots=2\nnodeB cpus=2\n' >"$T/junk"
printf 'nodeA\n' >"$T/noslots"

expect "hybrid: 2 ranks per host, no oversubscription" 0 " -np 4 --hostfile $T/hosts --npernode 2 -x" \
  --config_file "$CFG/fsdp_hybrid_shard.yaml" --hostfile "$T/hosts"
grep -q -- "--oversubscribe" "$T/o" && bad "oversubscribes across hosts" || ok "no --oversubscribe with a hostfile"
expect "--hostfile=F form" 0 "--hostfile $T/hosts --npernode 1" \
  --config_file "$CFG/fsdp_full_shard.yaml" --num_machines 2 --hostfile="$T/hosts"
expect "--mpirun_hostfile flag" 0 "--hostfile $T/hosts --npernode 2" \
  --config_file "$CFG/fsdp_hybrid_shard.yaml" --mpirun_hostfile "$T/hosts"
expect "--deepspeed_hostfile flag" 0 "--hostfile $T/hosts --npernode 2" \
  --config_file "$CFG/ds_zero3.yaml" --num_processes 4 --num_machines 2 --deepspeed_hostfile "$T/hosts"

# Config keys: accelerate's mpirun_config.mpirun_hostfile and deepspeed_config.deepspeed_hostfile,
# relative to the config file.
cp "$T/hosts" "$T/hostfile"
cat >"$T/mpi.yaml" <<'EOF'
distributed_type: MULTI_CPU
num_processes: 4
num_machines: 2
machine_rank: 0
mpirun_config:
  mpirun_hostfile: hostfile
EOF
cat >"$T/ds.yaml" <<'EOF'
distributed_type: DEEPSPEED
num_processes: 4
num_machines: 2
deepspeed_config:
  zero_stage: 3
  deepspeed_hostfile: hostfile
  deepspeed_multinode_launcher: openmpi
EOF
expect "mpirun_config.mpirun_hostfile" 0 "--hostfile $T/hostfile --npernode 2" --config_file "$T/mpi.yaml"
expect "deepspeed_config.deepspeed_hostfile" 0 "--hostfile $T/hostfile --npernode 2" --config_file "$T/ds.yaml"
expect "the flag wins over the config" 0 "--hostfile $T/hosts --npernode 2" --config_file "$T/ds.yaml" \
  --hostfile "$T/hosts"
expect "machine_rank 1 starts nothing" 0 "machine_rank 1: nothing to do here" --config_file "$T/mpi.yaml" \
  --machine_rank 1

# Hostfiles that cannot serve the config.
expect "too few slots" 2 "host nodeA of the hostfile $T/small has slots=1 but the config places num_processes / num_machines = 4 / 2 = 2" \
  --config_file "$CFG/fsdp_hybrid_shard.yaml" --hostfile "$T/small"
expect "too few hosts" 2 "num_machines 2 but the hostfile $T/one lists 1 host" \
  --config_file "$CFG/fsdp_hybrid_shard.yaml" --hostfile "$T/one"
expect "more hosts than num_machines 1" 2 "lists 2 hosts but the config says num_machines 1" \
  --config_file "$CFG/fsdp_full_shard.yaml" --hostfile "$T/hosts"
expect "indivisible" 2 "num_processes 3 is not divisible by num_machines 2" \
  --config_file "$CFG/fsdp_full_shard.yaml" --num_processes 3 --num_machines 2 --hostfile "$T/hosts"
expect "duplicate host" 2 "$T/dup:2: host nodeA is listed twice" --config_file "$CFG/fsdp_hybrid_shard.yaml" \
  --hostfile "$T/dup"
expect "bad entry" 2 "$T/junk:2: 'cpus=2' is not understood (allowed: HOST slots=N" \
  --config_file "$CFG/fsdp_hybrid_shard.yaml" --hostfile "$T/junk"
expect "no slots" 2 "$T/noslots:1: host nodeA has no slots=N" --config_file "$CFG/fsdp_hybrid_shard.yaml" \
  --hostfile "$T/noslots"
expect "missing hostfile" 2 "cannot open the hostfile $T/nope" --config_file "$CFG/fsdp_hybrid_shard.yaml" \
  --hostfile "$T/nope"
"$BIN" launch --dry_run --config_file "$CFG/fsdp_hybrid_shard.yaml" --hostfile >"$T/o" 2>"$T/e"
[ $? -eq 2 ] && grep -q -- "--hostfile needs a FILE" "$T/e" && ok "--hostfile without a file" || bad "--hostfile without a file"
[ "$fails" -eq 0 ] || { echo "$fails failed"; exit 1; }
echo "all hostfile launch checks passed"
