/* SPDX-License-Identifier: Apache-2.0 */
#include "kernels/common.cuh"
#include "kernels/sqnorm.cuh"

using namespace shardrt__k;

static constexpr unsigned kMaxPartials = SHARDRT__CUDA_SQNORM_WORK - 1;

/* Sum of v over the block, valid in thread 0. blockDim.x is a multiple of 32. */
__device__ double block_sum(double v) {
  __shared__ double warp_sums[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  const unsigned nwarps = blockDim.x / 32;
  v = threadIdx.x < nwarps ? warp_sums[threadIdx.x] : 0.0;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__global__ void sqnorm_partial(const T *buf, size_t n, size_t nvec, double *partials) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  const size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  double acc = 0.0;
  for (size_t vi = t; vi < nvec; vi += stride) {
    float f[4];
    load4(buf, vi, f);
#pragma unroll
    for (int k = 0; k < 4; k++) {
      double x = (double)f[k];
      acc += x * x; /* exact: a float squared fits in a double's mantissa */
    }
  }
  for (size_t i = nvec * 4 + t; i < n; i += stride) {
    double x = (double)to_f32(buf[i]);
    acc += x * x;
  }
  double s = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void sqnorm_final(const double *partials, unsigned count, double *out) {
  double acc = 0.0;
  for (unsigned i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  double s = block_sum(acc);
  if (threadIdx.x == 0) *out = s;
}

extern "C" cudaError_t shardrt__cuda_sqnorm(const void *buf, shardrt_dtype dt, size_t n, double *work,
                                            cudaStream_t stream) {
  if (!dtype_valid(dt) || !work) return cudaErrorInvalidValue;
  if (n == 0) return cudaMemsetAsync(work, 0, sizeof(double), stream);
  if (!buf) return cudaErrorInvalidValue;
  size_t nvec = shardrt__k_nvec(n, vec_ok(buf, dtype_bytes(dt)));
  unsigned grid = grid_for(shardrt__k_items(n, nvec));
  if (grid > kMaxPartials) grid = kMaxPartials;
  cudaError_t e = dispatch(dt, [&](auto tag) {
    typedef decltype(tag) T;
    sqnorm_partial<T><<<grid, kThreads, 0, stream>>>((const T *)buf, n, nvec, work + 1);
    return cudaGetLastError();
  });
  if (e != cudaSuccess) return e;
  sqnorm_final<<<1, 1024, 0, stream>>>(work + 1, grid, work);
  return cudaGetLastError();
}
