#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `shardrt plan`: output for configs and overrides, and failures that say why.
# usage: test_shardrt_plan.sh SHARDRT_BIN CONFIGS_DIR
set -u
BIN=$1
CFG=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
check() { # description, then a command that must succeed
  desc=$1; shift
  if "$@"; then :; else echo "FAIL: $desc"; fails=$((fails + 1)); fi
}
has() { grep -q -- "$2" "$1" || { echo "  '$2' not in:"; sed 's/^/    /' "$1"; return 1; }; }

"$BIN" plan --config_file "$CFG/fsdp_full_shard.yaml" >"$TMP/o" 2>"$TMP/e"
check "plan exits 0" test $? -eq 0
check "json strategy" has "$TMP/o" '"strategy": "FULL_SHARD"'
check "json world" has "$TMP/o" '"shard_group_size": 2'

"$BIN" plan --config_file "$CFG/fsdp_full_shard.yaml" --fsdp_sharding_strategy SHARD_GRAD_OP --format table \
  --mixed_precision=bf16 >"$TMP/o" 2>"$TMP/e"
check "override exits 0" test $? -eq 0
check "override wins (table)" has "$TMP/o" '^strategy  *SHARD_GRAD_OP'
check "mixed precision override" has "$TMP/o" '^compute_dtype  *bf16'

"$BIN" plan --config_file "$CFG/ds_json.yaml" >"$TMP/o" 2>"$TMP/e"
check "ds json exits 0" test $? -eq 0
check "auto prints as unresolved" has "$TMP/o" 'auto (set by the program)'
check "optimizer section applied" has "$TMP/o" '"optimizer": "AdamW"'
check "optimizer auto prints as the program's" has "$TMP/o" '"optimizer_lr": "auto (set by the program)"'

"$BIN" plan --config_file "$CFG/ds_json.yaml" --json >"$TMP/o" 2>"$TMP/e"
check "--json exits 0" test $? -eq 0
check "every run-changing field shown" has "$TMP/o" '"max_reuse_distance": 1000000000'
check "reduce dtype source shown" has "$TMP/o" '"reduce_dtype_from": "default"'
check "ignored keys listed" has "$TMP/o" '"zero_optimization.reduce_scatter: accepted, has no effect in libshardrt"'
check "warnings listed" has "$TMP/o" '"warnings": \['
printf '{"_comment": "x", "zero_optimization": {"stage": 2}, "torch_autocast": {"enabled": false}}\n' >"$TMP/w.json"
"$BIN" plan --config_file "$TMP/w.json" >"$TMP/o" 2>"$TMP/e"
check "off feature plans" test $? -eq 0
check "off feature in the warnings list" has "$TMP/o" "DeepSpeed's torch_autocast is not supported by libshardrt; it is off here"
check "comment key ignored" has "$TMP/o" '"_comment: not a DeepSpeed key, ignored (as DeepSpeed does)"'
"$BIN" plan --config_file "$CFG/fsdp_full_shard.yaml" --format table >"$TMP/o" 2>"$TMP/e"
check "table lists ignored keys" has "$TMP/o" '^ignored (accepted, not acted on):'
check "table names the program's classes" has "$TMP/o" "^wrap_classes_from  *program"

"$BIN" plan --config_file "$CFG/ds_zero2_schedule.yaml" --format table >"$TMP/o" 2>"$TMP/e"
check "schedule config exits 0" test $? -eq 0
check "schedule shown" has "$TMP/o" '^scheduler  *WarmupDecayLR'
check "schedule warmup shown" has "$TMP/o" '^warmup_num_steps  *5'
check "schedule total left to the program" has "$TMP/o" '^total_num_steps  *auto (set by the program)'

printf '{"zero_optimization": {"stage": 2}, "scheduler": {"type": "OneCycle", "params": {}}}\n' >"$TMP/onecycle.json"
"$BIN" plan --config_file "$TMP/onecycle.json" >"$TMP/o" 2>"$TMP/e"
check "unsupported scheduler fails" test $? -ne 0
check "unsupported scheduler named" has "$TMP/e" 'scheduler.type: OneCycle is not supported by libshardrt (allowed: WarmupLR, WarmupDecayLR, WarmupCosineLR)'

"$BIN" plan --config_file "$CFG/fsdp_hybrid_shard.yaml" --world_size 6 >"$TMP/o" 2>"$TMP/e"
check "world size mismatch fails" test $? -ne 0
check "mismatch says why" has "$TMP/e" 'num_processes 4 but 6 ranks'

printf 'distributed_type: FSDP\nfsdp_config:\n  fsdp_sharding_stratgy: 1\n' >"$TMP/bad.yaml"
"$BIN" plan --config_file "$TMP/bad.yaml" >"$TMP/o" 2>"$TMP/e"
check "bad config fails" test $? -ne 0
check "bad config names the spot" has "$TMP/e" 'bad.yaml:3:3: unknown key .fsdp_sharding_stratgy. in fsdp_config; did you mean .fsdp_sharding_strategy.'

"$BIN" plan --config_file "$CFG/fsdp_full_shard.yaml" --format yaml >"$TMP/o" 2>"$TMP/e"
check "bad --format fails" test $? -ne 0
"$BIN" plan --config_file "$CFG/fsdp_full_shard.yaml" --bogus >"$TMP/o" 2>"$TMP/e"
check "unknown argument fails" test $? -ne 0
check "unknown argument named" has "$TMP/e" "unknown argument '--bogus'"

for f in "$CFG"/*.yaml; do
  "$BIN" plan --config_file "$f" >"$TMP/o" 2>"$TMP/e"
  check "plan $(basename "$f")" test $? -eq 0
done

"$BIN" help >"$TMP/o" 2>&1
check "help lists plan" has "$TMP/o" '^  plan '
"$BIN" env >"$TMP/o" 2>&1
check "env exits 0" test $? -eq 0
check "env names mpi" has "$TMP/o" '^mpi: '
check "env names cuda" has "$TMP/o" '^cuda: '
"$BIN" plna >"$TMP/o" 2>&1
check "unknown command suggests" has "$TMP/o" "did you mean 'plan'"

[ $fails -eq 0 ] && echo "all shardrt plan checks passed"
exit $fails
