/* SPDX-License-Identifier: Apache-2.0 */
#include "kernels/adamw.cuh"
#include "kernels/common.cuh"

using namespace shardrt__k;

/* The _rn intrinsics are never contracted into FMAs, so every rounding step
 * is the one the CPU twin (src/device/device_cpu.c) makes, in the order
 * documented at shardrt__adamw_args (torch.optim.AdamW's):
 *   g = grad*grad_scale;  m = lerp(m, g, 1-beta1);  v = v*beta2 + ((1-beta2)*g)*g
 *   p = p*decay;  p = p + (neg_step_size*m) / (sqrt(v)/bc2_sqrt + eps)
 * m and v feed the update before they are rounded to the state dtype. */
__device__ __forceinline__ void adamw_one(float &p, float grad, float &m, float &v,
                                          const shardrt__adamw_args &a) {
  const float g = __fmul_rn(grad, a.grad_scale);
  const float w = a.one_minus_beta1;
  m = fabsf(w) < 0.5f ? __fadd_rn(m, __fmul_rn(w, __fsub_rn(g, m)))
                      : __fsub_rn(g, __fmul_rn(__fsub_rn(g, m), __fsub_rn(1.0f, w)));
  v = __fadd_rn(__fmul_rn(v, a.beta2), __fmul_rn(__fmul_rn(a.one_minus_beta2, g), g));
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), a.bc2_sqrt), a.eps);
  p = __fmul_rn(p, a.decay);
  p = __fadd_rn(p, __fdiv_rn(__fmul_rn(a.neg_step_size, m), denom));
}

template <typename P, typename G, typename S>
__global__ void adamw_kernel(P *param, const G *grad, S *m, S *v, size_t n, size_t nvec,
                             shardrt__adamw_args a) {
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  const size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (size_t vi = t; vi < nvec; vi += stride) {
    float p[4], g[4], mm[4], vv[4];
    load4(param, vi, p);
    load4(grad, vi, g);
    load4(m, vi, mm);
    load4(v, vi, vv);
#pragma unroll
    for (int k = 0; k < 4; k++) adamw_one(p[k], g[k], mm[k], vv[k], a);
    store4(param, vi, p);
    store4(m, vi, mm);
    store4(v, vi, vv);
  }
  for (size_t i = nvec * 4 + t; i < n; i += stride) {
    float p = to_f32(param[i]), mm = to_f32(m[i]), vv = to_f32(v[i]);
    adamw_one(p, to_f32(grad[i]), mm, vv, a);
    param[i] = from_f32<P>(p);
    m[i] = from_f32<S>(mm);
    v[i] = from_f32<S>(vv);
  }
}

extern "C" cudaError_t shardrt__cuda_adamw(void *param, shardrt_dtype param_dt, const void *grad,
                                           shardrt_dtype grad_dt, void *m, void *v, shardrt_dtype state_dt,
                                           size_t n, const shardrt__adamw_args *args, cudaStream_t stream) {
  if (!dtype_valid(param_dt) || !dtype_valid(grad_dt) || !dtype_valid(state_dt) || !args)
    return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!param || !grad || !m || !v) return cudaErrorInvalidValue;
  const size_t sb = dtype_bytes(state_dt);
  bool vec = vec_ok(param, dtype_bytes(param_dt)) && vec_ok(grad, dtype_bytes(grad_dt)) && vec_ok(m, sb) &&
             vec_ok(v, sb);
  size_t nvec = shardrt__k_nvec(n, vec);
  unsigned grid = grid_for(shardrt__k_items(n, nvec));
  const shardrt__adamw_args a = *args;
  return dispatch(param_dt, [&](auto ptag) {
    typedef decltype(ptag) P;
    return dispatch(grad_dt, [&](auto gtag) {
      typedef decltype(gtag) G;
      return dispatch(state_dt, [&](auto stag) {
        typedef decltype(stag) S;
        adamw_kernel<P, G, S><<<grid, kThreads, 0, stream>>>((P *)param, (const G *)grad, (S *)m, (S *)v, n,
                                                             nvec, a);
        return cudaGetLastError();
      });
    });
  });
}
