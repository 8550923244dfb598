#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark (not a test): trains train_gpt under every strategy side by side
# and prints step time, tokens/s, communication and exposed-communication
# share, model state and peak memory, with ratios to NO_SHARD measured in the
# same run.
#
#   tests/bench/bench_strategies.sh [--np N] [--preset tiny|small|gpt2] [--steps N]
#                                   [--global_batch N] [--device cpu|cuda] [--strategies "A B"]
#                                   [--mpi_progress "thread poll"] [--repeats R] [-- extra train_gpt flags]
# Runs are alternated (every strategy once, then again, R times; default 3)
# so machine noise spreads over all of them; each figure is the min and the
# median over the R runs of that run's median step (ratios use the min).
# --mpi_progress runs every strategy once per SHARDRT_MPI_PROGRESS mode (rows
# "STRATEGY/mode"), to compare the mpi backend's progress thread with polling
# at unit boundaries in one run.
# CPU default: --np 2 --preset small. GPU: --np 1 --device cuda --preset gpt2 -- --mixed_precision bf16
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SHARDRT_BIN_DIR:-$ROOT/build/bin}
NP=2 PRESET=small STEPS=8 GB=8 DEVICE=cpu STRATS="NO_SHARD ZERO1 SHARD_GRAD_OP FULL_SHARD" MODES="" REPEATS=3
while [ $# -gt 0 ]; do
  case $1 in
    --np) NP=$2; shift 2;; --preset) PRESET=$2; shift 2;; --steps) STEPS=$2; shift 2;;
    --global_batch) GB=$2; shift 2;; --device) DEVICE=$2; shift 2;; --strategies) STRATS=$2; shift 2;;
    --mpi_progress) MODES=$2; shift 2;; --repeats) REPEATS=$2; shift 2;;
    --) shift; break;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# one BLAS thread per rank: ranks share the cores, threads would oversubscribe them
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
echo "train_gpt --preset $PRESET, world $NP, device $DEVICE, global batch $GB sequences, $STEPS steps (first 2 excluded), $REPEATS alternated runs each"
for ((rep = 1; rep <= REPEATS; rep++)); do
RUNS=()
for s in $STRATS; do
  if [ "$s" = ZERO1 ]; then  # DeepSpeed only: ZeRO-1 has no FSDP twin
    flags=(--use_deepspeed --zero_stage 1 --gradient_clipping 0)
  else
    flags=(--use_fsdp --fsdp_sharding_strategy "$s" --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP
           --fsdp_transformer_layer_cls_to_wrap GPT2Block --fsdp_forward_prefetch true --fsdp_backward_prefetch BACKWARD_PRE)
  fi
  for mode in ${MODES:-default}; do
    run=$s; [ "$mode" = default ] || run=$s/$mode
    RUNS+=("$run")
    env ${MODES:+SHARDRT_MPI_PROGRESS=$mode} mpirun --oversubscribe --bind-to none --mca btl self,vader -np "$NP" \
      "$BIN/train_gpt" --quiet --preset "$PRESET" --device "$DEVICE" --steps "$STEPS" --global_batch "$GB" \
      "${flags[@]}" --num_processes "$NP" --log "$T/${run//\//_}.$rep.jsonl" "$@" >/dev/null
  done
done
done
python3 - "$T" "$REPEATS" "${RUNS[@]}" <<'PY'
import json, statistics, sys
t, reps, strats = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = {}
for s in strats:
    per = []  # one dict per repeat: medians over that run's steps
    for rep in range(1, reps + 1):
        recs = [json.loads(l) for l in open(f"{t}/{s.replace('/', '_')}.{rep}.jsonl")][2:]
        per.append(dict(step=statistics.median(r["step_time_s"] for r in recs),
                        tok=statistics.median(r.get("tokens_per_s", 0) for r in recs),
                        comm=statistics.median(r["comm_time_s"] / r["step_time_s"] for r in recs),
                        exposed=statistics.median(r["exposed_comm_s"] / r["step_time_s"] for r in recs),
                        state=recs[-1]["mem"]["model_state_bytes"], peak=recs[-1]["mem"]["peak_bytes"]))
    steps = sorted(p["step"] for p in per)
    best = min(per, key=lambda p: p["step"])
    rows[s] = dict(best, step=steps[0], step_med=statistics.median(steps),
                   tok_max=max(p["tok"] for p in per), tok_med=statistics.median(p["tok"] for p in per))
base = rows[strats[0]]
print(f"{'strategy':21} {'step ms min/med':>17} {'x NO_SHARD':>10} {'tok/s max/med':>15} {'comm %':>7} "
      f"{'exposed %':>9} {'state MiB':>9} {'peak MiB':>9}")
for s in strats:
    r = rows[s]
    print(f"{s:21} {r['step']*1e3:8.1f}/{r['step_med']*1e3:8.1f} {r['step']/base['step']:10.2f} "
          f"{r['tok_max']:7.0f}/{r['tok_med']:7.0f} {100*r['comm']:7.1f} "
          f"{100*r['exposed']:9.1f} {r['state']/2**20:9.2f} {r['peak']/2**20:9.2f}")
PY
