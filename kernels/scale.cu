/* SPDX-License-Identifier: Apache-2.0 */
#include "kernels/common.cuh"
#include "kernels/scale.cuh"

using namespace shardrt__k;

template <typename T>
__global__ void scale_kernel(T *buf, size_t n, size_t nvec, float factor) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  const size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (size_t vi = t; vi < nvec; vi += stride) {
    float a[4];
    load4(buf, vi, a);
#pragma unroll
    for (int k = 0; k < 4; k++) a[k] = __fmul_rn(a[k], factor);
    store4(buf, vi, a);
  }
  for (size_t i = nvec * 4 + t; i < n; i += stride) buf[i] = from_f32<T>(__fmul_rn(to_f32(buf[i]), factor));
}

extern "C" cudaError_t shardrt__cuda_scale(void *buf, shardrt_dtype dt, size_t n, float factor,
                                           cudaStream_t stream) {
  if (!dtype_valid(dt)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!buf) return cudaErrorInvalidValue;
  size_t nvec = shardrt__k_nvec(n, vec_ok(buf, dtype_bytes(dt)));
  unsigned grid = grid_for(shardrt__k_items(n, nvec));
  return dispatch(dt, [&](auto tag) {
    typedef decltype(tag) T;
    scale_kernel<T><<<grid, kThreads, 0, stream>>>((T *)buf, n, nvec, factor);
    return cudaGetLastError();
  });
}
