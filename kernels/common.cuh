/* SPDX-License-Identifier: Apache-2.0 */
/* Device-side helpers shared by the kernels (included by the kernels' .cu files only,
 * never by C code): dtype loads/stores through fp32, 4-wide vector access,
 * dtype dispatch and the launch-shape rule. */
#ifndef SHARDRT_KERNELS_COMMON_CUH
#define SHARDRT_KERNELS_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/launch.h"
#include "shardrt/types.h"

namespace shardrt__k {

/* Every element is converted to fp32 on load and rounded to nearest even on
 * store: the same rule as the CPU twin, so results agree bit for bit where
 * the arithmetic is the same. */
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }

/* Four elements moved as one 16-byte (fp32) or 8-byte (16-bit) access. */
template <typename T> struct vec4 { typedef uint2 type; };
template <> struct vec4<float> { typedef float4 type; };

template <typename T>
__device__ __forceinline__ void load4(const T *p, size_t vi, float f[4]) {
  typename vec4<T>::type raw = reinterpret_cast<const typename vec4<T>::type *>(p)[vi];
  T e[4];
  memcpy(e, &raw, sizeof raw);
#pragma unroll
  for (int k = 0; k < 4; k++) f[k] = to_f32(e[k]);
}

template <typename T>
__device__ __forceinline__ void store4(T *p, size_t vi, const float f[4]) {
  T e[4];
#pragma unroll
  for (int k = 0; k < 4; k++) e[k] = from_f32<T>(f[k]);
  typename vec4<T>::type raw;
  memcpy(&raw, e, sizeof raw);
  reinterpret_cast<typename vec4<T>::type *>(p)[vi] = raw;
}

/* True when p may be accessed 4 elements of `elem` bytes at a time. A NULL
 * pointer (an absent optional buffer) never blocks the vector path. */
static inline bool vec_ok(const void *p, size_t elem) {
  return ((uintptr_t)p % (4 * elem)) == 0;
}

static inline size_t dtype_bytes(shardrt_dtype dt) { return dt == SHARDRT_F32 ? 4 : 2; }

static inline bool dtype_valid(shardrt_dtype dt) {
  return dt == SHARDRT_F32 || dt == SHARDRT_BF16 || dt == SHARDRT_F16;
}

constexpr int kThreads = SHARDRT__K_THREADS;

/* Grid for a grid-stride loop over `items` work items on the current
 * device: enough blocks to fill it a few times over, never more than there
 * is work for (the rule itself is shardrt__k_grid, kernels/launch.h). */
static inline unsigned grid_for(size_t items) {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms <= 0) {
    (void)cudaGetLastError();
    sms = 132;
  }
  return shardrt__k_grid(items, sms);
}

/* Calls fn.template operator()<T>() for the C type of dt; returns
 * cudaErrorInvalidValue for an unknown dtype. */
template <typename F> cudaError_t dispatch(shardrt_dtype dt, F &&fn) {
  switch (dt) {
    case SHARDRT_F32: return fn(float());
    case SHARDRT_BF16: return fn(__nv_bfloat16());
    case SHARDRT_F16: return fn(__half());
  }
  return cudaErrorInvalidValue;
}

}  // namespace shardrt__k

#endif
