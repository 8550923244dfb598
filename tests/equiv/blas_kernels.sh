#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the float-comparing tests (every mpi-labelled equivalence test, the
# GPT and resume tests, the optimizer references) under OpenBLAS kernels
# Sandybridge (AVX), Haswell (AVX2), Zen (AVX2) and SkylakeX (AVX-512):
# each that this CPU can run. usage: blas_kernels.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { grep -qw "$1" <<<"$flags"; }
tests='test_equivalence|test_one_step|test_ds_schedule|test_loss_scale|train_mlp_equiv|gpt_|resume_check|test_optim_reference|test_device_cpu'
ran=0
for k in Sandybridge Haswell Zen SkylakeX; do
  case $k in
    Sandybridge) need=avx ;;
    Haswell | Zen) need=avx2 ;;
    SkylakeX) need=avx512f ;;
  esac
  if ! has "$need"; then
    echo "-- OPENBLAS_CORETYPE=$k: skipped, this CPU has no $need"
    continue
  fi
  # OpenBLAS says which kernel it loaded: proof the variable took effect.
  core=$(OPENBLAS_CORETYPE=$k OPENBLAS_VERBOSE=2 "$build/bin/train_mlp" --steps 1 --quiet 2>&1 | grep -m1 '^Core:' || true)
  echo "-- OPENBLAS_CORETYPE=$k (${core:-OpenBLAS did not report its kernel})"
  OPENBLAS_CORETYPE=$k ctest --test-dir "$build" --output-on-failure -j2 -R "$tests" -E cuda
  ran=$((ran + 1))
done
[ "$ran" -gt 0 ] || { echo "no OpenBLAS kernel could be tried on this CPU"; exit 1; }
