/* SPDX-License-Identifier: Apache-2.0 */
/* The host reference backend: every op in plain C, in a fixed order, so it
 * is the oracle the CUDA kernels are tested against. The element-wise ops
 * run the vectorised loops of cpu_kernels.c (the best ISA build this CPU
 * has; each build gives the same bits). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/error.h"
#include "src/device/cpu_kernels.h"
#include "src/device/device.h"

/* Dtypes index the kernel tables: refuse anything else with a clear error
 * rather than reading past a table. */
static bool bad_dt(shardrt_dtype dt) { return (unsigned)dt >= SHARDRT__NDT; }

#define CHECK_DT(op, what, dt)                                                                       \
  do {                                                                                             \
    if (bad_dt(dt))                                                                                \
      return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "cpu %s: %s dtype %d is not fp32, bf16 or fp16", \
                            op, what, (int)(dt));                                                  \
  } while (0)

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
  CHECK_DT("cast", "destination", ddt);
  CHECK_DT("cast", "source", sdt);
  if (ddt == sdt) {
    if (n && dst != src) memmove(dst, src, n * shardrt_dtype_size(ddt));
    return SHARDRT_OK;
  }
  shardrt__cpu_kernels_best()->cast[ddt][sdt](dst, src, n);
  return SHARDRT_OK;
}

static shardrt_status cpu_add(void *self, void *dst, shardrt_dtype ddt, const void *src, shardrt_dtype sdt,
                              size_t n) {
  CHECK_DT("add", "destination", ddt);
  CHECK_DT("add", "source", sdt);
  shardrt__cpu_kernels_best()->add[ddt][sdt](dst, src, n);
  return SHARDRT_OK;
}

static shardrt_status cpu_scale(void *self, void *buf, shardrt_dtype dt, size_t n, float f) {
  CHECK_DT("scale", "buffer", dt);
  shardrt__cpu_kernels_best()->scale[dt](buf, n, f);
  return SHARDRT_OK;
}

/* Summed in the fixed 16-lane blocking of cpu_loops.h: the same bits on
 * every CPU and ISA for the same buffer. */
static shardrt_status cpu_sqnorm(void *self, const void *buf, shardrt_dtype dt, size_t n, double *out) {
  CHECK_DT("sqnorm", "buffer", dt);
  *out = shardrt__cpu_kernels_best()->sqnorm[dt](buf, n);
  return SHARDRT_OK;
}

/* The per-element order is documented at shardrt__adamw_args (the CUDA
 * kernel makes the same roundings). The moment average is torch.lerp, whose
 * two branches keep it exact at weight 0 and 1; the branch depends only on
 * the weight, so it picks the loop. */
static shardrt_status cpu_adamw(void *self, void *param, shardrt_dtype pdt, const void *grad, shardrt_dtype gdt,
                                void *m, void *v, shardrt_dtype sdt, size_t n, const shardrt__adamw_args *a) {
  CHECK_DT("adamw", "param", pdt);
  CHECK_DT("adamw", "grad", gdt);
  CHECK_DT("adamw", "state", sdt);
  int hi = !(fabsf(a->one_minus_beta1) < 0.5f);
  shardrt__cpu_kernels_best()->adamw[pdt][gdt][sdt][hi](param, grad, m, v, n, a);
  return SHARDRT_OK;
}

static shardrt_status cpu_sgd(void *self, void *param, shardrt_dtype pdt, const void *grad, shardrt_dtype gdt,
                              void *buf, shardrt_dtype sdt, size_t n, const shardrt__sgd_args *a) {
  CHECK_DT("sgd", "param", pdt);
  CHECK_DT("sgd", "grad", gdt);
  if (buf) CHECK_DT("sgd", "state", sdt);
  shardrt__cpu_kernels_best()->sgd[pdt][gdt][buf ? sdt : SHARDRT_F32][buf != NULL](param, grad, buf, n, a);
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
