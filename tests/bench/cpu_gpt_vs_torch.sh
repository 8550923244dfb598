#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark (not a test): train_gpt against the same model in PyTorch on the
# CPU, side by side, fp32, one BLAS / torch thread per rank:
#   world 1   train_gpt (plain, one unit)           vs a plain torch loop
#   world 2   train_gpt NO_SHARD   (mpirun -np 2)   vs torch DDP over gloo
#   world 2   train_gpt FULL_SHARD (mpirun -np 2)   vs torch FSDP2 fully_shard over gloo
# (torch: tests/bench/torch_gpt_cpu.py, launched with torchrun for world 2).
# Both start from the same weights (train_gpt --steps 0 --weights_out) and
# read the same batches of the bundled corpus (byte vocab), with AdamW at
# train_gpt's defaults (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01)
# on both sides. Before timing, it checks that the torch model IS train_gpt's
# model: same parameter count, and from the same weights the same loss and
# gradient norm at step 1 and the same loss after one AdamW step (world 1);
# every timed run's step-1 loss must agree too. A check that fails makes the
# script exit 1.
#
# Runs are alternated (train_gpt, torch, train_gpt, torch ...; REPEATS times
# each); a run's tokens/s is the global batch's tokens over its median step
# after WARMUP steps; the table gives the median over the runs of each side,
# the ratio libshardrt / PyTorch of those medians (and the range of the
# per-pair ratios) and the peak RSS of each rank (getrusage ru_maxrss of the
# rank's process: train_gpt through a wrapper, torch in-process).
#
#   tests/bench/cpu_gpt_vs_torch.sh [OUTDIR]          (default: a temporary folder)
# Environment:
#   TORCH_PYTHON  python with torch >= 2.6 (default: BUILD_DIR/torch-venv/bin/python,
#                 made on first use with `python3 -m venv` + `pip install torch` from
#                 PyPI, about 1 GB or more; on Linux x86_64 PyPI's torch is the CUDA
#                 build, which also runs on CPUs. Point TORCH_PYTHON at a CPU-only
#                 torch where download.pytorch.org/whl/cpu is reachable.)
#   SHAPES   "small medium" (small: 4 layers x 256, 4 heads, seq 128; medium: 6 x 384,
#            6 heads, seq 256; both vocab 256)        GB  global batch, sequences (8)
#   STEPS (8) WARMUP (2) REPEATS (3) RUNS ("plain ddp fsdp2")  RUN_TIMEOUT s per run (900)
#   QUICK=1  smoke run: small only, STEPS 3, WARMUP 1, REPEATS 1 (well under a minute idle)
#   SMOKE=1  QUICK, and exit 77 (skip) when no python with torch is found instead of
#            making the venv (what ctest runs)
#   SHARDRT_BIN_DIR (build/bin)  BUILD_DIR (build)
# Exit: 0 figures printed; 1 a run or a check failed; 2 bad setup; 77 skipped.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
BIN=${SHARDRT_BIN_DIR:-$BUILD/bin}
[ "${SMOKE:-0}" = 1 ] && QUICK=1
if [ "${QUICK:-0}" = 1 ]; then
  RUNS=${RUNS:-plain ddp fsdp2}
  case " $RUNS " in *" plain "*) ;; *) echo "cpu_gpt_vs_torch: QUICK needs plain in RUNS (its runs are the check)" >&2; exit 2;; esac
  SHAPES=${SHAPES:-small} STEPS=${STEPS:-3} WARMUP=${WARMUP:-1} REPEATS=${REPEATS:-1}
fi
SHAPES=${SHAPES:-small medium} STEPS=${STEPS:-8} WARMUP=${WARMUP:-2} REPEATS=${REPEATS:-3}
GB=${GB:-8} RUNS=${RUNS:-plain ddp fsdp2} RUN_TIMEOUT=${RUN_TIMEOUT:-900}
MPIRUN=${SHARDRT_MPIRUN:-mpirun}
for v in STEPS WARMUP REPEATS GB RUN_TIMEOUT; do
  case ${!v} in ''|*[!0-9]*) echo "cpu_gpt_vs_torch: $v=${!v} is not a whole number" >&2; exit 2;; esac
done
if [ "$WARMUP" -ge "$STEPS" ] || [ "$STEPS" -lt 2 ] || [ "$REPEATS" -lt 1 ] || [ $((GB % 2)) != 0 ]; then
  echo "cpu_gpt_vs_torch: need STEPS >= 2 and > WARMUP, REPEATS >= 1, GB even (world 2 splits it)" \
       "(STEPS=$STEPS WARMUP=$WARMUP REPEATS=$REPEATS GB=$GB)" >&2
  exit 2
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# one thread per rank on both sides: the two ranks fill the cores
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

if [ $# -gt 1 ] || [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '3,/^set /p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
if [ $# -eq 1 ]; then
  mkdir -p "$1" && OUT=$(cd "$1" && pwd) || exit 2
else
  OUT=$(mktemp -d) || exit 2
  trap 'rm -rf "$OUT"' EXIT
fi
if [ ! -x "$BIN/train_gpt" ]; then
  echo "cpu_gpt_vs_torch: $BIN/train_gpt is missing (build first: bash .ci/setup)" >&2
  exit 2
fi
for r in $RUNS; do
  case $r in plain|ddp|fsdp2) ;; *) echo "cpu_gpt_vs_torch: RUNS has '$r' (allowed: plain ddp fsdp2)" >&2; exit 2;; esac
done

has_torch() { "$1" -c 'import torch, torch.distributed.fsdp; torch.distributed.fsdp.fully_shard' >/dev/null 2>&1; }
PY=${TORCH_PYTHON:-}
if [ -n "$PY" ]; then
  if ! has_torch "$PY"; then
    echo "cpu_gpt_vs_torch: TORCH_PYTHON=$PY cannot import torch >= 2.6 (torch.distributed.fsdp.fully_shard)" >&2
    [ "${SMOKE:-0}" = 1 ] && exit 77
    exit 2
  fi
elif [ "${SMOKE:-0}" = 1 ]; then
  for c in "$BUILD/torch-venv/bin/python" python3; do
    if has_torch "$c"; then PY=$c; break; fi
  done
  if [ -z "$PY" ]; then
    echo "cpu_gpt_vs_torch: skipped: no python with torch (set TORCH_PYTHON)"
    exit 77
  fi
else
  PY=$BUILD/torch-venv/bin/python
  if ! has_torch "$PY"; then
    echo "cpu_gpt_vs_torch: making $BUILD/torch-venv (pip install torch from PyPI; set TORCH_PYTHON to skip this)" >&2
    if ! { python3 -m venv "$BUILD/torch-venv" && "$PY" -m pip install -q --upgrade pip &&
           "$PY" -m pip install -q torch && has_torch "$PY"; }; then
      echo "cpu_gpt_vs_torch: could not install torch into $BUILD/torch-venv" >&2
      exit 2
    fi
  fi
fi

# train_gpt flags of a shape; the torch script takes the same names
shape_flags() {
  case $1 in
    small) echo "--preset small";;
    medium) echo "--preset small --n_layer 6 --n_embd 384 --n_head 6 --seq_len 256";;
    *) return 1;;
  esac
}
for s in $SHAPES; do
  shape_flags "$s" >/dev/null || { echo "cpu_gpt_vs_torch: unknown shape '$s' (allowed: small medium)" >&2; exit 2; }
done

# runs a rank's command and writes its peak RSS (ru_maxrss of the child, bytes)
# to PREFIX.<rank>; the wrapper's own memory is not counted
RSSWRAP='import os, resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
rank = os.environ.get("OMPI_COMM_WORLD_RANK", "0")
with open(f"{sys.argv[1]}.{rank}", "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024) + "\n")
sys.exit(rc)'

failed=0
run() { # NAME command... -> OUT/NAME.out
  local name=$1 t0=$SECONDS; shift
  if timeout "$RUN_TIMEOUT" "$@" >"$OUT/$name.out" 2>&1; then
    echo "ok     $name ($((SECONDS - t0)) s)"
  else
    echo "FAILED $name ($((SECONDS - t0)) s, exit $?): see $OUT/$name.out"
    tail -5 "$OUT/$name.out" | sed 's/^/       /'
    failed=1
  fi
}
fsdp_flags() { # STRATEGY
  echo "--use_fsdp --fsdp_sharding_strategy $1 --fsdp_auto_wrap_policy TRANSFORMER_BASED_WRAP" \
       "--fsdp_transformer_layer_cls_to_wrap GPT2Block --fsdp_forward_prefetch true" \
       "--fsdp_backward_prefetch BACKWARD_PRE --num_processes 2"
}
shardrt_run() { # SHAPE RUN NAME
  local sf extra=(); read -ra sf <<<"$(shape_flags "$1")"
  case $2 in
    ddp) read -ra extra <<<"$(fsdp_flags NO_SHARD)";;
    fsdp2) read -ra extra <<<"$(fsdp_flags FULL_SHARD)";;
  esac
  local cmd=(python3 -c "$RSSWRAP" "$OUT/$3.rss" "$BIN/train_gpt" --quiet "${sf[@]}" --steps "$STEPS"
             --global_batch "$GB" --log "$OUT/$3.jsonl" "${extra[@]}")
  if [ "$2" = plain ]; then
    run "$3" "${cmd[@]}"
  else
    run "$3" "$MPIRUN" --oversubscribe --bind-to none --mca btl self,vader -np 2 "${cmd[@]}"
  fi
}
torch_run() { # SHAPE RUN NAME [extra torch_gpt_cpu.py flags]
  local sf shape=$1 mode=$2 name=$3; read -ra sf <<<"$(shape_flags "$shape")"; shift 3
  local cmd=("$ROOT/tests/bench/torch_gpt_cpu.py" --mode "$mode" "${sf[@]}" --batch "$GB" --steps "$STEPS"
             --warmup "$WARMUP" --init_weights "$OUT/$shape.init.bin" --json "$OUT/$name.json" "$@")
  if [ "$mode" = plain ]; then
    run "$name" "$PY" "${cmd[@]}"
  else
    run "$name" "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 "${cmd[@]}"
  fi
}

echo "cpu_gpt_vs_torch: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(getconf _NPROCESSORS_ONLN) cores;" \
     "torch $("$PY" -c 'import torch; print(torch.__version__)') ($PY)"
echo "shapes: $SHAPES; global batch $GB sequences; $STEPS steps, first $WARMUP untimed; $REPEATS alternated runs;" \
     "runs: $RUNS; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for shape in $SHAPES; do
  read -ra sf <<<"$(shape_flags "$shape")"
  # the initial weights both sides start from (train_gpt's own init at its
  # default seed), and which BLAS kernel train_gpt runs here
  if ! "$BIN/train_gpt" "${sf[@]}" --steps 0 --weights_out "$OUT/$shape.init.bin" >"$OUT/$shape.init.out" 2>&1; then
    echo "FAILED train_gpt --weights_out for $shape: see $OUT/$shape.init.out"; exit 1
  fi
  grep -m1 'BLAS:' "$OUT/$shape.init.out" | sed "s/^train_gpt: /$shape: train_gpt /"
  # the same-model check: two steps from the same weights on the same data
  # (QUICK: the first plain runs double as the check, to save two starts)
  if [ "${QUICK:-0}" != 1 ]; then
    STEPS=2 shardrt_run "$shape" plain "check_shardrt_$shape"
    STEPS=2 WARMUP=0 torch_run "$shape" plain "check_torch_$shape" --grad_norm
  fi
done
for ((rep = 1; rep <= REPEATS; rep++)); do
  for shape in $SHAPES; do
    for r in $RUNS; do
      shardrt_run "$shape" "$r" "shardrt_${shape}_${r}_$rep"
      if [ "${QUICK:-0}" = 1 ] && [ "$rep" = 1 ] && [ "$r" = plain ]; then
        torch_run "$shape" "$r" "torch_${shape}_${r}_$rep" --grad_norm
        cp "$OUT/shardrt_${shape}_plain_1.jsonl" "$OUT/check_shardrt_$shape.jsonl" 2>/dev/null
        cp "$OUT/torch_${shape}_plain_1.json" "$OUT/check_torch_$shape.json" 2>/dev/null
      else
        torch_run "$shape" "$r" "torch_${shape}_${r}_$rep"
      fi
    done
  done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$ROOT/tests/bench/cpu_gpt_vs_torch_report.py" "$OUT" "$SHAPES" "$RUNS" "$REPEATS" "$WARMUP" "$GB" \
  | tee "$OUT/summary.txt"
[ "${PIPESTATUS[0]}" = 0 ] || failed=1
exit $failed
