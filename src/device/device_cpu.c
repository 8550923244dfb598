/* SPDX-License-Identifier: Apache-2.0 */
/* The host reference backend: every op in plain C, in a fixed order, so it
 * is the oracle the CUDA kernels are tested against. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/error.h"
#include "src/device/device.h"

static inline float ld(const void *p, shardrt_dtype dt, size_t i) {
  switch (dt) {
    case SHARDRT_F32: return ((const float *)p)[i];
    case SHARDRT_BF16: return shardrt_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return shardrt_f16_to_f32(((const uint16_t *)p)[i]);
  }
}

static inline void st(void *p, shardrt_dtype dt, size_t i, float v) {
  switch (dt) {
    case SHARDRT_F32: ((float *)p)[i] = v; break;
    case SHARDRT_BF16: ((uint16_t *)p)[i] = shardrt_f32_to_bf16(v); break;
    default: ((uint16_t *)p)[i] = shardrt_f32_to_f16(v); break;
  }
}

static shardrt_status cpu_alloc(void *self, size_t bytes, void **out) {
  /* 64-byte alignment: shards start on cache lines and SIMD-friendly. */
  size_t n = (bytes + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, n ? n : 64);
  if (!p) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "host allocation of %zu bytes failed", bytes);
  *out = p;
  return SHARDRT_OK;
}

static void cpu_free(void *self, void *ptr) { free(ptr); }

static shardrt_status cpu_copy(void *self, void *dst, const void *src, size_t bytes, shardrt__copy_kind k) {
  if (bytes && dst != src) memmove(dst, src, bytes);
  return SHARDRT_OK;
}

static shardrt_status cpu_fill_zero(void *self, void *dst, size_t bytes) {
  memset(dst, 0, bytes);
  return SHARDRT_OK;
}

static shardrt_status cpu_cast(void *self, void *dst, shardrt_dtype ddt, const void *src, shardrt_dtype sdt,
                               size_t n) {
  shardrt_convert(dst, ddt, src, sdt, n);
  return SHARDRT_OK;
}

static shardrt_status cpu_add(void *self, void *dst, shardrt_dtype ddt, const void *src, shardrt_dtype sdt,
                              size_t n) {
  for (size_t i = 0; i < n; i++) st(dst, ddt, i, ld(dst, ddt, i) + ld(src, sdt, i));
  return SHARDRT_OK;
}

static shardrt_status cpu_scale(void *self, void *buf, shardrt_dtype dt, size_t n, float f) {
  for (size_t i = 0; i < n; i++) st(buf, dt, i, ld(buf, dt, i) * f);
  return SHARDRT_OK;
}

static shardrt_status cpu_sqnorm(void *self, const void *buf, shardrt_dtype dt, size_t n, double *out) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) {
    double v = ld(buf, dt, i);
    s += v * v;
  }
  *out = s;
  return SHARDRT_OK;
}

/* One AdamW element, in the operation order documented at
 * shardrt__adamw_args (the CUDA kernel makes the same roundings). The
 * moment average is torch.lerp, whose two branches keep it exact at
 * weight 0 and 1. */
static inline void adamw_one(float *p, float g, float *m, float *v, const shardrt__adamw_args *a) {
  float w = a->one_minus_beta1, mi = *m;
  mi = fabsf(w) < 0.5f ? mi + w * (g - mi) : g - (g - mi) * (1.0f - w);
  float vi = *v * a->beta2 + (a->one_minus_beta2 * g) * g;
  float denom = sqrtf(vi) / a->bc2_sqrt + a->eps;
  *p = *p * a->decay;
  *p = *p + (a->neg_step_size * mi) / denom;
  *m = mi;
  *v = vi;
}

static shardrt_status cpu_adamw(void *self, void *param, shardrt_dtype pdt, const void *grad, shardrt_dtype gdt,
                                void *m, void *v, shardrt_dtype sdt, size_t n, const shardrt__adamw_args *a) {
  for (size_t i = 0; i < n; i++) {
    float p = ld(param, pdt, i), mi = ld(m, sdt, i), vi = ld(v, sdt, i);
    adamw_one(&p, ld(grad, gdt, i) * a->grad_scale, &mi, &vi, a);
    st(m, sdt, i, mi);
    st(v, sdt, i, vi);
    st(param, pdt, i, p);
  }
  return SHARDRT_OK;
}

static shardrt_status cpu_sgd(void *self, void *param, shardrt_dtype pdt, const void *grad, shardrt_dtype gdt,
                              void *buf, shardrt_dtype sdt, size_t n, const shardrt__sgd_args *a) {
  for (size_t i = 0; i < n; i++) {
    float p = ld(param, pdt, i);
    float g = ld(grad, gdt, i) * a->grad_scale + a->weight_decay * p;
    if (buf) {
      float b = a->momentum * ld(buf, sdt, i) + g;
      st(buf, sdt, i, b);
      g = b;
    }
    st(param, pdt, i, p - a->lr * g);
  }
  return SHARDRT_OK;
}

static shardrt_status cpu_sync(void *self) { return SHARDRT_OK; }

static const shardrt__device_i cpu_device_i = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .host_alloc = cpu_alloc,
    .host_free = cpu_free,
    .copy = cpu_copy,
    .fill_zero = cpu_fill_zero,
    .cast = cpu_cast,
    .add = cpu_add,
    .scale = cpu_scale,
    .sqnorm = cpu_sqnorm,
    .adamw = cpu_adamw,
    .sgd = cpu_sgd,
    .sync = cpu_sync,
    .stream = NULL,
    .destroy = NULL,
};

shardrt_status shardrt__device_cpu_create(shardrt__device *out) {
  out->i = &cpu_device_i;
  out->self = NULL;
  out->is_cuda = false;
  return SHARDRT_OK;
}
