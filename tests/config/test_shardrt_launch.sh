#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `shardrt launch`: ranks receive the config and overrides; a failing rank
# makes launch fail with mpirun's message shown; bad configs fail early.
# usage: test_shardrt_launch.sh SHARDRT_BIN PROBE_BIN CONFIGS_DIR
set -u
BIN=$1
PROBE=$2
CFG=$3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export SHARDRT_MPIRUN_FLAGS="${SHARDRT_MPIRUN_FLAGS:---bind-to none --mca btl self,vader}"
# OpenMPI's dlopen'd components keep allocations until exit; in sanitizer
# builds LeakSanitizer would turn every rank's exit into a failure.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
unset SHARDRT_CONFIG_FILE SHARDRT_OVERRIDES PROBE_FAIL_RANK
fails=0
check() {
  desc=$1; shift
  if "$@"; then :; else echo "FAIL: $desc"; fails=$((fails + 1)); fi
}
has() { grep -q -- "$2" "$1" || { echo "  '$2' not in:"; sed 's/^/    /' "$1"; return 1; }; }
count() { n=$(grep -c -- "$2" "$1"); [ "$n" -eq "$3" ] || { echo "  '$2' $n times, want $3:"; sed 's/^/    /' "$1"; return 1; }; }

timeout 120 "$BIN" launch --config_file "$CFG/multi_cpu.yaml" --mixed_precision bf16 "$PROBE" --steps 3 \
  >"$TMP/o" 2>"$TMP/e"
check "launch exits 0" test $? -eq 0
check "two ranks ran" count "$TMP/o" '^probe rank=[01] world=2 strategy=NO_SHARD mp=bf16 left=2 --steps 3$' 2

timeout 120 "$BIN" launch --config_file "$CFG/fsdp_full_shard.yaml" --fsdp_sharding_strategy=SHARD_GRAD_OP \
  --fsdp_offload_params false "$PROBE" >"$TMP/o" 2>"$TMP/e"
check "fsdp launch exits 0" test $? -eq 0
check "override reached every rank" count "$TMP/o" 'strategy=SHARD_GRAD_OP mp=no left=0' 2

PROBE_FAIL_RANK=1 timeout 120 "$BIN" launch --config_file "$CFG/multi_cpu.yaml" "$PROBE" >"$TMP/o" 2>"$TMP/e"
rc=$?
check "a failing rank fails launch (rc=$rc)" test $rc -ne 0 -a $rc -ne 124
check "rank message shown" has "$TMP/e" 'probe rank 1: failing on purpose'
check "launch says mpirun failed" has "$TMP/e" 'shardrt launch: mpirun exited with status'

timeout 60 "$BIN" launch --config_file "$CFG/multi_cpu.yaml" --mixed_precision fp8 "$PROBE" >"$TMP/o" 2>"$TMP/e"
check "bad override fails before start" test $? -eq 2
check "bad override says why" has "$TMP/e" 'fp8 is not supported'
check "no rank started" test ! -s "$TMP/o"

timeout 60 "$BIN" launch --config_file "$CFG/multi_cpu.yaml" --bogus_flag "$PROBE" >"$TMP/o" 2>"$TMP/e"
check "unknown launch option fails" test $? -eq 2
"$BIN" launch --config_file "$CFG/multi_cpu.yaml" >"$TMP/o" 2>"$TMP/e"
check "missing program fails" has "$TMP/e" 'no PROGRAM to launch'

"$BIN" launch --dry_run --config_file "$CFG/fsdp_hybrid_shard.yaml" "$PROBE" >"$TMP/o" 2>"$TMP/e"
check "dry run exits 0" test $? -eq 0
check "dry run np from config" has "$TMP/o" ' -np 4 --oversubscribe '
check "dry run exports the config" has "$TMP/o" '-x SHARDRT_CONFIG_FILE -x SHARDRT_OVERRIDES'
check "single-host hybrid warns" has "$TMP/e" 'starting all 4 ranks on this machine'

# SIGTERM reaches mpirun and the ranks: a sleeping job ends quickly.
timeout 120 "$BIN" launch --config_file "$CFG/multi_cpu.yaml" sleep 60 >"$TMP/o" 2>"$TMP/e" &
lp=$!
sleep 3
kill -TERM $lp
start=$(date +%s)
wait $lp
rc=$?
took=$(( $(date +%s) - start ))
check "SIGTERM ends launch non-zero (rc=$rc)" test $rc -ne 0 -a $rc -ne 124
check "SIGTERM ends launch promptly (${took}s)" test $took -lt 30

[ $fails -eq 0 ] && echo "all shardrt launch checks passed"
exit $fails
