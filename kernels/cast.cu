/* SPDX-License-Identifier: Apache-2.0 */
#include "kernels/cast.cuh"
#include "kernels/common.cuh"

using namespace shardrt__k;

template <typename D, typename S>
__global__ void cast_kernel(D *dst, const S *src, size_t n, size_t nvec) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  const size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (size_t vi = t; vi < nvec; vi += stride) {
    float f[4];
    load4(src, vi, f);
    store4(dst, vi, f);
  }
  for (size_t i = nvec * 4 + t; i < n; i += stride) dst[i] = from_f32<D>(to_f32(src[i]));
}

/* Same-dtype copy. cudaMemcpyAsync is undefined for overlapping ranges, so an
 * overlapping move goes through a stream-ordered temporary. */
extern "C" cudaError_t shardrt__cuda_move(void *dst, const void *src, size_t bytes, cudaStream_t stream) {
  if (dst == src || bytes == 0) return cudaSuccess;
  if (!dst || !src) return cudaErrorInvalidValue;
  uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;
  bool overlap = d < s + bytes && s < d + bytes;
  if (!overlap) return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
  void *tmp = NULL;
  cudaError_t e = cudaMallocAsync(&tmp, bytes, stream);
  if (e != cudaSuccess) return e;
  e = cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, stream);
  if (e == cudaSuccess) e = cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, stream);
  cudaError_t f = cudaFreeAsync(tmp, stream);
  return e != cudaSuccess ? e : f;
}

extern "C" cudaError_t shardrt__cuda_cast(void *dst, shardrt_dtype dst_dt, const void *src,
                                          shardrt_dtype src_dt, size_t n, cudaStream_t stream) {
  if (!dtype_valid(dst_dt) || !dtype_valid(src_dt)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!dst || !src) return cudaErrorInvalidValue;
  if (dst_dt == src_dt) return shardrt__cuda_move(dst, src, n * dtype_bytes(dst_dt), stream);
  bool vec = vec_ok(dst, dtype_bytes(dst_dt)) && vec_ok(src, dtype_bytes(src_dt));
  size_t nvec = shardrt__k_nvec(n, vec);
  unsigned grid = grid_for(shardrt__k_items(n, nvec));
  return dispatch(dst_dt, [&](auto dtag) {
    typedef decltype(dtag) D;
    return dispatch(src_dt, [&](auto stag) {
      typedef decltype(stag) S;
      cast_kernel<D, S><<<grid, kThreads, 0, stream>>>((D *)dst, (const S *)src, n, nvec);
      return cudaGetLastError();
    });
  });
}
