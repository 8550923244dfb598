#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checkpoint flags of the example trainers: 20 straight steps equal 10 +
# save + --resume to 20 bit for bit (same world, same plan); a checkpoint
# saved at 2 ranks FULL_SHARD resumes at 1 rank NO_SHARD within float
# tolerance; merge-weights output loads back with --load_weights exactly.
# The resharded tolerance 1e-5 against its floor: the GPT tiny preset's
# world-1 vs world-2 spread over every OpenBLAS kernel is <= 7.5e-8 over 10
# steps (see tests/gpt/run_gpt_equivalence.py), >100x below it.
set -euo pipefail
BIN=${SHARDRT_BIN_DIR:?}; SRC=${SHARDRT_SOURCE_DIR:?}; MPIRUN=${SHARDRT_MPIRUN:-mpirun}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
gpt() { # np strategy args...
  local np=$1 s=$2; shift 2
  "$MPIRUN" --oversubscribe --bind-to none --mca btl self,vader -np "$np" "$BIN/train_gpt" --quiet --preset tiny \
    --global_batch 4 --num_processes "$np" --use_fsdp --fsdp_sharding_strategy "$s" \
    --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP --fsdp_transformer_layer_cls_to_wrap GPT2Block \
    --fsdp_state_dict_type SHARDED_STATE_DICT "$@"
}
gpt 2 FULL_SHARD --steps 20 --log "$T/straight.jsonl"
gpt 2 FULL_SHARD --steps 10 --save_dir "$T/ck" --save_every 10 --weights_out "$T/w10.bin" >/dev/null
gpt 2 FULL_SHARD --steps 20 --resume "$T/ck" --log "$T/resumed.jsonl" >/dev/null
gpt 1 NO_SHARD --steps 20 --resume "$T/ck" --log "$T/resharded.jsonl" >/dev/null
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
straight = {r["step"]: r["loss"] for r in map(json.loads, open(f"{t}/straight.jsonl"))}
resumed = {r["step"]: r["loss"] for r in map(json.loads, open(f"{t}/resumed.jsonl"))}
resharded = {r["step"]: r["loss"] for r in map(json.loads, open(f"{t}/resharded.jsonl"))}
assert sorted(resumed) == list(range(11, 21)), sorted(resumed)
for s in range(11, 21):
    assert resumed[s] == straight[s], f"step {s}: resumed {resumed[s]!r} != straight {straight[s]!r}"
    assert abs(resharded[s] - straight[s]) <= 1e-5 * abs(straight[s]), f"step {s}: resharded {resharded[s]} vs {straight[s]}"
print("resume: steps 11-20 bit-identical; resumed at world 1 NO_SHARD within 1e-5")
PY
"$BIN/shardrt" merge-weights "$T/ck/step_10" "$T/w10.safetensors" >/dev/null
gpt 1 NO_SHARD --steps 0 --load_weights "$T/w10.safetensors" --weights_out "$T/loaded.bin" >/dev/null
cmp "$T/w10.bin" "$T/loaded.bin"
echo "merge-weights -> --load_weights reproduces the step-10 weights exactly"
# train_mlp takes the same flags: resume bit-identically under DeepSpeed ZeRO-2.
mlp() { "$MPIRUN" --oversubscribe --bind-to none --mca btl self,vader -np 2 "$BIN/train_mlp" --quiet \
          --num_processes 2 --use_deepspeed --zero_stage 2 "$@"; }
mlp --steps 8 --log "$T/m_straight.jsonl"
mlp --steps 4 --save_dir "$T/mck" --save_every 2 >/dev/null
mlp --steps 8 --resume "$T/mck" --log "$T/m_resumed.jsonl" >/dev/null
python3 - "$T" <<'PY'
import json, sys
t = sys.argv[1]
a = {r["step"]: r["loss"] for r in map(json.loads, open(f"{t}/m_straight.jsonl"))}
b = {r["step"]: r["loss"] for r in map(json.loads, open(f"{t}/m_resumed.jsonl"))}
assert sorted(b) == [5, 6, 7, 8] and all(a[s] == b[s] for s in b), (a, b)
print("train_mlp: resumed from step_4 of DIR (newest of step_2, step_4), steps 5-8 bit-identical")
PY
echo "1 passed, 0 failed"
