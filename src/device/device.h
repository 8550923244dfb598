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

/* Coefficients of one AdamW update, as torch.optim.AdamW computes them: every
 * scalar is formed in double from the double hyper-parameters (Python floats
 * in PyTorch's _single_tensor_adam) and rounded once to fp32, the precision
 * of the element-wise kernel. Forming 1 - beta in fp32 instead is wrong by
 * 1.3e-5 relative for beta2 = 0.999 (1 - 0.999f = 0.00099998713), which the
 * double bias correction no longer cancels. Per element, in fp32:
 *   g  = grad * grad_scale          (1/loss_scale times the clip factor)
 *   p  = p * decay                  decay = 1 - lr*weight_decay
 *   m  = lerp(m, g, one_minus_beta1)  (torch.lerp: both branches)
 *   v  = v*beta2 + (one_minus_beta2*g)*g
 *   p  = p + neg_step_size * m / (sqrt(v)/bc2_sqrt + eps)
 * with neg_step_size = -lr/(1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t).
 * Build them with shardrt__adamw_args_make. */
typedef struct shardrt__adamw_args {
  float decay, one_minus_beta1, beta2, one_minus_beta2;
  float neg_step_size, bc2_sqrt, eps;
  float grad_scale;
} shardrt__adamw_args;

/* t: the 1-based step number of this update. */
void shardrt__adamw_args_make(shardrt__adamw_args *a, double lr, double beta1, double beta2, double eps,
                              double weight_decay, double t, float grad_scale);

/* SGD as torch.optim.SGD (dampening 0, no Nesterov), in fp32:
 *   g = grad*grad_scale + weight_decay*p;  b = momentum*b + g (b = g at the
 *   first step: the buffer starts at zero);  p = p - lr*b.
 * lr, momentum and weight_decay are the double values rounded to fp32, as
 * PyTorch passes Python floats to its fp32 kernels. */
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
   * values make the result non-finite. The cpu backend sums in a fixed
   * order (16 interleaved partial sums, src/device/cpu_loops.h), the same
   * on every CPU and ISA. */
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
