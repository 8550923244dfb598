/* SPDX-License-Identifier: Apache-2.0 */
/* Host dtype helpers: sizes, names and round-to-nearest-even conversions. */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "shardrt/types.h"

size_t shardrt_dtype_size(shardrt_dtype dt) { return dt == SHARDRT_F32 ? 4 : 2; }

const char *shardrt_dtype_name(shardrt_dtype dt) {
  switch (dt) {
    case SHARDRT_F32: return "fp32";
    case SHARDRT_BF16: return "bf16";
    case SHARDRT_F16: return "fp16";
  }
  return "?";
}

bool shardrt_dtype_parse(const char *s, shardrt_dtype *out) {
  static const struct { const char *name; shardrt_dtype dt; } names[] = {
      {"fp32", SHARDRT_F32}, {"float32", SHARDRT_F32},  {"f32", SHARDRT_F32},
      {"float", SHARDRT_F32}, {"bf16", SHARDRT_BF16},   {"bfloat16", SHARDRT_BF16},
      {"fp16", SHARDRT_F16}, {"float16", SHARDRT_F16},  {"f16", SHARDRT_F16},
      {"half", SHARDRT_F16},
  };
  if (!s) return false;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcasecmp(s, names[i].name) == 0) {
      *out = names[i].dt;
      return true;
    }
  return false;
}

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t shardrt_f32_to_bf16(float f) {
  uint32_t u = f2u(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float shardrt_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t shardrt_f32_to_f16(float f) {
  uint32_t u = f2u(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);      /* NaN */
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);     /* overflow -> inf */
  if (a < 0x38800000u) {                                        /* subnormal or zero */
    float af = u2f(a);
    /* scale so one f16 subnormal ulp (2^-24) becomes 1, then round to even */
    float r = nearbyintf(af * 16777216.0f);
    return (uint16_t)(sign | (uint32_t)r);
  }
  uint32_t mant_round = a + 0xfffu + ((a >> 13) & 1u);
  uint32_t h = ((mant_round >> 13) - ((127u - 15u) << 10));
  return (uint16_t)(sign | h);
}

float shardrt_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    float r = (float)mant / 16777216.0f;
    return sign ? -r : r;
  }
  if (exp == 31) return u2f(sign | 0x7f800000u | (mant << 13));
  return u2f(sign | ((exp + 112u) << 23) | (mant << 13));
}

static float load(const void *p, shardrt_dtype dt, size_t i) {
  switch (dt) {
    case SHARDRT_F32: return ((const float *)p)[i];
    case SHARDRT_BF16: return shardrt_bf16_to_f32(((const uint16_t *)p)[i]);
    case SHARDRT_F16: return shardrt_f16_to_f32(((const uint16_t *)p)[i]);
  }
  return 0.0f;
}

static void store(void *p, shardrt_dtype dt, size_t i, float v) {
  switch (dt) {
    case SHARDRT_F32: ((float *)p)[i] = v; break;
    case SHARDRT_BF16: ((uint16_t *)p)[i] = shardrt_f32_to_bf16(v); break;
    case SHARDRT_F16: ((uint16_t *)p)[i] = shardrt_f32_to_f16(v); break;
  }
}

void shardrt_convert(void *dst, shardrt_dtype dst_dt, const void *src, shardrt_dtype src_dt, size_t n) {
  if (dst_dt == src_dt) {
    if (dst != src) memmove(dst, src, n * shardrt_dtype_size(dst_dt));
    return;
  }
  for (size_t i = 0; i < n; i++) store(dst, dst_dt, i, load(src, src_dt, i));
}

int shardrt_version(void) { return SHARDRT_VERSION_CODE; }
