#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bad input to train_mlp: a clear message naming the thing and a non-zero
# exit, never a crash or a hang.
set -uo pipefail
BIN=${SHARDRT_BIN_DIR:?}; SRC=${SHARDRT_SOURCE_DIR:?}; MPIRUN=${SHARDRT_MPIRUN:-mpirun}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0
expect() { # want-substring np args...
  local want=$1 np=$2; shift 2
  local out rc
  out=$(timeout 60 "$MPIRUN" --oversubscribe --bind-to none --mca btl self,vader -np "$np" "$BIN/train_mlp" --steps 1 "$@" 2>&1)
  rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 124 ] || ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL: train_mlp $* (rc $rc), wanted '$want' in:"; echo "$out" | head -5; fails=$((fails+1))
  else
    echo "ok: $want"
  fi
}
expect "does-not-exist.yaml" 1 --config_file "$T/does-not-exist.yaml"
printf 'distributed_type: FSDP\nfsdp_config:\n  fsdp_sharding_strategy: QUARTER_SHARD\n' > "$T/bad.yaml"
expect "QUARTER_SHARD" 1 --config_file "$T/bad.yaml"
expect "no CUDA GPU" 1 --device cuda
expect "num_processes 4" 2 --config_file "$SRC/configs/fsdp_hybrid_shard.yaml"
expect "--global_batch 30" 4 --global_batch 30
expect "unknown argument '--bogus'" 1 --bogus 3
expect "--steps 'x'" 1 --steps x
printf 'distributed_type: FSDP\nfsdp_config:\n  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n  fsdp_transformer_layer_cls_to_wrap: GPT2Block\n' > "$T/wrap.yaml"
expect "could not find the transformer layer class 'GPT2Block'" 2 --config_file "$T/wrap.yaml"
# --check_finite (SHARDRT_CHECK_FINITE=1): sgd at lr 1e30 overflows the weights
# in step 1, so step 2's gradient is NaN; every rank stops there, naming it
expect "shardrt_step: step 2: the gradient holds NaN or Inf" 2 --steps 4 --optimizer sgd --lr 1e30 --check_finite
[ $fails -eq 0 ] && echo "1 passed, 0 failed" || { echo "0 passed, $fails failed"; exit 1; }
