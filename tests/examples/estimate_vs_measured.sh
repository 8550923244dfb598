#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `shardrt estimate-memory` against the model-state memory train_mlp measures
# at 2 ranks: DeepSpeed bf16 mixed precision at stages 0-2 (stage 3 would keep
# these small units replicated under stage3_param_persistence_threshold) and
# FSDP fp32 NO_SHARD / SHARD_GRAD_OP / FULL_SHARD: equal up to padding (1%).
set -euo pipefail
BIN=${SHARDRT_BIN_DIR:?}; MPIRUN=${SHARDRT_MPIRUN:-mpirun}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
train() { # tag flags...
  local tag=$1; shift
  "$MPIRUN" --oversubscribe --bind-to none --mca btl self,vader -np 2 "$BIN/train_mlp" --quiet --steps 1 \
    --hidden 256 --num_processes 2 --log "$T/$tag.jsonl" "$@" >/dev/null
}
for st in 0 1 2; do train "ds$st" --use_deepspeed --zero_stage "$st" --mixed_precision bf16 --gradient_clipping 0; done
train fsdp_NO_SHARD --use_fsdp --fsdp_sharding_strategy NO_SHARD
train fsdp_SHARD_GRAD_OP --use_fsdp --fsdp_sharding_strategy SHARD_GRAD_OP
train fsdp_FULL_SHARD --use_fsdp --fsdp_sharding_strategy FULL_SHARD
n=$(python3 -c "import json;print(json.loads(open('$T/ds0.jsonl').readline())['num_params'])")
"$BIN/shardrt" estimate-memory --num_params "$n" --world_size 2 --flavor deepspeed --mixed_precision bf16 --format json > "$T/ds.json"
"$BIN/shardrt" estimate-memory --num_params "$n" --world_size 2 --flavor fsdp --format json > "$T/fsdp.json"
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
def check(tag, est_file, name):
    e = json.load(open(f"{t}/{est_file}"))["strategies"][name]
    m = json.loads(open(f"{t}/{tag}.jsonl").readline())["mem"]
    for k, mk in (("params", "params_bytes"), ("grads", "grads_bytes"), ("master", "master_bytes"),
                  ("optimizer", "optimizer_bytes")):
        assert abs(m[mk] - e[k]) <= 0.01 * max(e[k], 1) + 4096, f"{tag} {k}: measured {m[mk]} vs estimate {e[k]}"
    print(f"{tag}: measured {m['model_state_bytes']} bytes of model state, estimated "
          f"{e['params'] + e['grads'] + e['master'] + e['optimizer']:.0f}")
for st, name in enumerate(["NO_SHARD", "ZERO1", "SHARD_GRAD_OP"]):
    check(f"ds{st}", "ds.json", name)
for name in ["NO_SHARD", "SHARD_GRAD_OP", "FULL_SHARD"]:
    check(f"fsdp_{name}", "fsdp.json", name)
PY
echo "1 passed, 0 failed"
