/* SPDX-License-Identifier: Apache-2.0 */
/* Builds the CPU kernel table once per ISA and picks one at run time.
 * Never -march=native: the baseline build runs on any x86-64 (or other)
 * CPU, and the AVX2 / AVX-512 builds are compiled with target attributes
 * and used only when the CPU and OS report the features. */
#include <stdatomic.h>

#include "src/device/cpu_kernels.h"
#include "src/device/cpu_loops.h"

#define SHARDRT__KATTR
#define SHARDRT__KNAME(x) base_##x
#define SHARDRT__KTABLE base_table
#define SHARDRT__KISA "baseline"
#include "src/device/cpu_kernels.inc"
#undef SHARDRT__KATTR
#undef SHARDRT__KNAME
#undef SHARDRT__KTABLE
#undef SHARDRT__KISA

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SHARDRT__HAVE_X86_CLONES 1

#define SHARDRT__KATTR __attribute__((target("avx2")))
#define SHARDRT__KNAME(x) avx2_##x
#define SHARDRT__KTABLE avx2_table
#define SHARDRT__KISA "avx2"
#include "src/device/cpu_kernels.inc"
#undef SHARDRT__KATTR
#undef SHARDRT__KNAME
#undef SHARDRT__KTABLE
#undef SHARDRT__KISA

/* GCC's generic tuning may keep to 256-bit vectors; ask for full width
 * (the loops are bandwidth-bound, not frequency-bound). */
#if defined(__clang__)
#define SHARDRT__KATTR __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#else
#define SHARDRT__KATTR __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,prefer-vector-width=512")))
#endif
#define SHARDRT__KNAME(x) avx512_##x
#define SHARDRT__KTABLE avx512_table
#define SHARDRT__KISA "avx512"
#include "src/device/cpu_kernels.inc"
#undef SHARDRT__KATTR
#undef SHARDRT__KNAME
#undef SHARDRT__KTABLE
#undef SHARDRT__KISA
#endif

static bool cpu_has(shardrt__cpu_isa isa) {
#ifdef SHARDRT__HAVE_X86_CLONES
  __builtin_cpu_init(); /* may run before constructors (static initialisers of a caller) */
  switch (isa) {
    case SHARDRT__CPU_ISA_BASE: return true;
    case SHARDRT__CPU_ISA_AVX2: return __builtin_cpu_supports("avx2");
    case SHARDRT__CPU_ISA_AVX512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    default: return false;
  }
#else
  return isa == SHARDRT__CPU_ISA_BASE;
#endif
}

const shardrt__cpu_kernels *shardrt__cpu_kernels_for(shardrt__cpu_isa isa) {
  if (!cpu_has(isa)) return NULL;
  switch (isa) {
    case SHARDRT__CPU_ISA_BASE: return &base_table;
#ifdef SHARDRT__HAVE_X86_CLONES
    case SHARDRT__CPU_ISA_AVX2: return &avx2_table;
    case SHARDRT__CPU_ISA_AVX512: return &avx512_table;
#endif
    default: return NULL;
  }
}

const shardrt__cpu_kernels *shardrt__cpu_kernels_best(void) {
  /* Every thread computes the same answer; the atomic only makes the
   * benign race well-defined. */
  static _Atomic(const shardrt__cpu_kernels *) best;
  const shardrt__cpu_kernels *k = atomic_load_explicit(&best, memory_order_acquire);
  if (k) return k;
  for (int isa = SHARDRT__CPU_ISA_COUNT - 1; isa >= 0 && !k; isa--) k = shardrt__cpu_kernels_for((shardrt__cpu_isa)isa);
  atomic_store_explicit(&best, k, memory_order_release);
  return k;
}
