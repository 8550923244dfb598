/* SPDX-License-Identifier: Apache-2.0 */
/* Device backend interface: memory, copies, and the few kernels the runtime
 * needs on flat shards. `cpu` is the reference (and test oracle); `cuda` runs
 * the kernels in kernels/ on the context's compute stream. All ops are ordered on that
 * one stream; sync() waits for them. Copies that touch host memory
 * (H2D, D2H) have completed when copy() returns; device-to-device work is
 * asynchronous until sync(). Every op returns a shardrt_status and
 * sets the thread's last error on failure. */
#ifndef SHARDRT_DEVICE_H
#define SHARDRT_DEVICE_H

#include "shardrt/types.h"

typedef enum shardrt__copy_kind {
  SHARDRT__H2D = 0,
  SHARDRT__D2H,
  SHARDRT__D2D,
} shardrt__copy_kind;

/* Hyper-parameters of one optimizer update. `scale` multiplies the incoming
 * gradient first (1/loss_scale times the clip factor). */
typedef struct shardrt__adamw_args {
  float lr, beta1, beta2, eps, weight_decay;
  float bias_c1, bias_c2; /* 1 - beta^t, computed by the caller */
  float grad_scale;
} shardrt__adamw_args;

typedef struct shardrt__sgd_args {
  float lr, momentum, weight_decay, grad_scale;
} shardrt__sgd_args;

typedef struct shardrt__device_i {
  const char *name;
  /* Device memory (host memory for cpu). Zero-filled is NOT guaranteed. */
  shardrt_status (*alloc)(void *self, size_t bytes, void **out);
  void (*free)(void *self, void *ptr);
  /* Pinned host memory for staging/offload; optional (NULL: malloc/free). */
  shardrt_status (*host_alloc)(void *self, size_t bytes, void **out);
  void (*host_free)(void *self, void *ptr);
  shardrt_status (*copy)(void *self, void *dst, const void *src, size_t bytes, shardrt__copy_kind kind);
  shardrt_status (*fill_zero)(void *self, void *dst, size_t bytes);
  /* dst[i] = (dst_dt) src[i]; dst and src may not overlap unless equal dtypes. */
  shardrt_status (*cast)(void *self, void *dst, shardrt_dtype dst_dt, const void *src,
                         shardrt_dtype src_dt, size_t n);
  /* dst[i] += (dst_dt) src[i] (accumulate a reduced gradient into a store). */
  shardrt_status (*add)(void *self, void *dst, shardrt_dtype dst_dt, const void *src,
                        shardrt_dtype src_dt, size_t n);
  /* buf[i] *= factor */
  shardrt_status (*scale)(void *self, void *buf, shardrt_dtype dt, size_t n, float factor);
  /* *out = sum(buf[i]^2) in double on the host (blocking); non-finite
   * values make the result non-finite. */
  shardrt_status (*sqnorm)(void *self, const void *buf, shardrt_dtype dt, size_t n, double *out);
  /* Fused AdamW on a shard. param has param_dt (fp32, bf16 or fp16);
   * grad has grad_dt; m and v have state_dt. The math is done in fp32 and
   * rounded to each buffer's dtype. */
  shardrt_status (*adamw)(void *self, void *param, shardrt_dtype param_dt, const void *grad,
                          shardrt_dtype grad_dt, void *m, void *v, shardrt_dtype state_dt, size_t n,
                          const shardrt__adamw_args *a);
  /* SGD with momentum (buf may be NULL when momentum == 0). */
  shardrt_status (*sgd)(void *self, void *param, shardrt_dtype param_dt, const void *grad,
                        shardrt_dtype grad_dt, void *buf, shardrt_dtype state_dt, size_t n,
                        const shardrt__sgd_args *a);
  shardrt_status (*sync)(void *self);
  /* Streams/events for overlap; optional (NULL on cpu). */
  void *(*stream)(void *self); /* the compute stream (cudaStream_t) */
  void (*destroy)(void *self);
} shardrt__device_i;

typedef struct shardrt__device {
  const shardrt__device_i *i;
  void *self;
  bool is_cuda;
} shardrt__device;

/* Host reference backend. Never fails except on allocation. */
shardrt_status shardrt__device_cpu_create(shardrt__device *out);
/* CUDA backend on GPU `index` with its own compute stream.
 * SHARDRT_ERR_UNSUPPORTED when built without CUDA or no such GPU exists. */
shardrt_status shardrt__device_cuda_create(int index, shardrt__device *out);
/* Number of visible CUDA devices; 0 without CUDA, a driver or a GPU. */
int shardrt__cuda_device_count(void);

static inline void shardrt__device_destroy(shardrt__device *d) {
  if (d && d->i && d->i->destroy) d->i->destroy(d->self);
  if (d) { d->i = 0; d->self = 0; }
}

#endif
