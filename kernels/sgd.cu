/* SPDX-License-Identifier: Apache-2.0 */
#include "kernels/common.cuh"
#include "kernels/sgd.cuh"

using namespace shardrt__k;

/* Unfused _rn intrinsics keep the CPU twin's rounding steps:
 *   g = grad*grad_scale + weight_decay*p
 *   buf = momentum*buf + g; g = buf          (when there is a buffer)
 *   p = p - lr*g */
template <bool kBuf>
__device__ __forceinline__ void sgd_one(float &p, float grad, float &b, const shardrt__sgd_args &a) {
  float g = __fadd_rn(__fmul_rn(grad, a.grad_scale), __fmul_rn(a.weight_decay, p));
  if (kBuf) {
    b = __fadd_rn(__fmul_rn(a.momentum, b), g);
    g = b;
  }
  p = __fsub_rn(p, __fmul_rn(a.lr, g));
}

template <typename P, typename G, typename S, bool kBuf>
__global__ void sgd_kernel(P *param, const G *grad, S *buf, size_t n, size_t nvec, shardrt__sgd_args a) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  const size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (size_t vi = t; vi < nvec; vi += stride) {
    float p[4], g[4], b[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    load4(param, vi, p);
    load4(grad, vi, g);
    if (kBuf) load4(buf, vi, b);
#pragma unroll
    for (int k = 0; k < 4; k++) sgd_one<kBuf>(p[k], g[k], b[k], a);
    store4(param, vi, p);
    if (kBuf) store4(buf, vi, b);
  }
  for (size_t i = nvec * 4 + t; i < n; i += stride) {
    float p = to_f32(param[i]), b = kBuf ? to_f32(buf[i]) : 0.0f;
    sgd_one<kBuf>(p, to_f32(grad[i]), b, a);
    param[i] = from_f32<P>(p);
    if (kBuf) buf[i] = from_f32<S>(b);
  }
}

extern "C" cudaError_t shardrt__cuda_sgd(void *param, shardrt_dtype param_dt, const void *grad,
                                         shardrt_dtype grad_dt, void *buf, shardrt_dtype state_dt, size_t n,
                                         const shardrt__sgd_args *args, cudaStream_t stream) {
  if (!dtype_valid(param_dt) || !dtype_valid(grad_dt) || !args) return cudaErrorInvalidValue;
  if (buf && !dtype_valid(state_dt)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!param || !grad) return cudaErrorInvalidValue;
  bool vec = vec_ok(param, dtype_bytes(param_dt)) && vec_ok(grad, dtype_bytes(grad_dt)) &&
             (!buf || vec_ok(buf, dtype_bytes(state_dt)));
  size_t nvec = shardrt__k_nvec(n, vec);
  unsigned grid = grid_for(shardrt__k_items(n, nvec));
  const shardrt__sgd_args a = *args;
  return dispatch(param_dt, [&](auto ptag) {
    typedef decltype(ptag) P;
    return dispatch(grad_dt, [&](auto gtag) {
      typedef decltype(gtag) G;
      if (!buf) {
        sgd_kernel<P, G, float, false><<<grid, kThreads, 0, stream>>>((P *)param, (const G *)grad, nullptr, n,
                                                                      nvec, a);
        return cudaGetLastError();
      }
      return dispatch(state_dt, [&](auto stag) {
        typedef decltype(stag) S;
        sgd_kernel<P, G, S, true><<<grid, kThreads, 0, stream>>>((P *)param, (const G *)grad, (S *)buf, n,
                                                                 nvec, a);
        return cudaGetLastError();
      });
    });
  });
}
