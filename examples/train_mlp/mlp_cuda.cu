/* SPDX-License-Identifier: Apache-2.0 */
/* The GPU backend of train_mlp: the math of mlp_cpu.c over device fp32
 * buffers. Matrix products go through cuBLAS; bias, ReLU, softmax
 * cross-entropy and the dtype casts between the runtime's views and fp32
 * are small kernels below. Everything is queued on one stream (the
 * runtime's compute stream), so the only host waits are the batch upload
 * and the per-micro-batch loss read-back. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "mlp_backend.h"

namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 4096;

struct cuda_backend {
  cudaStream_t stream;
  cublasHandle_t blas;
  double *row_loss; /* per-row cross-entropy of the current micro-batch */
  int row_loss_cap;
  double *loss;     /* their sum, reduced on the device */
  char err[256];
};

int fail(cuda_backend *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  return -1;
}

/* Reports which step failed; reading the error also clears CUDA's last
 * (non-sticky) error so the next call starts clean. */
int cuda_fail(cuda_backend *c, cudaError_t e, const char *what) {
  (void)cudaGetLastError();
  return fail(c, "cuda backend: %s failed: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

#define CK(c, expr, what)                                     \
  do {                                                        \
    cudaError_t e__ = (expr);                                 \
    if (e__ != cudaSuccess) return cuda_fail((c), e__, what); \
  } while (0)

/* Launch errors surface through cudaGetLastError. */
#define CK_LAUNCH(c, what) CK((c), cudaGetLastError(), (what))

unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  if (b > kMaxBlocks) b = kMaxBlocks;
  return b < 1 ? 1u : (unsigned)b;
}

/* ---- dtype conversion (round to nearest even on store, as the host) ---- */

__device__ __forceinline__ float ld(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const __nv_bfloat16 *p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ float ld(const __half *p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void st(float *p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(__nv_bfloat16 *p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }
__device__ __forceinline__ void st(__half *p, int64_t i, float v) { p[i] = __float2half_rn(v); }

template <typename T> __global__ void k_to_f32(float *dst, const T *src, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = ld(src, i);
}

template <typename T> __global__ void k_add_f32(T *dst, const float *src, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    st(dst, i, ld(dst, i) + src[i]);
}

/* ---- layers ---- */

/* y[r, o] = b[o]: the GEMM then accumulates x W^T on top, as the host does. */
__global__ void k_bias_rows(float *y, const float *b, int64_t n, int no) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = b[i % no];
}

/* db[o] += dy[r, o] row after row: one thread per column adds in the same
 * order as the host loop, so the bias gradient matches it bit for bit. */
__global__ void k_bias_bwd(float *db, const float *dy, int nb, int no) {
  for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < no; o += gridDim.x * blockDim.x) {
    float acc = db[o];
    for (int r = 0; r < nb; r++) acc += dy[(size_t)r * no + o];
    db[o] = acc;
  }
}

__global__ void k_relu_fwd(float *y, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

__global__ void k_relu_bwd(const float *y, float *dy, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    if (y[i] <= 0.0f) dy[i] = 0.0f;
}

/* ---- softmax cross-entropy: one block per row, double sums as the host ---- */

template <typename T, typename Op> __device__ T block_reduce(T v, T *sh, Op op) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) sh[threadIdx.x] = op(sh[threadIdx.x], sh[threadIdx.x + s]);
    __syncthreads();
  }
  T r = sh[0];
  __syncthreads(); /* sh is reused by the next reduction */
  return r;
}

struct max_op {
  __device__ float operator()(float a, float b) const { return a > b ? a : b; }
};
struct sum_op {
  __device__ double operator()(double a, double b) const { return a + b; }
};

__global__ void k_xent(const float *logits, const int *labels, float *dlogits, double *row_loss, int nc,
                       float scale) {
  __shared__ float shf[kThreads];
  __shared__ double shd[kThreads];
  const int r = blockIdx.x;
  const float *l = logits + (size_t)r * nc;
  float *d = dlogits + (size_t)r * nc;
  const int y = labels[r];
  float mx = l[0];
  for (int c = threadIdx.x; c < nc; c += blockDim.x) mx = l[c] > mx ? l[c] : mx;
  mx = block_reduce(mx, shf, max_op());
  double z = 0.0;
  for (int c = threadIdx.x; c < nc; c += blockDim.x) z += exp((double)(l[c] - mx));
  z = block_reduce(z, shd, sum_op());
  for (int c = threadIdx.x; c < nc; c += blockDim.x) {
    double p = exp((double)(l[c] - mx)) / z;
    d[c] = (float)((p - (c == y ? 1.0 : 0.0)) * scale);
  }
  if (threadIdx.x == 0) row_loss[r] = log(z) - (double)(l[y] - mx);
}

/* One block sums the row losses in a fixed order: the same loss every run. */
__global__ void k_sum_rows(const double *row_loss, int nb, double *out) {
  __shared__ double sh[kThreads];
  double s = 0.0;
  for (int r = threadIdx.x; r < nb; r += blockDim.x) s += row_loss[r];
  s = block_reduce(s, sh, sum_op());
  if (threadIdx.x == 0) *out = s;
}

/* ---- the backend table ---- */

cuda_backend *self_of(void *self) { return static_cast<cuda_backend *>(self); }

/* Row-major C[M,N] = op(A) op(B) + beta C. A row-major matrix is the
 * column-major matrix of its transpose, so this asks cuBLAS for
 * C^T = op(B)^T op(A)^T: the operands swap places, the op flags stay. */
int rm_gemm(cuda_backend *c, bool ta, bool tb, int M, int N, int K, const float *A, int lda, const float *Bm,
            int ldb, float beta, float *C, int ldc) {
  const float one = 1.0f;
  cublasStatus_t st = cublasSgemm(c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                  &one, Bm, ldb, A, lda, &beta, C, ldc);
  if (st != CUBLAS_STATUS_SUCCESS)
    return fail(c, "cuda backend: cublasSgemm %dx%dx%d (ta %d, tb %d) failed: %s", M, N, K, (int)ta, (int)tb,
                cublasGetStatusString(st));
  return 0;
}

int view_check(cuda_backend *c, const shardrt_view *v, const char *what) {
  if (!v || (!v->data && v->numel > 0) || v->numel < 0)
    return fail(c, "cuda backend: %s view is empty or has a negative size", what);
  if (v->dtype != SHARDRT_F32 && v->dtype != SHARDRT_BF16 && v->dtype != SHARDRT_F16)
    return fail(c, "cuda backend: %s view has dtype %d (allowed: fp32, bf16, fp16)", what, (int)v->dtype);
  return 0;
}

int cu_alloc(void *self, size_t bytes, void **out) {
  cuda_backend *c = self_of(self);
  *out = NULL;
  CK(c, cudaMalloc(out, bytes ? bytes : 1), "cudaMalloc of an activation buffer");
  cudaError_t e = cudaMemsetAsync(*out, 0, bytes, c->stream);
  if (e != cudaSuccess) {
    cudaFree(*out);
    *out = NULL;
    return cuda_fail(c, e, "zero-filling an activation buffer");
  }
  return 0;
}

void cu_release(void *self, void *p) {
  (void)self;
  if (p) cudaFree(p);
}

int cu_upload(void *self, float *x, int *labels, const float *hx, const int *hlabels, int rows, int in,
              int classes) {
  cuda_backend *c = self_of(self);
  for (int r = 0; r < rows; r++)
    if (hlabels[r] < 0 || hlabels[r] >= classes)
      return fail(c, "batch row %d has label %d, outside [0, %d)", r, hlabels[r], classes);
  if (rows > c->row_loss_cap) {
    cudaFree(c->row_loss);
    c->row_loss = NULL;
    c->row_loss_cap = 0;
    CK(c, cudaMalloc((void **)&c->row_loss, sizeof(double) * (size_t)rows), "cudaMalloc of the per-row losses");
    c->row_loss_cap = rows;
  }
  CK(c, cudaMemcpyAsync(x, hx, sizeof(float) * (size_t)rows * in, cudaMemcpyHostToDevice, c->stream),
     "copying the input batch to the GPU");
  CK(c, cudaMemcpyAsync(labels, hlabels, sizeof(int) * (size_t)rows, cudaMemcpyHostToDevice, c->stream),
     "copying the labels to the GPU");
  /* The caller refills the host arrays for the next micro-batch. */
  CK(c, cudaStreamSynchronize(c->stream), "waiting for the batch upload");
  return 0;
}

int cu_view_f32(void *self, const shardrt_view *v, float *scratch, const float **out) {
  cuda_backend *c = self_of(self);
  if (view_check(c, v, "param")) return -1;
  if (v->dtype == SHARDRT_F32) {
    *out = static_cast<const float *>(v->data);
    return 0;
  }
  unsigned g = blocks_for(v->numel);
  if (v->dtype == SHARDRT_BF16)
    k_to_f32<<<g, kThreads, 0, c->stream>>>(scratch, static_cast<const __nv_bfloat16 *>(v->data), v->numel);
  else
    k_to_f32<<<g, kThreads, 0, c->stream>>>(scratch, static_cast<const __half *>(v->data), v->numel);
  CK_LAUNCH(c, "casting a param view to fp32");
  *out = scratch;
  return 0;
}

int cu_view_add_f32(void *self, const shardrt_view *v, const float *src) {
  cuda_backend *c = self_of(self);
  if (view_check(c, v, "grad")) return -1;
  unsigned g = blocks_for(v->numel);
  if (v->dtype == SHARDRT_F32)
    k_add_f32<<<g, kThreads, 0, c->stream>>>(static_cast<float *>(v->data), src, v->numel);
  else if (v->dtype == SHARDRT_BF16)
    k_add_f32<<<g, kThreads, 0, c->stream>>>(static_cast<__nv_bfloat16 *>(v->data), src, v->numel);
  else
    k_add_f32<<<g, kThreads, 0, c->stream>>>(static_cast<__half *>(v->data), src, v->numel);
  CK_LAUNCH(c, "adding fp32 gradients into a grad view");
  return 0;
}

int cu_zero(void *self, float *p, int64_t n) {
  cuda_backend *c = self_of(self);
  CK(c, cudaMemsetAsync(p, 0, sizeof(float) * (size_t)n, c->stream), "zeroing a gradient buffer");
  return 0;
}

int cu_linear_fwd(void *self, const float *x, const float *W, const float *b, float *y, int nb, int ni, int no) {
  cuda_backend *c = self_of(self);
  int64_t n = (int64_t)nb * no;
  k_bias_rows<<<blocks_for(n), kThreads, 0, c->stream>>>(y, b, n, no);
  CK_LAUNCH(c, "bias broadcast");
  /* y[nb,no] += x[nb,ni] W[no,ni]^T */
  return rm_gemm(c, false, true, nb, no, ni, x, ni, W, ni, 1.0f, y, no);
}

int cu_linear_bwd(void *self, const float *x, const float *W, const float *dy, float *dx, float *dW, float *db,
                  int nb, int ni, int no) {
  cuda_backend *c = self_of(self);
  /* dx[nb,ni] = dy[nb,no] W[no,ni] */
  if (dx && rm_gemm(c, false, false, nb, ni, no, dy, no, W, ni, 0.0f, dx, ni)) return -1;
  /* dW[no,ni] += dy[nb,no]^T x[nb,ni] */
  if (rm_gemm(c, true, false, no, ni, nb, dy, no, x, ni, 1.0f, dW, ni)) return -1;
  k_bias_bwd<<<blocks_for(no), kThreads, 0, c->stream>>>(db, dy, nb, no);
  CK_LAUNCH(c, "bias gradient");
  return 0;
}

int cu_relu_fwd(void *self, float *y, int64_t n) {
  cuda_backend *c = self_of(self);
  k_relu_fwd<<<blocks_for(n), kThreads, 0, c->stream>>>(y, n);
  CK_LAUNCH(c, "ReLU forward");
  return 0;
}

int cu_relu_bwd(void *self, const float *y, float *dy, int64_t n) {
  cuda_backend *c = self_of(self);
  k_relu_bwd<<<blocks_for(n), kThreads, 0, c->stream>>>(y, dy, n);
  CK_LAUNCH(c, "ReLU backward");
  return 0;
}

int cu_xent(void *self, const float *logits, const int *labels, float *dlogits, int nb, int nc, float scale,
            double *loss_sum) {
  cuda_backend *c = self_of(self);
  if (nb > c->row_loss_cap)
    return fail(c, "cuda backend: cross-entropy over %d rows, but the uploaded batch had %d", nb, c->row_loss_cap);
  if (nb > 0) {
    k_xent<<<nb, kThreads, 0, c->stream>>>(logits, labels, dlogits, c->row_loss, nc, scale);
    CK_LAUNCH(c, "softmax cross-entropy");
  }
  k_sum_rows<<<1, kThreads, 0, c->stream>>>(c->row_loss, nb, c->loss);
  CK_LAUNCH(c, "loss reduction");
  double host = 0.0;
  CK(c, cudaMemcpyAsync(&host, c->loss, sizeof host, cudaMemcpyDeviceToHost, c->stream), "reading the loss back");
  CK(c, cudaStreamSynchronize(c->stream), "waiting for the micro-batch's forward pass");
  *loss_sum += host;
  return 0;
}

const char *cu_error(const void *self) { return static_cast<const cuda_backend *>(self)->err; }

void cu_destroy(void *self) {
  cuda_backend *c = self_of(self);
  if (!c) return;
  /* Frees are stream-unordered: let queued work that may use them finish. */
  (void)cudaStreamSynchronize(c->stream);
  cudaFree(c->row_loss);
  cudaFree(c->loss);
  if (c->blas) cublasDestroy(c->blas);
  (void)cudaGetLastError();
  free(c);
}

const mlp_backend_i cuda_iface = {
    "cuda",     cu_alloc,   cu_release, cu_upload,   cu_view_f32, cu_view_add_f32, cu_zero, cu_linear_fwd,
    cu_linear_bwd, cu_relu_fwd, cu_relu_bwd, cu_xent, cu_error, cu_destroy,
};

}  // namespace

extern "C" int mlp_backend_cuda_create(mlp_backend *out, void *stream, char *err, size_t errlen) {
  out->i = NULL;
  out->self = NULL;
  int ndev = 0;
  cudaError_t e = cudaGetDeviceCount(&ndev);
  if (e != cudaSuccess || ndev <= 0) {
    (void)cudaGetLastError();
    snprintf(err, errlen, "cuda backend: no CUDA GPU is usable (cudaGetDeviceCount: %s)",
             e == cudaSuccess ? "0 devices" : cudaGetErrorString(e));
    return -1;
  }
  cuda_backend *c = static_cast<cuda_backend *>(calloc(1, sizeof(cuda_backend)));
  if (!c) {
    snprintf(err, errlen, "cuda backend: out of host memory");
    return -1;
  }
  c->stream = static_cast<cudaStream_t>(stream);
  cublasStatus_t st = cublasCreate(&c->blas);
  if (st != CUBLAS_STATUS_SUCCESS) {
    snprintf(err, errlen, "cuda backend: cublasCreate failed: %s", cublasGetStatusString(st));
    c->blas = NULL;
    cu_destroy(c);
    return -1;
  }
  /* The default math mode keeps fp32 products in fp32 (no TF32), so the
   * losses track the host path to float rounding. */
  if ((st = cublasSetStream(c->blas, c->stream)) != CUBLAS_STATUS_SUCCESS ||
      (st = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS) {
    snprintf(err, errlen, "cuda backend: binding cuBLAS to the runtime's stream failed: %s",
             cublasGetStatusString(st));
    cu_destroy(c);
    return -1;
  }
  if ((e = cudaMalloc((void **)&c->loss, sizeof(double))) != cudaSuccess) {
    (void)cudaGetLastError();
    snprintf(err, errlen, "cuda backend: cudaMalloc of the loss accumulator failed: %s", cudaGetErrorString(e));
    cu_destroy(c);
    return -1;
  }
  out->i = &cuda_iface;
  out->self = c;
  return 0;
}
