/* SPDX-License-Identifier: Apache-2.0 */
/* The CUDA device backend: one GPU, one non-blocking compute stream on which
 * every op is issued in order, a private stream-ordered memory pool, and the
 * kernels in kernels/ (one .cu per op). Copies that touch host memory complete before
 * they return (the CPU twin's semantics, which the runtime is written
 * against); device-to-device work is asynchronous until sync(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "kernels/adamw.cuh"
#include "kernels/add.cuh"
#include "kernels/cast.cuh"
#include "kernels/scale.cuh"
#include "kernels/sgd.cuh"
#include "kernels/sqnorm.cuh"
#include "kernels/zero.cuh"
#include "src/device/device_cuda.h"

typedef struct cuda_dev {
  int index;
  cudaStream_t stream;
  cudaMemPool_t pool; /* NULL when the GPU has no stream-ordered allocator */
  double *norm_work;  /* device: SHARDRT__CUDA_SQNORM_WORK doubles */
  double *norm_host;  /* pinned: the one double sqnorm reads back */
} cuda_dev;

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

shardrt_status shardrt__cuda_fail(cudaError_t e, const char *call, const char *file, int line) {
  (void)cudaGetLastError();
  shardrt_status rc = e == cudaErrorMemoryAllocation ? SHARDRT_ERR_OUT_OF_MEMORY : SHARDRT_ERR_DEVICE;
  return shardrt__error(rc, "cuda: %s failed at %s:%d: %s (%s)", call, base_name(file), line, cudaGetErrorName(e),
                        cudaGetErrorString(e));
}

/* A kernel launcher's status, named by op and size rather than call text. */
static shardrt_status launched(cudaError_t e, const char *op, size_t n) {
  if (e == cudaSuccess) return SHARDRT_OK;
  (void)cudaGetLastError();
  shardrt_status rc = e == cudaErrorMemoryAllocation ? SHARDRT_ERR_OUT_OF_MEMORY : SHARDRT_ERR_DEVICE;
  return shardrt__error(rc, "cuda %s on %zu elements failed: %s (%s)", op, n, cudaGetErrorName(e),
                        cudaGetErrorString(e));
}

static bool dtype_ok(shardrt_dtype dt) { return dt == SHARDRT_F32 || dt == SHARDRT_BF16 || dt == SHARDRT_F16; }

static shardrt_status check_dtype(const char *op, const char *what, shardrt_dtype dt) {
  if (dtype_ok(dt)) return SHARDRT_OK;
  return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "cuda %s: %s dtype %d is not one of fp32, bf16, fp16", op,
                        what, (int)dt);
}

static shardrt_status check_ptr(const char *op, const char *what, const void *p, size_t n) {
  if (p || n == 0) return SHARDRT_OK;
  return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "cuda %s: %s is NULL for %zu elements", op, what, n);
}

/* Programs may switch the calling thread's current device between our
 * calls; kernels and pool allocations must run on ours. */
#define USE_DEVICE(d) SHARDRT__CUDA_CHECK(cudaSetDevice((d)->index))

static shardrt_status cuda_alloc(void *self, size_t bytes, void **out) {
  cuda_dev *d = self;
  if (!out) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "cuda alloc: out pointer is NULL");
  *out = NULL;
  size_t n = bytes ? bytes : 1; /* a distinct, non-NULL pointer even for empty buffers */
  USE_DEVICE(d);
  if (!d->pool) {
    cudaError_t e = cudaMalloc(out, n);
    if (e == cudaSuccess) return SHARDRT_OK;
    (void)cudaGetLastError();
    return shardrt__error(e == cudaErrorMemoryAllocation ? SHARDRT_ERR_OUT_OF_MEMORY : SHARDRT_ERR_DEVICE,
                          "cuda alloc of %zu bytes on GPU %d failed: %s", bytes, d->index, cudaGetErrorString(e));
  }
  cudaError_t e = cudaMallocFromPoolAsync(out, n, d->pool, d->stream);
  if (e == cudaErrorMemoryAllocation) {
    /* The pool keeps freed blocks; give them back to the driver and retry once. */
    (void)cudaGetLastError();
    SHARDRT__CUDA_CHECK(cudaStreamSynchronize(d->stream));
    SHARDRT__CUDA_CHECK(cudaMemPoolTrimTo(d->pool, 0));
    e = cudaMallocFromPoolAsync(out, n, d->pool, d->stream);
  }
  if (e == cudaSuccess) return SHARDRT_OK;
  (void)cudaGetLastError();
  *out = NULL;
  return shardrt__error(e == cudaErrorMemoryAllocation ? SHARDRT_ERR_OUT_OF_MEMORY : SHARDRT_ERR_DEVICE,
                        "cuda alloc of %zu bytes on GPU %d failed: %s", bytes, d->index, cudaGetErrorString(e));
}

static void cuda_free(void *self, void *ptr) {
  cuda_dev *d = self;
  if (!ptr) return;
  /* free() returns nothing: a failure here is left for the next checked call
   * to ignore (it is not sticky) rather than reported. */
  if (cudaSetDevice(d->index) != cudaSuccess ||
      (d->pool ? cudaFreeAsync(ptr, d->stream) : cudaFree(ptr)) != cudaSuccess)
    (void)cudaGetLastError();
}

static shardrt_status cuda_host_alloc(void *self, size_t bytes, void **out) {
  cuda_dev *d = self;
  if (!out) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "cuda host_alloc: out pointer is NULL");
  *out = NULL;
  USE_DEVICE(d);
  cudaError_t e = cudaMallocHost(out, bytes ? bytes : 1);
  if (e == cudaSuccess) return SHARDRT_OK;
  (void)cudaGetLastError();
  *out = NULL;
  return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "cuda pinned host alloc of %zu bytes failed: %s", bytes,
                        cudaGetErrorString(e));
}

static void cuda_host_free(void *self, void *ptr) {
  if (ptr && cudaFreeHost(ptr) != cudaSuccess) (void)cudaGetLastError();
}

static shardrt_status cuda_copy(void *self, void *dst, const void *src, size_t bytes, shardrt__copy_kind kind) {
  cuda_dev *d = self;
  enum cudaMemcpyKind k;
  switch (kind) {
    case SHARDRT__H2D: k = cudaMemcpyHostToDevice; break;
    case SHARDRT__D2H: k = cudaMemcpyDeviceToHost; break;
    case SHARDRT__D2D: k = cudaMemcpyDeviceToDevice; break;
    default:
      return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "cuda copy: kind %d is not H2D (0), D2H (1) or D2D (2)",
                            (int)kind);
  }
  if (bytes == 0 || dst == src) return SHARDRT_OK;
  if (!dst || !src)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "cuda copy: %s pointer is NULL for %zu bytes",
                          dst ? "source" : "destination", bytes);
  USE_DEVICE(d);
  if (k == cudaMemcpyDeviceToDevice)
    return launched(shardrt__cuda_move(dst, src, bytes, d->stream), "copy (bytes)", bytes);
  SHARDRT__CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, d->stream));
  /* With pageable host memory cudaMemcpyAsync "might" return early, and even
   * pinned copies would leave the host buffer in use: wait, so the caller may
   * read the destination or reuse the source at once. */
  SHARDRT__CUDA_CHECK(cudaStreamSynchronize(d->stream));
  return SHARDRT_OK;
}

static shardrt_status cuda_fill_zero(void *self, void *dst, size_t bytes) {
  cuda_dev *d = self;
  SHARDRT__CHECK(check_ptr("fill_zero", "destination", dst, bytes));
  if (bytes == 0) return SHARDRT_OK;
  USE_DEVICE(d);
  return launched(shardrt__cuda_zero(dst, bytes, d->stream), "fill_zero (bytes)", bytes);
}

static shardrt_status cuda_cast(void *self, void *dst, shardrt_dtype ddt, const void *src, shardrt_dtype sdt,
                                size_t n) {
  cuda_dev *d = self;
  SHARDRT__CHECK(check_dtype("cast", "destination", ddt));
  SHARDRT__CHECK(check_dtype("cast", "source", sdt));
  SHARDRT__CHECK(check_ptr("cast", "destination", dst, n));
  SHARDRT__CHECK(check_ptr("cast", "source", src, n));
  if (n == 0) return SHARDRT_OK;
  USE_DEVICE(d);
  return launched(shardrt__cuda_cast(dst, ddt, src, sdt, n, d->stream), "cast", n);
}

static shardrt_status cuda_add(void *self, void *dst, shardrt_dtype ddt, const void *src, shardrt_dtype sdt,
                               size_t n) {
  cuda_dev *d = self;
  SHARDRT__CHECK(check_dtype("add", "destination", ddt));
  SHARDRT__CHECK(check_dtype("add", "source", sdt));
  SHARDRT__CHECK(check_ptr("add", "destination", dst, n));
  SHARDRT__CHECK(check_ptr("add", "source", src, n));
  if (n == 0) return SHARDRT_OK;
  USE_DEVICE(d);
  return launched(shardrt__cuda_add(dst, ddt, src, sdt, n, d->stream), "add", n);
}

static shardrt_status cuda_scale(void *self, void *buf, shardrt_dtype dt, size_t n, float factor) {
  cuda_dev *d = self;
  SHARDRT__CHECK(check_dtype("scale", "buffer", dt));
  SHARDRT__CHECK(check_ptr("scale", "buffer", buf, n));
  if (n == 0) return SHARDRT_OK;
  USE_DEVICE(d);
  return launched(shardrt__cuda_scale(buf, dt, n, factor, d->stream), "scale", n);
}

static shardrt_status cuda_sqnorm(void *self, const void *buf, shardrt_dtype dt, size_t n, double *out) {
  cuda_dev *d = self;
  SHARDRT__CHECK(check_dtype("sqnorm", "buffer", dt));
  SHARDRT__CHECK(check_ptr("sqnorm", "buffer", buf, n));
  if (!out) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "cuda sqnorm: out pointer is NULL");
  USE_DEVICE(d);
  SHARDRT__CHECK(launched(shardrt__cuda_sqnorm(buf, dt, n, d->norm_work, d->stream), "sqnorm", n));
  SHARDRT__CUDA_CHECK(cudaMemcpyAsync(d->norm_host, d->norm_work, sizeof(double), cudaMemcpyDeviceToHost, d->stream));
  SHARDRT__CUDA_CHECK(cudaStreamSynchronize(d->stream));
  *out = *d->norm_host;
  return SHARDRT_OK;
}

static shardrt_status cuda_adamw(void *self, void *param, shardrt_dtype pdt, const void *grad, shardrt_dtype gdt,
                                 void *m, void *v, shardrt_dtype sdt, size_t n, const shardrt__adamw_args *a) {
  cuda_dev *d = self;
  SHARDRT__CHECK(check_dtype("adamw", "param", pdt));
  SHARDRT__CHECK(check_dtype("adamw", "grad", gdt));
  SHARDRT__CHECK(check_dtype("adamw", "state (m, v)", sdt));
  SHARDRT__CHECK(check_ptr("adamw", "param", param, n));
  SHARDRT__CHECK(check_ptr("adamw", "grad", grad, n));
  SHARDRT__CHECK(check_ptr("adamw", "m", m, n));
  SHARDRT__CHECK(check_ptr("adamw", "v", v, n));
  if (!a) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "cuda adamw: hyper-parameters are NULL");
  if (n == 0) return SHARDRT_OK;
  USE_DEVICE(d);
  return launched(shardrt__cuda_adamw(param, pdt, grad, gdt, m, v, sdt, n, a, d->stream), "adamw", n);
}

static shardrt_status cuda_sgd(void *self, void *param, shardrt_dtype pdt, const void *grad, shardrt_dtype gdt,
                               void *buf, shardrt_dtype sdt, size_t n, const shardrt__sgd_args *a) {
  cuda_dev *d = self;
  SHARDRT__CHECK(check_dtype("sgd", "param", pdt));
  SHARDRT__CHECK(check_dtype("sgd", "grad", gdt));
  if (buf) SHARDRT__CHECK(check_dtype("sgd", "momentum buffer", sdt));
  SHARDRT__CHECK(check_ptr("sgd", "param", param, n));
  SHARDRT__CHECK(check_ptr("sgd", "grad", grad, n));
  if (!a) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "cuda sgd: hyper-parameters are NULL");
  if (n == 0) return SHARDRT_OK;
  USE_DEVICE(d);
  return launched(shardrt__cuda_sgd(param, pdt, grad, gdt, buf, sdt, n, a, d->stream), "sgd", n);
}

static shardrt_status cuda_sync(void *self) {
  cuda_dev *d = self;
  USE_DEVICE(d);
  SHARDRT__CUDA_CHECK(cudaStreamSynchronize(d->stream));
  return SHARDRT_OK;
}

static void *cuda_stream(void *self) { return ((cuda_dev *)self)->stream; }

static void cuda_destroy(void *self) {
  cuda_dev *d = self;
  if (!d) return;
  /* Teardown cannot report: every error is cleared so it does not leak into
   * the program's next CUDA call. */
  if (cudaSetDevice(d->index) != cudaSuccess) (void)cudaGetLastError();
  if (d->stream && cudaStreamSynchronize(d->stream) != cudaSuccess) (void)cudaGetLastError();
  if (d->norm_work && cudaFree(d->norm_work) != cudaSuccess) (void)cudaGetLastError();
  if (d->norm_host && cudaFreeHost(d->norm_host) != cudaSuccess) (void)cudaGetLastError();
  if (d->pool && cudaMemPoolDestroy(d->pool) != cudaSuccess) (void)cudaGetLastError();
  if (d->stream && cudaStreamDestroy(d->stream) != cudaSuccess) (void)cudaGetLastError();
  free(d);
}

static const shardrt__device_i cuda_device_i = {
    .name = "cuda",
    .alloc = cuda_alloc,
    .free = cuda_free,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .copy = cuda_copy,
    .fill_zero = cuda_fill_zero,
    .cast = cuda_cast,
    .add = cuda_add,
    .scale = cuda_scale,
    .sqnorm = cuda_sqnorm,
    .adamw = cuda_adamw,
    .sgd = cuda_sgd,
    .sync = cuda_sync,
    .stream = cuda_stream,
    .destroy = cuda_destroy,
};

int shardrt__cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n > 0 ? n : 0;
}

int shardrt__device_cuda_index(const shardrt__device *dev) {
  if (!dev || dev->i != &cuda_device_i || !dev->self) return -1;
  return ((const cuda_dev *)dev->self)->index;
}

/* A private pool, so the release threshold we raise (keep freed blocks for
 * reuse instead of returning them at every synchronisation) does not change
 * the program's own cudaMallocAsync behaviour. */
static shardrt_status make_pool(cuda_dev *d) {
  int supported = 0;
  SHARDRT__CUDA_CHECK(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, d->index));
  if (!supported) return SHARDRT_OK;
  struct cudaMemPoolProps props;
  memset(&props, 0, sizeof props);
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = d->index;
  SHARDRT__CUDA_CHECK(cudaMemPoolCreate(&d->pool, &props));
  uint64_t keep = UINT64_MAX;
  SHARDRT__CUDA_CHECK(cudaMemPoolSetAttribute(d->pool, cudaMemPoolAttrReleaseThreshold, &keep));
  return SHARDRT_OK;
}

shardrt_status shardrt__device_cuda_create(int index, shardrt__device *out) {
  if (!out) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "cuda device: out pointer is NULL");
  out->i = NULL;
  out->self = NULL;
  out->is_cuda = false;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count <= 0) {
    (void)cudaGetLastError();
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                          "no CUDA GPU is available to this process (cudaGetDeviceCount: %s): the cuda device "
                          "needs an NVIDIA GPU and driver; use the cpu device instead",
                          e == cudaSuccess ? "0 devices" : cudaGetErrorString(e));
  }
  if (index < 0 || index >= count) {
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                          "GPU index %d does not exist: %d CUDA GPU(s) are visible, valid indices are 0..%d "
                          "(CUDA_VISIBLE_DEVICES=%s)",
                          index, count, count - 1, vis ? vis : "unset");
  }
  cuda_dev *d = calloc(1, sizeof *d);
  if (!d) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "cuda device: host allocation failed");
  d->index = index;
  shardrt_status rc = SHARDRT_OK;
  SHARDRT__CUDA_CHECK_GOTO(cudaSetDevice(index), rc, fail);
  SHARDRT__CUDA_CHECK_GOTO(cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking), rc, fail);
  SHARDRT__CHECK_GOTO(make_pool(d), rc, fail);
  SHARDRT__CUDA_CHECK_GOTO(cudaMalloc((void **)&d->norm_work, SHARDRT__CUDA_SQNORM_WORK * sizeof(double)), rc, fail);
  SHARDRT__CUDA_CHECK_GOTO(cudaMallocHost((void **)&d->norm_host, sizeof(double)), rc, fail);
  out->i = &cuda_device_i;
  out->self = d;
  out->is_cuda = true;
  return SHARDRT_OK;
fail:
  cuda_destroy(d);
  return shardrt__error_wrap(rc, "creating the cuda device on GPU %d", index);
}
