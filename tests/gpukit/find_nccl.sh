#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# FindNCCL finds NCCL where the pip wheel (nvidia-nccl-cu*) puts it:
# site-packages/nvidia/nccl/{include/nccl.h, lib/libnccl.so.2}, with only the
# versioned library; from NCCL_ROOT, and by itself through python3's paths.
# Header and library come from the same root. (A fake wheel: find_library
# only needs the file to exist.)
set -euo pipefail
MODULES=$1 CMAKE=$2
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
W=$T/site/nvidia/nccl
mkdir -p "$W/include" "$W/lib" "$T/proj"
printf '#define NCCL_MAJOR 2\n#define NCCL_MINOR 99\n#define NCCL_PATCH 7\n' >"$W/include/nccl.h"
: >"$W/lib/libnccl.so.2"
cat >"$T/proj/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.24)
project(t LANGUAGES C)
list(APPEND CMAKE_MODULE_PATH $MODULES)
find_package(NCCL REQUIRED)
message(STATUS "FOUND lib=\${NCCL_LIBRARY} inc=\${NCCL_INCLUDE_DIR} version=\${NCCL_VERSION}")
CM
# A toolkit's or the system's own NCCL would be found first; hide them.
ign="/usr/local/cuda/lib;/usr/local/cuda/lib64;/usr/local/cuda/include;/usr/lib/x86_64-linux-gnu;/usr/include"
for d in /usr/local/cuda-*; do [ -d "$d" ] && ign="$ign;$d/lib;$d/lib64;$d/include;$d/targets/x86_64-linux/lib"; done
check() { # name cmake-args...
  local name=$1; shift
  rm -rf "$T/b"
  local out; out=$("$@" 2>&1) || { echo "$name: configure failed"; echo "$out"; exit 1; }
  grep -q "FOUND lib=$W/lib/libnccl.so.2 inc=$W/include version=2.99.7" <<<"$out" ||
    { echo "$name: wrong result"; grep FOUND <<<"$out"; exit 1; }
  echo "$name: ok"
}
check "NCCL_ROOT" "$CMAKE" -S "$T/proj" -B "$T/b" -DNCCL_ROOT="$W" "-DCMAKE_IGNORE_PATH=$ign"
command -v python3 >/dev/null || { echo "no python3: the wheel search is not tested"; exit 77; }
check "wheel on python3's path" env PYTHONPATH="$T/site" "$CMAKE" -S "$T/proj" -B "$T/b" "-DCMAKE_IGNORE_PATH=$ign"
echo "2 passed, 0 failed"
