/* SPDX-License-Identifier: Apache-2.0 */
/* Branch-free fp32 <-> bf16/fp16 conversions for the CPU kernels. Each gives
 * exactly the bits of its counterpart in src/core/dtype.c (round to nearest
 * even, quiet NaN, overflow to inf; tests/unit/test_device_cpu_isa.c checks
 * every 16-bit pattern and a dense sweep of fp32). They differ only in form:
 * every case is computed and the answer selected, so the compiler can turn
 * a loop of them into vector code, where the core ones (out-of-line calls
 * with branches) keep a loop scalar. */
#ifndef SHARDRT_DEVICE_CPU_CONVERT_H
#define SHARDRT_DEVICE_CPU_CONVERT_H

#include <stdint.h>
#include <string.h>

#include "shardrt/types.h"

#define SHARDRT__INLINE static inline __attribute__((always_inline))

SHARDRT__INLINE uint32_t shardrt__f2u(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

SHARDRT__INLINE float shardrt__u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* All ones when c holds, else zero. */
SHARDRT__INLINE uint32_t shardrt__mask(int c) { return (uint32_t)0 - (uint32_t)(c != 0); }

SHARDRT__INLINE float shardrt__bf16_f32(uint16_t h) { return shardrt__u2f((uint32_t)h << 16); }

SHARDRT__INLINE uint16_t shardrt__f32_bf16(float f) {
  uint32_t u = shardrt__f2u(f);
  uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  uint32_t quiet_nan = (u >> 16) | 0x40u;
  return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

SHARDRT__INLINE float shardrt__f16_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  /* Subnormal: mant * 2^-24, exact in fp32 (the core divides by 2^24). */
  uint32_t sub = shardrt__f2u((float)(int32_t)mant * 0x1p-24f);
  uint32_t special = 0x7f800000u | (mant << 13);
  uint32_t normal = ((exp + 112u) << 23) | (mant << 13);
  uint32_t is_sub = shardrt__mask(exp == 0), is_special = shardrt__mask(exp == 31);
  return shardrt__u2f(sign | (is_sub & sub) | (is_special & special) | (~(is_sub | is_special) & normal));
}

SHARDRT__INLINE uint16_t shardrt__f32_f16(float f) {
  uint32_t u = shardrt__f2u(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  /* Below 2^-14 the result is a subnormal (or zero) counted in units of
   * 2^-24. Adding 0.5f puts |f| in [0.5, 1), where one fp32 ulp is 2^-24,
   * so the add itself rounds to the nearest even unit: the same integer the
   * core's nearbyintf(|f| * 2^24) gives, read from the sum's mantissa. */
  uint32_t sub = shardrt__f2u(shardrt__u2f(a) + 0.5f) - 0x3f000000u;
  uint32_t normal = ((a + 0xfffu + ((a >> 13) & 1u)) >> 13) - ((127u - 15u) << 10);
  /* Selected with masks, not ?: -- GCC turns a ?: chain over a float add
   * back into branches, which keeps the loop scalar. */
  uint32_t is_nan = shardrt__mask(a > 0x7f800000u), is_inf = ~is_nan & shardrt__mask(a >= 0x477ff000u);
  uint32_t is_sub = shardrt__mask(a < 0x38800000u), is_normal = ~(is_nan | is_inf | is_sub);
  uint32_t h = (is_nan & 0x7e00u) | (is_inf & 0x7c00u) | (is_sub & sub) | (is_normal & normal);
  return (uint16_t)(sign | h);
}

/* Load element i of a buffer of dtype dt as fp32, and store v rounded to
 * dt. Called with a constant dt inside the specialised loops, so the switch
 * folds away at compile time. */
SHARDRT__INLINE float shardrt__ld(const void *p, shardrt_dtype dt, size_t i) {
  switch (dt) {
    case SHARDRT_F32: return ((const float *)p)[i];
    case SHARDRT_BF16: return shardrt__bf16_f32(((const uint16_t *)p)[i]);
    default: return shardrt__f16_f32(((const uint16_t *)p)[i]);
  }
}

SHARDRT__INLINE void shardrt__st(void *p, shardrt_dtype dt, size_t i, float v) {
  switch (dt) {
    case SHARDRT_F32: ((float *)p)[i] = v; break;
    case SHARDRT_BF16: ((uint16_t *)p)[i] = shardrt__f32_bf16(v); break;
    default: ((uint16_t *)p)[i] = shardrt__f32_f16(v); break;
  }
}

#endif
