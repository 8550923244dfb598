#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CI proof of the GPU kit without a GPU: builds the kit (make_kit.sh),
# makes a clean minimal Debian 12 root with debootstrap (a compiler, CMake
# and Python, as the GPU machine has; no Open MPI, libyaml, cmocka,
# OpenBLAS, pkg-config, make or ssh), bind-mounts the CUDA toolkit into it
# and runs the entry script's CPU-checkable part there: configure, build,
# ctest -L mpi, and every cuda test skipping (77, never 127).
#
#   tools/gpu/ci_chroot.sh           (root; needs network to the Debian mirror)
#
# The root is kept in $SHARDRT_CI_CACHE (default .ci-cache/ in the repo,
# git-ignored) and reused when present.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${SHARDRT_CI_CACHE:-$ROOT/.ci-cache}
MIRROR=${SHARDRT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
FS=$CACHE/debian-root
t0=$SECONDS
mkdir -p "$CACHE"

export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null; then
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
fi

echo "== gpu kit: make"
bash "$ROOT/tools/gpu/make_kit.sh"
t_kit=$((SECONDS - t0))

if [ ! -f "$FS/.shardrt-complete" ]; then
  echo "== gpu kit: debootstrap a minimal Debian 12 root ($FS)"
  rm -rf "$FS"
  debootstrap --variant=minbase --include=gcc,g++,cmake,python3 bookworm "$FS" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -n 20 "$CACHE/debootstrap.log"; echo "debootstrap failed"; exit 1; }
  touch "$FS/.shardrt-complete"
else
  echo "== gpu kit: reusing the Debian root in $FS"
fi
t_root=$((SECONDS - t0 - t_kit))
# The root must lack what the kit brings, else it proves nothing.
for p in openmpi-bin libopenmpi-dev libyaml-dev libjansson-dev libcmocka-dev libopenblas-dev pkgconf pkg-config make openssh-client; do
  if chroot "$FS" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "the clean root has $p installed: it would hide a gap in the kit"; exit 1
  fi
done

# The tree (tracked and untracked-not-ignored files, as the GPU session gets
# it) plus the kit, copied fresh.
rm -rf "$FS/src" "$FS/out" && mkdir -p "$FS/src/.gpu-kit" "$FS/out"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -C "$FS/src" -xf -
cp "$ROOT/.gpu-kit/shardrt-kit.tar.gz" "$FS/src/.gpu-kit/"

CUDA=$(readlink -f /usr/local/cuda 2>/dev/null || true)
mounts=()
cleanup() { for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[$i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
mount -t proc proc "$FS/proc" && mounts+=("$FS/proc")
mount --rbind /dev "$FS/dev" && mount --make-rslave "$FS/dev" && mounts+=("$FS/dev")
if [ -n "$CUDA" ] && [ -x "$CUDA/bin/nvcc" ]; then
  mkdir -p "$FS/usr/local/cuda"
  mount --bind "$CUDA" "$FS/usr/local/cuda" && mount -o remount,bind,ro "$FS/usr/local/cuda" && mounts+=("$FS/usr/local/cuda")
  echo "== gpu kit: CUDA toolkit $CUDA bind-mounted"
else
  echo "== gpu kit: no CUDA toolkit on this machine: the chroot build is CPU-only"
fi

echo "== gpu kit: entry script, CPU-checkable part, in the clean root"
rc=0
chroot "$FS" /usr/bin/env -i HOME=/root PATH=/usr/local/cuda/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  /bin/bash /src/tools/gpu/run_gpu.sh --cpu-only --budget 3000 /out || rc=$?
cleanup
mounts=()
t_run=$((SECONDS - t0 - t_kit - t_root))
echo "== gpu kit: kit ${t_kit} s, root ${t_root} s, configure+build+tests in the root ${t_run} s"
[ $rc = 0 ] || { tar -xzOf "$FS/out/logs.tar.gz" --wildcards '*.log' 2>/dev/null | tail -n 80; }
exit $rc
