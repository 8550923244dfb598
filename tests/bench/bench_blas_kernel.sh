#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# train_gpt tokens/s with OpenBLAS's fallback kernel (Prescott, what 0.3.21
# runs on a CPU model it does not know) against train_gpt's start-up choice
# (the misdetection simulated by tests/gpt's LD_PRELOAD shim, so the re-exec
# path is what is timed), runs alternated; prints each run's best step and
# the ratio of the minima and of the medians. One BLAS thread.
# usage: tests/bench/bench_blas_kernel.sh [BUILD_DIR] [RUNS] [train_gpt args...]
set -eu
build=${1:-build}; runs=${2:-3}; shift 2 2>/dev/null || shift $#
args=("$@"); [ ${#args[@]} -gt 0 ] || args=(--preset small --global_batch 8 --steps 6)
exe=$build/bin/train_gpt shim=$(realpath "$build/lib/libblas_old_detect_shim.so")
unset OPENBLAS_CORETYPE SHARDRT_BLAS_AUTO SHARDRT_BLAS_DETECTED
one() { # env assignment -> "kernel best_tok/s"
  local out; out=$(env OPENBLAS_NUM_THREADS=1 "$1" "$exe" "${args[@]}" 2>&1)
  echo "$(grep -o 'kernel [A-Za-z]*' <<<"$out" | head -1 | cut -d' ' -f2)" \
       "$(grep '^step' <<<"$out" | tail -3 | sed 's/.*ms | *//; s/ tok.*//' | sort -n | tail -1)"
}
fb=() ch=()
for ((i = 1; i <= runs; i++)); do
  read -r k1 t1 <<<"$(one OPENBLAS_CORETYPE=Prescott)"; fb+=("$t1")
  read -r k2 t2 <<<"$(one LD_PRELOAD=$shim)"; ch+=("$t2")
  echo "run $i: fallback ($k1) $t1 tok/s | start-up choice ($k2) $t2 tok/s"
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[1], a[int((NR+1)/2)]}'; }
read -r fmin fmed <<<"$(stats "${fb[@]}")"; read -r cmin cmed <<<"$(stats "${ch[@]}")"
awk -v a="$fmin" -v b="$cmin" -v c="$fmed" -v d="$cmed" 'BEGIN {
  printf "min: fallback %d, choice %d tok/s (x%.2f) | median: fallback %d, choice %d tok/s (x%.2f)\n", a, b, b / a, c, d, d / c }'
