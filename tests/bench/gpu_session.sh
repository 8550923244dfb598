#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Everything that needs a GPU, in one run, for a session that is lent one
# (device time is scarce: one command, results in a folder):
#   1. build with CUDA for this GPU;   2. ctest -L cuda;
#   3. train_mlp --device cuda at world 1 (NCCL) and world 2 (MPI staged
#      through the host, both ranks on the one GPU), FULL_SHARD and NO_SHARD;
#   4. bench_kernels;   5. the gpt2 preset, NO_SHARD vs FULL_SHARD, bf16;
#   6. the same against PyTorch FSDP2 eager and compiled (gpu_gpt_vs_torch.sh).
# Each part's output goes to OUT/<part>.log; a summary to OUT/summary.txt.
# A failing part does not stop the others; the exit status says if any failed.
#
#   tests/bench/gpu_session.sh [OUT_DIR]        (default: gpu-results)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-gpu-results}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT" || exit 2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
JOBS=$(nproc)
failed=0
part() { # name command...
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$OUT/$name.log" 2>&1; then
    echo "ok     $name ($((SECONDS - t0)) s)" | tee -a "$OUT/summary.txt"
  else
    echo "FAILED $name ($((SECONDS - t0)) s): see $name.log" | tee -a "$OUT/summary.txt"
    failed=1
  fi
}
: >"$OUT/summary.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt" >>"$OUT/summary.txt"

part build bash -c "cmake -S . -B build -DSHARDRT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native -DCMAKE_BUILD_TYPE=Release \
  && cmake --build build -j$JOBS"
part ctest_cuda ctest --test-dir build -L cuda --output-on-failure
mlp() { # np config comm
  build/bin/shardrt launch --config_file "configs/$2" --num_processes "$1" build/bin/train_mlp --device cuda \
    --comm "$3" --steps 50 --global_batch 64 --hidden 1024 --layers 8 --log "$OUT/mlp_np$1_$2.jsonl"
}
part mlp_np1_nccl_full mlp 1 fsdp_full_shard.yaml nccl
part mlp_np1_nccl_noshard mlp 1 fsdp_no_shard.yaml nccl
part mlp_np2_mpi_full mlp 2 fsdp_full_shard.yaml mpi
part mlp_np2_mpi_noshard mlp 2 fsdp_no_shard.yaml mpi
part bench_kernels build/bin/bench_kernels
part bench_gpt2 tests/bench/bench_strategies.sh --np 1 --device cuda --preset gpt2 --global_batch 8 --steps 12 \
  --strategies "NO_SHARD FULL_SHARD" -- --mixed_precision bf16
tail -n 4 "$OUT/bench_gpt2.log" >>"$OUT/summary.txt" 2>/dev/null
part gpt_vs_torch tests/bench/gpu_gpt_vs_torch.sh "$OUT/gpt_vs_torch"
cat "$OUT/gpt_vs_torch/summary.txt" >>"$OUT/summary.txt" 2>/dev/null
exit $failed
