#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Everything that needs a GPU, in one run: kept under this name for the
# docs and habits that call it; the work is tools/gpu/run_gpu.sh (the kit,
# CUDA/NCCL discovery, build, every GPU check and benchmark under a time
# budget, at most 8 result files).
#
#   tests/bench/gpu_session.sh [--budget SECONDS] [OUT_DIR]     (default: gpu-results)
exec bash "$(dirname "$0")/../../tools/gpu/run_gpu.sh" "$@"
