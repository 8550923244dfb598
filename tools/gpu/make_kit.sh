#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes the dependency kit a bare GPU machine lacks (it has the CUDA
# toolkit, CMake, a compiler and Python, but no package manager that reaches
# anything): Open MPI 4.1 and its runtime libraries, libyaml, jansson, cmocka,
# OpenBLAS (with libgfortran/libquadmath), pkgconf and make, as Debian 12
# packages unpacked with dpkg-deb into one relocatable prefix, pruned, and
# packed into .gpu-kit/shardrt-kit.tar.gz (git-ignored; it travels with the
# working tree). tools/gpu/run_gpu.sh unpacks and uses it.
#
#   tools/gpu/make_kit.sh [OUT.tar.gz]        (needs apt-get and dpkg-deb)
#
# The binaries need glibc >= 2.36 (Debian 12's) on the target.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/.gpu-kit/shardrt-kit.tar.gz}
WORK=${KIT_WORK:-$(mktemp -d)}
trap '[ -n "${KIT_WORK:-}" ] || rm -rf "$WORK"' EXIT
ARCH=x86_64-linux-gnu

PKGS="openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev
  libevent-core-2.1-7 libevent-pthreads-2.1-7 libhwloc15 libpmix2 libmunge2 libudev1
  libyaml-0-2 libyaml-dev libcmocka0 libcmocka-dev libjansson4 libjansson-dev
  libopenblas0 libopenblas0-pthread libopenblas-dev libopenblas-pthread-dev libgfortran5 libquadmath0
  pkgconf pkgconf-bin libpkgconf3 make"

mkdir -p "$WORK/debs" "$WORK/kit"
# apt-get download runs as the _apt user where it can: the folder must be
# writable by it, else apt warns and downloads unsandboxed.
chmod 0777 "$WORK/debs"
if ! (cd "$WORK/debs" && apt-get download $PKGS >/dev/null 2>"$WORK/apt.err"); then
  apt-get update -qq && (cd "$WORK/debs" && apt-get download $PKGS >/dev/null) ||
    { cat "$WORK/apt.err" >&2; echo "make_kit: apt-get download failed" >&2; exit 1; }
fi
for d in "$WORK"/debs/*.deb; do dpkg-deb -x "$d" "$WORK/kit"; done
K=$WORK/kit
L=$K/usr/lib/$ARCH

# ---- prune: what a build and the tests never use ----
rm -rf "${K:?}"/usr/share/{doc,man,info,lintian,locale,bash-completion} "${K:?}"/etc "${K:?}"/lib/udev "${K:?}"/usr/lib/udev
find "$K" \( -name '*.a' -o -name '*.la' \) -delete
# Java, Fortran and OpenSHMEM bindings: the runtime is C.
rm -f "$K"/usr/bin/{mpijavac,mpijavac.pl,mpif77.openmpi,mpif90.openmpi,mpifort.openmpi,osh*,shmem*}
find "$K" \( -name 'libmpi_java*' -o -name 'libmpi_mpifh*' -o -name 'libmpi_usempi*' -o -name 'liboshmem*' \
  -o -name '*.mod' -o -name 'mpi.jar' \) -exec rm -rf {} +
rm -rf "$L"/openmpi/lib/openmpi3/mca_{spml,sshmem,scoll,atomic,memheap}_* "$L"/fortran
# Plugins (Open MPI MCA, PMIx) whose libraries are not carried: UCX,
# libfabric, verbs, PSM, CUDA... Open MPI skips a plugin it cannot load but
# warns for each, so they go. A plugin stays when every library it needs is
# in the kit or is one of the base libraries every Linux system has.
base='^(libc|libm|libdl|libpthread|librt|libutil|libz|libgcc_s|libstdc\+\+|ld-linux-x86-64)\.so'
have=$(find "$K" \( -name '*.so*' -type f -o -name '*.so*' -type l \) -printf '%f\n' | sort -u)
pruned=0
while IFS= read -r so; do
  for need in $(readelf -d "$so" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    if ! [[ $need =~ $base ]] && ! grep -qxF "$need" <<<"$have"; then
      rm -f "$so"
      pruned=$((pruned + 1))
      break
    fi
  done
done < <(find "$L/openmpi/lib/openmpi3" "$L/pmix2/lib/pmix" "$L/openmpi/lib" "$L" -maxdepth 1 -name '*.so*' -type f)
# Libraries only the pruned plugins used.
rm -f "$L"/libmca_common_{ucx,ofi,verbs}* "$L"/openmpi/lib/libmca_common_{ucx,ofi,verbs}*

# ---- what Debian's alternatives system would have linked ----
for w in mpicc mpicxx mpiCC mpic++ mpirun mpiexec; do
  [ -e "$K/usr/bin/$w.openmpi" ] && ln -sf "$w.openmpi" "$K/usr/bin/$w"
done
for f in libopenblas.so libopenblas.so.0 libblas.so libblas.so.3 liblapack.so liblapack.so.3; do
  [ -e "$L/openblas-pthread/$f" ] && ln -sf "openblas-pthread/$f" "$L/$f"
done
ln -sfn "$ARCH/openblas-pthread" "$K/usr/include/openblas"   # cblas.h where find_path looks under a prefix

# ---- .pc files relative to themselves, not to /usr ----
mkdir -p "$L/pkgconfig"
cp -L "$L"/openblas-pthread/pkgconfig/{openblas,blas-openblas}.pc "$L/pkgconfig/" 2>/dev/null || true
# Symlinked .pc files become copies first: each is then rewritten relative
# to where it lies (pkgconf's ${pcfiledir} is the folder it was found in).
while IFS= read -r pc; do
  cp --remove-destination "$(readlink -f "$pc")" "$pc"
done < <(find "$K" -name '*.pc' -type l)
while IFS= read -r pc; do
  rel=$(realpath --relative-to="$(dirname "$pc")" "$K/usr")
  sed -i -E "s#(^|[=[:space:]]|-I|-L)/usr(/|\$|[[:space:]])#\\1\${pcfiledir}/$rel\\2#g" "$pc"
  chmod 0644 "$pc"
done < <(find "$K" -name '*.pc' -type f)
! grep -rlE '(^|[=[:space:]]|-I|-L)/usr(/|$)' --include='*.pc' "$K" || { echo "make_kit: a .pc still names /usr" >&2; exit 1; }

# ---- the environment that makes the prefix work where it lies ----
cat >"$K/env.sh" <<'ENV'
# Source this: makes the unpacked kit usable from wherever it lies.
KIT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_l=$KIT/usr/lib/x86_64-linux-gnu
export OPAL_PREFIX=$KIT/usr                # Open MPI finds its plugins, help files and wrapper data here
# Debian's PMIx lives under its own prefix; PMIX_PREFIX alone is not enough
# (its help files are then looked up in the wrong folder: "help-pcompress.txt not found").
export PMIX_PREFIX=$_l/pmix2 PMIX_LIBDIR=$_l/pmix2/lib PMIX_DATADIR=$_l/pmix2/share
export PATH=$KIT/usr/bin:$PATH
export LD_LIBRARY_PATH=$_l:$_l/openmpi/lib:$_l/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PKG_CONFIG_PATH=$_l/pkgconfig:$_l/openmpi/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export CMAKE_PREFIX_PATH=$KIT/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
# mpirun refuses to start without an ssh/rsh client even for local ranks.
export OMPI_MCA_plm_rsh_agent=false
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset _l
ENV

mkdir -p "$(dirname "$OUT")"
tar -C "$WORK" -czf "$OUT.tmp" kit
mv "$OUT.tmp" "$OUT"
echo "make_kit: $OUT ($(du -h "$OUT" | cut -f1), $(du -sh "$K" | cut -f1) unpacked, $pruned plugins pruned)"
