#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A/B tokens/s of two train_gpt binaries (or two flag sets) on one shape,
# runs alternated (A B A B ...) so machine noise hits both alike; prints
# each run's median step tokens/s (first 2 steps excluded) and the median
# over runs, and the ratio B/A.
#   tests/bench/bench_gpt_ab.sh [--runs N] [--steps S] [--env-a "V=x ..."] [--env-b "V=y ..."] \
#       BIN_A BIN_B -- [train_gpt flags]
# Default flags: --preset small --global_batch 8; world 1, one thread
# (OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 unless already set; --env-a /
# --env-b add variables for one side, e.g. a thread count).
set -euo pipefail
runs=5 steps=12 enva="" envb=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --env-a) enva=$2; shift 2 ;;
    --env-b) envb=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "usage: $0 [--runs N] [--steps S] BIN_A BIN_B [-- flags]" >&2; exit 2; }
A=$1 B=$2; shift 2
[ "${1:-}" = "--" ] && shift
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--preset small --global_batch 8)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
one() { # env bin log -> median tokens/s of steps > 2
  # shellcheck disable=SC2086
  env $1 "$2" "${flags[@]}" --steps "$steps" --quiet --log "$3" >/dev/null
  python3 -c "import json,sys; [print(json.loads(l)['tokens_per_s']) for l in open(sys.argv[1]) if json.loads(l)['step']>2]" "$3" | median
}
ra=() rb=()
for i in $(seq "$runs"); do
  ra+=("$(one "$enva" "$A" "$tmp/a$i.jsonl")")
  rb+=("$(one "$envb" "$B" "$tmp/b$i.jsonl")")
  echo "run $i: A ${ra[-1]} tok/s, B ${rb[-1]} tok/s"
done
ma=$(printf '%s\n' "${ra[@]}" | median) mb=$(printf '%s\n' "${rb[@]}" | median)
echo "flags: ${flags[*]} --steps $steps; OMP_NUM_THREADS=$OMP_NUM_THREADS OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
[ -z "$enva$envb" ] || echo "env A: ${enva:-(none)}; env B: ${envb:-(none)}"
printf 'A %s: median %.0f tok/s\nB %s: median %.0f tok/s\nB / A = %.2f\n' "$A" "$ma" "$B" "$mb" "$(echo "$mb / $ma" | bc -l)"
