#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Fuzz test of one checkpoint-file reader (safetensors | meta). Always:
# replay the seed corpus (tests/fuzz/corpus/NAME: our own files and the
# crash inputs of issue #14, kept as regression cases) and its mutations in
# a plain driver. When clang can build the libFuzzer target, also fuzz for
# $SHARDRT_FUZZ_SECONDS (default 30) seconds from that corpus; a crash
# input is printed (base64) so it can be added to the corpus.
# usage: run_fuzz_files.sh NAME REPLAY_BIN SOURCE_DIR
set -u
NAME=$1
REPLAY=$2
SRC=$3
SECS=${SHARDRT_FUZZ_SECONDS:-30}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export TMPDIR="$TMP" # the meta harness writes its meta.json under it
CORPUS="$SRC/tests/fuzz/corpus/$NAME"

"$REPLAY" "$CORPUS"/* || { echo "FAIL: replay driver"; exit 1; }

case $NAME in
  safetensors) READER="$SRC/src/ckpt/safetensors_read.c" ;;
  meta) READER="$SRC/src/ckpt/meta.c" ;;
  *) echo "unknown target $NAME"; exit 2 ;;
esac
if command -v clang >/dev/null 2>&1 && [ "$SECS" -gt 0 ]; then
  if clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -DSHARDRT_BUILDING \
      -I"$SRC/include" -I"$SRC" "$SRC/tests/fuzz/fuzz_$NAME.c" "$READER" "$SRC"/src/ckpt/json.c \
      "$SRC"/src/ckpt/crc32c.c "$SRC"/src/ckpt/durable.c "$SRC"/src/core/error.c "$SRC"/src/core/dtype.c \
      -ljansson -lm -o "$TMP/fuzz" 2>"$TMP/build.log"; then
    mkdir -p "$TMP/corpus"
    cp "$CORPUS"/* "$TMP/corpus/"
    "$TMP/fuzz" "$TMP/corpus" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$TMP/" >"$TMP/fuzz.log" 2>&1
    rc=$?
    tail -3 "$TMP/fuzz.log"
    if [ $rc -ne 0 ]; then
      echo "FAIL: the fuzzer found a crash:"; grep -A30 "ERROR\|==" "$TMP/fuzz.log" | head -50
      for a in "$TMP"/crash-* "$TMP"/timeout-* "$TMP"/leak-*; do
        [ -f "$a" ] && { echo "input $(basename "$a") (base64):"; base64 "$a" | head -40; }
      done
      exit 1
    fi
  else
    echo "note: clang could not build the fuzzer (replay only):"; tail -5 "$TMP/build.log"
  fi
else
  echo "note: no clang or SHARDRT_FUZZ_SECONDS=0; replay only"
fi
echo "$NAME fuzz test passed"
