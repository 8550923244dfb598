#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# train_gpt, given an OpenBLAS that detected its fallback kernel (simulated by
# an LD_PRELOAD shim), re-executes itself with OPENBLAS_CORETYPE set to the
# best kernel the CPU allows, says so in its banner, and trains the same
# losses as a run that set the kernel by hand; SHARDRT_BLAS_AUTO=0 and a
# user's OPENBLAS_CORETYPE are left alone. Also under mpirun (2 ranks).
# usage: test_gpt_blas_reexec.sh TRAINER SHIM.so [MPI_PATTERN]
#   TRAINER: train_gpt, or train_mlp (the same check, examples/common);
#   MPI_PATTERN: what the 2-rank run prints when it trained (default "world 2")
set -u
exe=$1 shim=$2 trained=${3:-world 2}
unset SHARDRT_BLAS_AUTO OPENBLAS_CORETYPE SHARDRT_BLAS_DETECTED
# in the ASan stage the uninstrumented shim is preloaded ahead of the ASan
# runtime, which ASan refuses by default; the shim allocates nothing
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
if grep -qw avx512bw /proc/cpuinfo && grep -qw avx512dq /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo; then
  want=SkylakeX
elif grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
  want=Haswell
else
  echo "SKIP: CPU has neither AVX-512 nor AVX2+FMA: no better kernel to choose"; exit 77
fi
fail=0
check() { # name, output, pattern
  if grep -q -- "$3" <<<"$2"; then echo "ok: $1"; else echo "FAIL: $1: no '$3' in:"; echo "$2"; fail=1; fi
}
losses() { grep '^step' <<<"$1" | sed 's/ms.*//; s/|[^|]*$//'; }
args=(--steps 3 --seed 7)

auto=$(LD_PRELOAD=$shim "$exe" "${args[@]}" 2>&1)
check "auto re-exec" "$auto" "kernel $want (chosen at start-up: OpenBLAS detected Prescott"
byhand=$(OPENBLAS_CORETYPE=$want "$exe" "${args[@]}" 2>&1)
check "hand-set kernel" "$byhand" "kernel $want (set by OPENBLAS_CORETYPE=$want)"
if [ "$(losses "$auto")" != "$(losses "$byhand")" ] || [ -z "$(losses "$auto")" ]; then
  echo "FAIL: re-executed run's losses differ from the hand-set run's"; fail=1
else echo "ok: same losses"; fi
off=$(SHARDRT_BLAS_AUTO=0 LD_PRELOAD=$shim "$exe" "${args[@]}" 2>&1)
check "SHARDRT_BLAS_AUTO=0 keeps detection" "$off" "kernel Prescott (detected)"
user=$(OPENBLAS_CORETYPE=Haswell LD_PRELOAD=$shim "$exe" "${args[@]}" 2>&1)
check "user's OPENBLAS_CORETYPE kept" "$user" "kernel Haswell (set by OPENBLAS_CORETYPE=Haswell)"
if [ -n "${SHARDRT_MPIRUN:-}" ]; then
  mpi=$("$SHARDRT_MPIRUN" --oversubscribe --bind-to none --mca btl self,vader -np 2 -x LD_PRELOAD=$shim "$exe" "${args[@]}" 2>&1)
  check "re-exec under mpirun" "$mpi" "kernel $want (chosen at start-up"
  check "mpirun run trains" "$mpi" "$trained"
fi
exit $fail
