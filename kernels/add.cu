/* SPDX-License-Identifier: Apache-2.0 */
#include "kernels/add.cuh"
#include "kernels/common.cuh"

using namespace shardrt__k;

template <typename D, typename S>
__global__ void add_kernel(D *dst, const S *src, size_t n, size_t nvec) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  const size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (size_t vi = t; vi < nvec; vi += stride) {
    float a[4], b[4];
    load4(dst, vi, a);
    load4(src, vi, b);
#pragma unroll
    for (int k = 0; k < 4; k++) a[k] = __fadd_rn(a[k], b[k]);
    store4(dst, vi, a);
  }
  for (size_t i = nvec * 4 + t; i < n; i += stride)
    dst[i] = from_f32<D>(__fadd_rn(to_f32(dst[i]), to_f32(src[i])));
}

extern "C" cudaError_t shardrt__cuda_add(void *dst, shardrt_dtype dst_dt, const void *src,
                                         shardrt_dtype src_dt, size_t n, cudaStream_t stream) {
  if (!dtype_valid(dst_dt) || !dtype_valid(src_dt)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!dst || !src) return cudaErrorInvalidValue;
  bool vec = vec_ok(dst, dtype_bytes(dst_dt)) && vec_ok(src, dtype_bytes(src_dt));
  size_t nvec = shardrt__k_nvec(n, vec);
  unsigned grid = grid_for(shardrt__k_items(n, nvec));
  return dispatch(dst_dt, [&](auto dtag) {
    typedef decltype(dtag) D;
    return dispatch(src_dt, [&](auto stag) {
      typedef decltype(stag) S;
      add_kernel<D, S><<<grid, kThreads, 0, stream>>>((D *)dst, (const S *)src, n, nvec);
      return cudaGetLastError();
    });
  });
}
