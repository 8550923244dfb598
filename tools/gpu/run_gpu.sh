#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The one command for a GPU session (device time is scarce: one run, about
# 8 minutes, rerunnable). On a bare machine it unpacks the dependency kit
# (.gpu-kit/shardrt-kit.tar.gz, made by tools/gpu/make_kit.sh), finds CUDA,
# cuBLAS and NCCL in the toolkit or in the pip wheels, configures and builds
# with every core, then runs, each part under `timeout` and within a time
# budget (no part starts when too little is left):
#   ctest -L cuda; train_mlp --device cuda at world 1 (NCCL, also with the
#   one-rank collectives through NCCL) and world 2 (both ranks on the one
#   GPU, MPI staged through the host); bench_kernels; the gpt2 benchmark;
#   compute-sanitizer memcheck/racecheck/synccheck on the kernel tests and a
#   short training run; tests/bench/gpu_gpt_vs_torch.sh when it exists;
#   ctest -L mpi with what time is left.
# A failing GPU part is rerun once with CUDA_LAUNCH_BLOCKING=1 to locate an
# asynchronous fault. OUT gets at most 8 files: summary.txt (what passed,
# failed or did not run, and what was found where), figures.txt (the
# benchmarks' tables) and logs.tar.gz (every part's log, step logs).
#
#   tools/gpu/run_gpu.sh [--budget SECONDS] [--only "GLOB..."] [--cpu-only] [OUT_DIR]
#
# --only runs just the parts whose names match one of the globs (configure
# and build always run), e.g. a rerun of what failed: --only "mlp_* sanitizer_*".
# --cpu-only (CI, no GPU): configure, build, ctest -L mpi, and ctest -L cuda
# whose tests skip (exit 77) or run their CPU half, never fail to load (127).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUDGET=480 CPU_ONLY=0 OUT="" ONLY=""
while [ $# -gt 0 ]; do
  case $1 in
    --budget) BUDGET=$2; shift 2;;
    --cpu-only) CPU_ONLY=1; shift;;
    --only) ONLY=$2; shift 2;;
    -h|--help) sed -n '2,27p' "$0"; exit 0;;
    -*) echo "run_gpu: unknown option $1" >&2; exit 2;;
    *) OUT=$1; shift;;
  esac
done
OUT=${OUT:-${SHARDRT_GPU_OUT:-gpu-results}}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || { echo "run_gpu: cannot create $OUT" >&2; exit 2; }
cd "$ROOT" || exit 2
T0=$SECONDS
SCRATCH=${SHARDRT_GPU_SCRATCH:-/tmp/shardrt-gpu}
LOGS=$SCRATCH/logs
BUILD=${SHARDRT_GPU_BUILD:-$ROOT/build-gpu}
rm -rf "$LOGS"; mkdir -p "$LOGS"
SUMMARY=$OUT/summary.txt FIGURES=$OUT/figures.txt
: >"$SUMMARY"; : >"$FIGURES"
failed=0
say() { echo "$*" | tee -a "$SUMMARY"; }
left() { echo $((BUDGET - (SECONDS - T0))); }

# part NAME MIN_S CAP_S command...: runs when at least MIN_S are left, under
# timeout min(CAP_S, time left - 15 s); output to logs/NAME.log.
part() {
  local name=$1 min=$2 cap=$3; shift 3
  if [ -n "$ONLY" ] && [ "$name" != configure ] && [ "$name" != build ]; then
    local g hit=0 pats
    read -ra pats <<<"$ONLY"   # split without expanding the globs against files
    # shellcheck disable=SC2053 # the right side is a glob on purpose
    for g in "${pats[@]}"; do [[ $name == $g ]] && hit=1; done
    [ $hit = 1 ] || return 0
  fi
  local l; l=$(left)
  if [ "$l" -lt "$min" ]; then say "not run $name (budget: ${l} s left, needs ${min} s)"; return 0; fi
  local lim=$((l - 15 < cap ? l - 15 : cap)) t0=$SECONDS rc
  # bash -c: a part may be one of this script's functions (exported below).
  timeout -k 10 "$lim" bash -c '"$@"' _ "$@" >"$LOGS/$name.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then
    say "ok      $name ($((SECONDS - t0)) s)"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    say "TIMEOUT $name (limit ${lim} s): see logs/$name.log"; failed=1
  else
    say "FAILED  $name (exit $rc, $((SECONDS - t0)) s): see logs/$name.log"; failed=1
    # The first error lines say more than the launcher's closing words.
    { grep -m 4 -iE "error|fail|abort|illegal|violation" "$LOGS/$name.log" || tail -n 4 "$LOGS/$name.log"; } |
      cut -c1-200 | sed 's/^/        | /' | tee -a "$SUMMARY"
    # Kernel launches are asynchronous: a fault surfaces at a later call.
    # Serialised launches report it where it happens.
    if [ "$CPU_ONLY" = 0 ] && [ "${GPU_PART:-0}" = 1 ] && [ "$(left)" -gt $((min + 15)) ]; then
      l=$(left); lim=$((l - 15 < cap ? l - 15 : cap))
      CUDA_LAUNCH_BLOCKING=1 timeout -k 10 "$lim" bash -c '"$@"' _ "$@" >"$LOGS/${name}_blocking.log" 2>&1
      say "        rerun with CUDA_LAUNCH_BLOCKING=1: exit $? (logs/${name}_blocking.log)"
    fi
  fi
  return 0
}
gpu_part() { GPU_PART=1 part "$@"; }

finish() {
  say "total $((SECONDS - T0)) s of a ${BUDGET} s budget; $([ $failed = 0 ] && echo 'every part that ran passed' || echo 'SOME PARTS FAILED')"
  cp "$SUMMARY" "$LOGS/summary.txt"
  tar -C "$SCRATCH" -czf "$OUT/logs.tar.gz" logs 2>/dev/null
  exit $failed
}

# ---- the kit and the environment ----
KIT_TAR=${SHARDRT_GPU_KIT:-$ROOT/.gpu-kit/shardrt-kit.tar.gz}
if [ -f "$KIT_TAR" ]; then
  rm -rf "$SCRATCH/kit" && tar -C "$SCRATCH" -xzf "$KIT_TAR" && . "$SCRATCH/kit/env.sh" &&
    say "kit     $KIT_TAR unpacked to $SCRATCH/kit" || { say "FAILED  kit unpack"; failed=1; finish; }
else
  say "kit     none at $KIT_TAR: using the system's MPI, libyaml, cmocka, BLAS"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm_rsh_agent=${OMPI_MCA_plm_rsh_agent:-false}
say "glibc   $(ldd --version 2>/dev/null | head -1 | awk '{print $NF}') (the kit needs >= 2.36)"

# ---- CUDA, cuBLAS, NCCL: toolkit first, then the pip wheels ----
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
CUDA_ROOT=${NVCC:+$(dirname "$(dirname "$(readlink -f "$NVCC")")")}
say "nvcc    ${NVCC:-not found} ${NVCC:+($("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))}"
SITE=$(python3 -c 'import site,sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()] + sys.path))' 2>/dev/null)
LINKS=$SCRATCH/cuda-links
mkdir -p "$LINKS"
# find_lib NAME SONAME WHEEL_SUBDIR: prints the library's path; a wheel's
# versioned-only library gets an unversioned link (what CMake looks for).
find_lib() {
  local name=$1 so=$2 sub=$3 d
  for d in "$CUDA_ROOT/lib64" "$CUDA_ROOT/lib" "$CUDA_ROOT/targets/x86_64-linux/lib"; do
    [ -e "$d/lib$name.so" ] && { echo "$d/lib$name.so"; return; }
  done
  for d in $SITE; do
    if [ -e "$d/nvidia/$sub/lib/$so" ]; then
      ln -sf "$d/nvidia/$sub/lib/$so" "$LINKS/lib$name.so"
      echo "$LINKS/lib$name.so"; return
    fi
  done
}
CMAKE_EXTRA=()
CUBLAS=$(find_lib cublas libcublas.so.13 cu13) ; [ -n "$CUBLAS" ] || CUBLAS=$(find_lib cublas libcublas.so.13 cublas)
CUBLASLT=$(find_lib cublasLt libcublasLt.so.13 cu13); [ -n "$CUBLASLT" ] || CUBLASLT=$(find_lib cublasLt libcublasLt.so.13 cublas)
NCCL=$(find_lib nccl libnccl.so.2 nccl)
say "cublas  ${CUBLAS:-not found} ${CUBLASLT:+(Lt: $CUBLASLT)}"
say "nccl    ${NCCL:-not found}"
if [ -n "$CUBLAS" ]; then
  CMAKE_EXTRA+=(-DCUDA_cublas_LIBRARY="$CUBLAS")
  [ -n "$CUBLASLT" ] && CMAKE_EXTRA+=(-DCUDA_cublasLt_LIBRARY="$CUBLASLT")
fi
if [ -n "$NCCL" ]; then
  nroot=$(dirname "$(dirname "$(readlink -f "$NCCL")")")
  [ -e "$nroot/include/nccl.h" ] || nroot=$CUDA_ROOT
  CMAKE_EXTRA+=(-DNCCL_ROOT="$nroot")
fi
# The build's RUNPATH names these; the loader path covers a wheel's own
# dependencies (libcublasLt next to libcublas).
for f in "$CUBLAS" "$CUBLASLT" "$NCCL"; do
  [ -n "$f" ] && LD_LIBRARY_PATH=$(dirname "$(readlink -f "$f")")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
done
export LD_LIBRARY_PATH
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
say "gpu     ${GPU:-none visible}"
if [ "$CPU_ONLY" = 0 ] && [ -z "$GPU" ]; then say "no GPU: running the CPU-checkable part only"; CPU_ONLY=1; fi
for t in compute-sanitizer ninja; do say "$t $(command -v $t || echo 'not found')"; done

# ---- configure and build ----
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
# Warnings are errors where the compiler is CI's; on the GPU machine's own
# (possibly newer) compiler a new warning must not cost the session.
if [ "$CPU_ONLY" = 1 ]; then ARCHS=90 CUDA_MODE=${NVCC:+ON} WERROR=ON; else
  # The GPU's own architecture (9.0 -> 90, sm_90 on an H200); CMake's
  # "native" detection as the fallback.
  ARCHS=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
  [[ $ARCHS =~ ^[0-9]+$ ]] || ARCHS=native
  CUDA_MODE=ON WERROR=OFF
fi
say "arch    ${ARCHS}"
[ -n "$NVCC" ] && CMAKE_EXTRA+=(-DCMAKE_CUDA_COMPILER="$NVCC")
part configure 60 300 cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DSHARDRT_WERROR="$WERROR" \
  -DSHARDRT_CUDA="${CUDA_MODE:-AUTO}" -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" "${CMAKE_EXTRA[@]}"
grep -q "^ok      configure" "$SUMMARY" || { failed=1; finish; }
part build 60 420 cmake --build "$BUILD" -j"$(nproc)"
grep -q "^ok      build" "$SUMMARY" || { failed=1; finish; }
BIN=$BUILD/bin
export SHARDRT_BIN_DIR=$BIN

if [ "$CPU_ONLY" = 1 ]; then
  part ctest_mpi 30 900 ctest --test-dir "$BUILD" -L mpi -j"$(nproc)" --output-on-failure
  # Without a GPU the cuda tests skip (77) or run their CPU half; one whose
  # binary cannot load its libraries exits 127 and counts as failed.
  part ctest_cuda_skips 10 300 bash -c '
    ctest --test-dir "$1" -L cuda --output-on-failure >"$2/ctest_cuda_raw.log" 2>&1; rc=$?
    cat "$2/ctest_cuda_raw.log"
    grep -q "error while loading shared libraries" "$2/ctest_cuda_raw.log" && { echo "a CUDA binary did not load"; exit 1; }
    n=$(grep -cE "Test +#[0-9]+: .*(Passed|Skipped|\*\*\*)" "$2/ctest_cuda_raw.log")
    s=$(grep -cE "Test +#[0-9]+: .*Skipped" "$2/ctest_cuda_raw.log")
    echo "cuda tests: $n, skipped: $s"
    [ "$rc" = 0 ] && [ "$n" -gt 0 ] && [ "$s" -gt 0 ]' _ "$BUILD" "$LOGS"
  grep -h "^cuda tests:" "$LOGS/ctest_cuda_skips.log" 2>/dev/null | sed 's/^/        /' | tee -a "$SUMMARY"
  finish
fi

# ---- GPU parts ----
# On a GPU no cuda test may skip: a skip here means the GPU was not usable.
gpu_part ctest_cuda 30 240 bash -c '
  ctest --test-dir "$1" -L cuda --output-on-failure >"$2/ctest_cuda_raw.log" 2>&1; rc=$?
  cat "$2/ctest_cuda_raw.log"
  n=$(grep -cE "Test +#[0-9]+: " "$2/ctest_cuda_raw.log")
  s=$(grep -cE "Test +#[0-9]+: .*Skipped" "$2/ctest_cuda_raw.log")
  echo "cuda tests: $n, skipped: $s"
  [ "$rc" = 0 ] && [ "$n" -gt 0 ] && [ "$s" = 0 ]' _ "$BUILD" "$LOGS"
grep -h "^cuda tests:" "$LOGS/ctest_cuda.log" 2>/dev/null | sed 's/^/        /' | tee -a "$SUMMARY"
mlp() { # np config comm [env...]
  local np=$1 cfg=$2 comm=$3; shift 3
  env "$@" "$BIN/shardrt" launch --config_file "configs/$cfg" --num_processes "$np" "$BIN/train_mlp" --device cuda \
    --comm "$comm" --steps 50 --global_batch 64 --hidden 1024 --layers 8 --log "$LOGS/mlp_np${np}_${comm}_$cfg.jsonl"
}
export -f mlp
export BIN LOGS
gpu_part mlp_np1_nccl_full 20 90 mlp 1 fsdp_full_shard.yaml nccl
gpu_part mlp_np1_nccl_full_through 20 90 mlp 1 fsdp_full_shard.yaml nccl SHARDRT_COLL_SINGLE_RANK=1 SHARDRT_COLL_TIMEOUT_S=60
gpu_part mlp_np1_nccl_noshard 20 90 mlp 1 fsdp_no_shard.yaml nccl
gpu_part mlp_np2_mpi_full 20 120 mlp 2 fsdp_full_shard.yaml mpi
gpu_part mlp_np2_mpi_noshard 20 120 mlp 2 fsdp_no_shard.yaml mpi
gpu_part mlp_np1_offload 20 90 mlp 1 fsdp_offload.yaml nccl SHARDRT_COLL_SINGLE_RANK=1
gpu_part bench_kernels 20 90 "$BIN/bench_kernels"
gpu_part bench_gpt2 60 180 tests/bench/bench_strategies.sh --np 1 --device cuda --preset gpt2 --global_batch 8 --steps 12 --repeats 1 \
  --strategies "NO_SHARD FULL_SHARD" -- --mixed_precision bf16
# The side-by-side with PyTorch FSDP2 (eager and compiled), when the tree has it.
if [ -f tests/bench/gpu_gpt_vs_torch.sh ]; then
  gpu_part gpt_vs_torch 120 300 bash tests/bench/gpu_gpt_vs_torch.sh "$LOGS/gpt_vs_torch"
fi
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck synccheck; do
    gpu_part sanitizer_${tool}_kernels 30 120 compute-sanitizer --tool "$tool" --error-exitcode 1 "$BUILD/tests/test_kernels"
  done
  gpu_part sanitizer_memcheck_train 30 120 compute-sanitizer --tool memcheck --error-exitcode 1 --target-processes all \
    mpirun -np 1 "$BIN/train_mlp" --device cuda --comm nccl --steps 3 --global_batch 16 --hidden 256 --layers 2
else
  say "not run sanitizers (compute-sanitizer not found)"
fi
part ctest_mpi 60 240 ctest --test-dir "$BUILD" -L mpi -LE cuda -j"$(nproc)" --output-on-failure

for f in bench_kernels bench_gpt2; do
  [ -s "$LOGS/$f.log" ] && { echo "== $f"; cat "$LOGS/$f.log"; echo; } >>"$FIGURES"
done
[ -s "$LOGS/gpt_vs_torch/gpt_vs_torch.txt" ] && { echo "== gpt_vs_torch"; cat "$LOGS/gpt_vs_torch/gpt_vs_torch.txt"; } >>"$FIGURES"
finish
