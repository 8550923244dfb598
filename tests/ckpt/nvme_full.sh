#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs test_nvme_full on a 1 MiB tmpfs mounted in a private mount namespace
# (unshare -rm needs no privileges where user namespaces are allowed; skips,
# exit 77, where they are not). usage: nvme_full.sh TEST_BIN
BIN=$1
DIR=$(mktemp -d)
trap 'rmdir "$DIR" 2>/dev/null' EXIT
if ! unshare -rm sh -c "mount -t tmpfs -o size=1m tmpfs '$DIR'" 2>/dev/null; then
  echo "SKIP: cannot mount a small tmpfs here (unshare -rm refused)"; exit 77
fi
exec unshare -rm sh -c "mount -t tmpfs -o size=1m tmpfs '$DIR' && exec '$BIN' '$DIR'"
