#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The config fuzz test. Always: replay the seed corpus (configs/) and
# thousands of mutations through the loaders in a plain driver. When a
# libFuzzer build exists (-DSHARDRT_FUZZ=ON with clang) or clang can build
# one here, also fuzz for $SHARDRT_FUZZ_SECONDS (default 60) seconds.
# usage: run_fuzz.sh REPLAY_BIN FUZZ_BIN|none SOURCE_DIR
set -u
REPLAY=$1
FUZZ=$2; [ "$FUZZ" = none ] && FUZZ=""
SRC=$3
SECS=${SHARDRT_FUZZ_SECONDS:-60}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$REPLAY" "$SRC"/configs/*.yaml "$SRC"/configs/*.json || { echo "FAIL: replay driver"; exit 1; }

if [ -z "$FUZZ" ] || [ ! -x "$FUZZ" ]; then
  if command -v clang >/dev/null 2>&1 && [ "$SECS" -gt 0 ]; then
    echo "building the libFuzzer target with clang"
    if clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -DSHARDRT_BUILDING \
        -I"$SRC/include" -I"$SRC" "$SRC"/tests/fuzz/fuzz_config.c "$SRC"/src/config/*.c "$SRC"/src/core/error.c \
        "$SRC"/src/core/plan.c "$SRC"/src/core/plan_format.c "$SRC"/src/core/dtype.c -lyaml -lm \
        -o "$TMP/fuzz_config" 2>"$TMP/build.log"; then
      FUZZ="$TMP/fuzz_config"
    else
      echo "note: clang could not build the fuzzer (replay only):"; tail -5 "$TMP/build.log"
    fi
  else
    echo "note: no clang; replay only"
  fi
fi
if [ -n "$FUZZ" ] && [ -x "$FUZZ" ] && [ "$SECS" -gt 0 ]; then
  mkdir -p "$TMP/corpus"
  i=0
  for f in "$SRC"/configs/*.yaml "$SRC"/configs/*.json; do
    for mode in 0 1 2; do
      i=$((i + 1))
      { printf "\\00$mode"; cat "$f"; } >"$TMP/corpus/seed$i"
    done
  done
  "$FUZZ" "$TMP/corpus" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$TMP/" >"$TMP/fuzz.log" 2>&1
  rc=$?
  tail -3 "$TMP/fuzz.log"
  if [ $rc -ne 0 ]; then
    echo "FAIL: the fuzzer found a crash:"; grep -A20 "ERROR\|==" "$TMP/fuzz.log" | head -40
    ls "$TMP"/crash-* "$TMP"/timeout-* 2>/dev/null
    exit 1
  fi
fi
echo "config fuzz test passed"
