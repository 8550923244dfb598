#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the build into a temporary prefix and builds + runs a consumer
# project through find_package(shardrt) and through pkg-config.
set -euo pipefail
BUILD=${1:?build dir}; SRC=${SHARDRT_SOURCE_DIR:?}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cmake --install "$BUILD" --prefix "$T/prefix" >/dev/null
cmake -S "$SRC/tests/consumer/project" -B "$T/b" -DCMAKE_PREFIX_PATH="$T/prefix" >/dev/null
cmake --build "$T/b" >/dev/null
LD_LIBRARY_PATH="$T/prefix/lib:${LD_LIBRARY_PATH:-}" "$T/b/consumer"
libs=$(PKG_CONFIG_PATH="$T/prefix/lib/pkgconfig" pkg-config --libs shardrt)
grep -q -- "-L$T/prefix/lib" <<<"$libs" || { echo "shardrt.pc does not point into the install prefix: $libs"; exit 1; }
echo "pkg-config: $(PKG_CONFIG_PATH="$T/prefix/lib/pkgconfig" pkg-config --libs shardrt)"
echo "1 passed, 0 failed"
