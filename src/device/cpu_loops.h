/* SPDX-License-Identifier: Apache-2.0 */
/* The element-wise loops of the CPU backend, as templates: every function
 * here is always inlined into a wrapper that passes constant dtypes (see
 * cpu_kernels.inc), so each dtype combination becomes its own loop with no
 * branch inside, compiled with the wrapper's target ISA. The arithmetic is
 * the reference order of device.h, operation for operation. */
#ifndef SHARDRT_DEVICE_CPU_LOOPS_H
#define SHARDRT_DEVICE_CPU_LOOPS_H

#include <math.h>

#include "src/device/cpu_convert.h"
#include "src/device/device.h"

SHARDRT__INLINE void shardrt__loop_cast(void *restrict dst, shardrt_dtype ddt, const void *restrict src,
                                        shardrt_dtype sdt, size_t n) {
  for (size_t i = 0; i < n; i++) shardrt__st(dst, ddt, i, shardrt__ld(src, sdt, i));
}

/* dst and src may be the same buffer: no restrict (the compiler checks for
 * overlap once, outside the loop). */
SHARDRT__INLINE void shardrt__loop_add(void *dst, shardrt_dtype ddt, const void *src, shardrt_dtype sdt, size_t n) {
  for (size_t i = 0; i < n; i++) shardrt__st(dst, ddt, i, shardrt__ld(dst, ddt, i) + shardrt__ld(src, sdt, i));
}

SHARDRT__INLINE void shardrt__loop_scale(void *buf, shardrt_dtype dt, size_t n, float f) {
  for (size_t i = 0; i < n; i++) shardrt__st(buf, dt, i, shardrt__ld(buf, dt, i) * f);
}

/* Sum of squares in double over SHARDRT__SQ_LANES interleaved partial sums:
 * element i goes to sum i % LANES, and the sums meet in a fixed pairwise
 * tree. The blocking is a property of the index, not of the vector width
 * or the buffer's address, so every ISA build, every rerun and every
 * caller passing the same n gets the same bits (a scalar sum in this order
 * is the oracle in tests/unit/test_device_cpu_isa.c). Each square of an
 * fp32 value is exact in double; only the additions round. 16 lanes keep
 * two 8-wide AVX-512 (four AVX2) add chains in flight, enough to hide the
 * add latency at L2 speed. */
#define SHARDRT__SQ_LANES 16

SHARDRT__INLINE double shardrt__loop_sqnorm(const void *buf, shardrt_dtype dt, size_t n) {
  double acc[SHARDRT__SQ_LANES] = {0};
  size_t i = 0;
  for (; i + SHARDRT__SQ_LANES <= n; i += SHARDRT__SQ_LANES)
    for (size_t j = 0; j < SHARDRT__SQ_LANES; j++) {
      double x = shardrt__ld(buf, dt, i + j);
      acc[j] += x * x;
    }
  for (size_t j = 0; i + j < n; j++) {
    double x = shardrt__ld(buf, dt, i + j);
    acc[j] += x * x;
  }
  for (size_t w = SHARDRT__SQ_LANES / 2; w > 0; w /= 2)
    for (size_t j = 0; j < w; j++) acc[j] += acc[j + w];
  return acc[0];
}

/* AdamW, device.h's order. hi selects torch.lerp's branch (|w| >= 0.5),
 * which is the same for every element, so it is a template constant. */
SHARDRT__INLINE void shardrt__loop_adamw(void *restrict param, shardrt_dtype pdt, const void *restrict grad,
                                         shardrt_dtype gdt, void *restrict m, void *restrict v, shardrt_dtype sdt,
                                         size_t n, const shardrt__adamw_args *a, int hi) {
  const float w = a->one_minus_beta1, one_minus_w = 1.0f - w, beta2 = a->beta2, omb2 = a->one_minus_beta2;
  const float bc2_sqrt = a->bc2_sqrt, eps = a->eps, decay = a->decay, nss = a->neg_step_size;
  const float gs = a->grad_scale;
  for (size_t i = 0; i < n; i++) {
    float g = shardrt__ld(grad, gdt, i) * gs;
    float mi = shardrt__ld(m, sdt, i);
    mi = hi ? g - (g - mi) * one_minus_w : mi + w * (g - mi);
    float vi = shardrt__ld(v, sdt, i) * beta2 + (omb2 * g) * g;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    float p = shardrt__ld(param, pdt, i) * decay;
    p = p + (nss * mi) / denom;
    shardrt__st(m, sdt, i, mi);
    shardrt__st(v, sdt, i, vi);
    shardrt__st(param, pdt, i, p);
  }
}

/* SGD, device.h's order; mom says whether there is a momentum buffer. */
SHARDRT__INLINE void shardrt__loop_sgd(void *restrict param, shardrt_dtype pdt, const void *restrict grad,
                                       shardrt_dtype gdt, void *restrict buf, shardrt_dtype sdt, size_t n,
                                       const shardrt__sgd_args *a, int mom) {
  const float gs = a->grad_scale, wd = a->weight_decay, mu = a->momentum, lr = a->lr;
  for (size_t i = 0; i < n; i++) {
    float p = shardrt__ld(param, pdt, i);
    float g = shardrt__ld(grad, gdt, i) * gs + wd * p;
    if (mom) {
      float b = mu * shardrt__ld(buf, sdt, i) + g;
      shardrt__st(buf, sdt, i, b);
      g = b;
    }
    shardrt__st(param, pdt, i, p - lr * g);
  }
}

#endif
