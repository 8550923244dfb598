#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `shardrt merge-weights` end to end: consolidates a synthetic 3-rank
# checkpoint, reports model size and peak RSS, rejects bad input with a
# usage error (exit 2) or a named failure (exit 1).
# usage: merge_weights_cli.sh SHARDRT_BIN FIXTURE_BIN
set -u
tool=$1
fixture=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/shardrt_mwcli_XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$fixture" --fixture "$dir" || fail "fixture"
out=$("$tool" merge-weights "$dir/ck" "$dir/out.safetensors" --dtype bf16 --optimizer) || fail "merge exited $?"
echo "$out"
echo "$out" | grep -q "15 tensors" || fail "expected 15 tensors"
echo "$out" | grep -q "model size (fp32 params): .* (332 bytes)" || fail "model size line"
echo "$out" | grep -q "peak RSS: " || fail "peak RSS line"
[ -s "$dir/out.safetensors" ] || fail "no output file"
ls "$dir" | grep -q tmp && fail "temporary file left behind"

"$tool" merge-weights "$dir/ck" >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing OUT must be a usage error"
"$tool" merge-weights "$dir/ck" "$dir/x.safetensors" --dtype int8 2>"$dir/err"; [ $? -eq 2 ] || fail "bad dtype exit"
grep -q "int8" "$dir/err" || fail "bad dtype not named"
"$tool" merge-weights "$dir/none" "$dir/x.safetensors" 2>"$dir/err"; [ $? -eq 1 ] || fail "missing checkpoint exit"
grep -q "meta.json" "$dir/err" || fail "missing checkpoint message"
[ -e "$dir/x.safetensors" ] && fail "output written for a failed merge"
echo "merge-weights CLI ok"
