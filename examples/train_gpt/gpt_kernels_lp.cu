/* SPDX-License-Identifier: Apache-2.0 */
/* Element-wise, LayerNorm, bias and softmax kernels of the bf16 and fp16
 * paths: templates over the storage type LP, instantiated for both at the
 * end of the file. */
#include <float.h>

#include "gpt_kernels_lp.cuh"
#include "gpt_launch.h"

#define WARP 32
#define GELU_K 0.7978845608028654f
#define LN_EPS 1e-5f

static __device__ __forceinline__ float warp_sum(float v) {
  for (int o = WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
static __device__ __forceinline__ float warp_max(float v) {
  for (int o = WARP / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
#define ld gpt_ld
#define st gpt_st<LP>

#define GRID_STRIDE(i, n)                                                                    \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                 \
       i += (int64_t)gridDim.x * blockDim.x)

/* ---- casts ---- */

template <typename LP> __global__ void f32_to_lp_kernel(LP *dst, const float *src, int64_t n) {
  GRID_STRIDE(i, n) dst[i] = st(src[i]);
}
template <typename LP> __global__ void lp_to_f32_kernel(float *dst, const LP *src, int64_t n) {
  GRID_STRIDE(i, n) dst[i] = ld(src[i]);
}

template <typename LP> cudaError_t gpt_k_f32_to_lp(LP *dst, const float *src, int64_t n, cudaStream_t s) {
  f32_to_lp_kernel<<<gpt_ew_blocks(n), GPT_EW_THREADS, 0, s>>>(dst, src, n);
  return cudaGetLastError();
}
template <typename LP> cudaError_t gpt_k_lp_to_f32(float *dst, const LP *src, int64_t n, cudaStream_t s) {
  lp_to_f32_kernel<<<gpt_ew_blocks(n), GPT_EW_THREADS, 0, s>>>(dst, src, n);
  return cudaGetLastError();
}

/* ---- LayerNorm: one warp per row, two passes over the row in fp32 ---- */

template <typename LP> __global__ void layernorm_forward_lp_kernel(LP *out, float *mean, float *rstd, const float *inp,
                                            const float *w, const float *b, int N, int C) {
  int row = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  int lane = threadIdx.x % WARP;
  if (row >= N) return;
  const float *x = inp + (int64_t)row * C;
  float s = 0.0f;
  for (int c = lane; c < C; c += WARP) s += x[c];
  float m = warp_sum(s) / C;
  float v = 0.0f;
  for (int c = lane; c < C; c += WARP) {
    float d = x[c] - m;
    v += d * d;
  }
  float r = rsqrtf(warp_sum(v) / C + LN_EPS);
  LP *o = out + (int64_t)row * C;
  for (int c = lane; c < C; c += WARP) o[c] = st((x[c] - m) * r * w[c] + b[c]);
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

template <typename LP> cudaError_t gpt_k_layernorm_forward_lp(LP *out, float *mean, float *rstd, const float *inp,
                                       const float *w, const float *b, int N, int C, cudaStream_t s) {
  layernorm_forward_lp_kernel<<<gpt_row_blocks(N, GPT_ROWS_PER_BLOCK), GPT_ROWS_PER_BLOCK * WARP, 0, s>>>(
      out, mean, rstd, inp, w, b, N, C);
  return cudaGetLastError();
}

/* ---- bias ---- */

__global__ void bias_add_f32_kernel(float *out, const float *b, int64_t n, int OC) {
  GRID_STRIDE(i, n) out[i] += b[i % OC];
}
template <typename LP> __global__ void bias_add_lp_kernel(LP *out, const LP *b, int64_t n, int OC) {
  GRID_STRIDE(i, n) out[i] = st(ld(out[i]) + ld(b[i % OC]));
}

/* column sums in a fixed tree (blockDim 32 x 8), as gpt_kernels.cu */
template <typename LP> __global__ void column_sum_add_lp_kernel(float *db, const LP *d, int N, int OC) {
  __shared__ float sh[8][WARP + 1];
  int c = blockIdx.x * WARP + threadIdx.x;
  float a = 0.0f;
  if (c < OC)
    for (int n = threadIdx.y; n < N; n += blockDim.y) a += ld(d[(int64_t)n * OC + c]);
  sh[threadIdx.y][threadIdx.x] = a;
  __syncthreads();
  if (threadIdx.y == 0 && c < OC) {
    for (int y = 1; y < (int)blockDim.y; y++) a += sh[y][threadIdx.x];
    db[c] += a;
  }
}

cudaError_t gpt_k_bias_add_f32(float *out, const float *b, int N, int OC, cudaStream_t s) {
  int64_t n = (int64_t)N * OC;
  bias_add_f32_kernel<<<gpt_ew_blocks(n), GPT_EW_THREADS, 0, s>>>(out, b, n, OC);
  return cudaGetLastError();
}
template <typename LP> cudaError_t gpt_k_bias_add_lp(LP *out, const LP *b, int N, int OC, cudaStream_t s) {
  int64_t n = (int64_t)N * OC;
  bias_add_lp_kernel<<<gpt_ew_blocks(n), GPT_EW_THREADS, 0, s>>>(out, b, n, OC);
  return cudaGetLastError();
}
template <typename LP> cudaError_t gpt_k_bias_backward_lp(float *db, const LP *d, int N, int OC, cudaStream_t s) {
  column_sum_add_lp_kernel<<<gpt_row_blocks(OC, WARP), dim3(WARP, 8), 0, s>>>(db, d, N, OC);
  return cudaGetLastError();
}

/* ---- GELU (tanh form, GPT-2's; the cuBLASLt epilogue computes the same) ---- */

static __device__ __forceinline__ float gelu_f(float x) {
  return 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
}
static __device__ __forceinline__ float gelu_grad_f(float x) {
  float t = tanhf(GELU_K * (x + 0.044715f * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
}

template <typename LP> __global__ void gelu_forward_lp_kernel(LP *out, const LP *pre, int64_t n) {
  GRID_STRIDE(i, n) out[i] = st(gelu_f(ld(pre[i])));
}
template <typename LP> __global__ void gelu_backward_inplace_lp_kernel(LP *d, const LP *pre, int64_t n) {
  GRID_STRIDE(i, n) d[i] = st(ld(d[i]) * gelu_grad_f(ld(pre[i])));
}

template <typename LP> cudaError_t gpt_k_gelu_forward_lp(LP *out, const LP *pre, int64_t n, cudaStream_t s) {
  gelu_forward_lp_kernel<<<gpt_ew_blocks(n), GPT_EW_THREADS, 0, s>>>(out, pre, n);
  return cudaGetLastError();
}
template <typename LP> cudaError_t gpt_k_gelu_backward_inplace_lp(LP *d, const LP *pre, int64_t n, cudaStream_t s) {
  gelu_backward_inplace_lp_kernel<<<gpt_ew_blocks(n), GPT_EW_THREADS, 0, s>>>(d, pre, n);
  return cudaGetLastError();
}

/* ---- causal softmax, one warp per row ---- */

template <typename LP> __global__ void softmax_causal_forward_lp_kernel(LP *att, const float *scores, float scale, int rows, int T) {
  int r = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  int lane = threadIdx.x % WARP;
  if (r >= rows) return;
  int i = r % T;
  const float *x = scores + (int64_t)r * T;
  float mx = -FLT_MAX;
  for (int j = lane; j <= i; j += WARP) mx = fmaxf(mx, x[j] * scale);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int j = lane; j <= i; j += WARP) sum += __expf(x[j] * scale - mx);
  float inv = 1.0f / warp_sum(sum);
  LP *o = att + (int64_t)r * T;
  for (int j = lane; j < T; j += WARP) o[j] = st(j <= i ? __expf(x[j] * scale - mx) * inv : 0.0f);
}

template <typename LP> __global__ void softmax_causal_backward_lp_kernel(LP *dpre, const LP *att, const float *datt, float scale,
                                                  int rows, int T) {
  int r = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  int lane = threadIdx.x % WARP;
  if (r >= rows) return;
  int i = r % T;
  const LP *a = att + (int64_t)r * T;
  const float *da = datt + (int64_t)r * T;
  float dot = 0.0f;
  for (int j = lane; j <= i; j += WARP) dot += ld(a[j]) * da[j];
  dot = warp_sum(dot);
  LP *o = dpre + (int64_t)r * T;
  for (int j = lane; j < T; j += WARP) o[j] = st(j <= i ? scale * ld(a[j]) * (da[j] - dot) : 0.0f);
}

template <typename LP> cudaError_t gpt_k_softmax_causal_forward_lp(LP *att, const float *scores, float scale, int BNH, int T,
                                            cudaStream_t s) {
  int64_t rows = (int64_t)BNH * T;
  softmax_causal_forward_lp_kernel<<<gpt_row_blocks(rows, GPT_ROWS_PER_BLOCK), GPT_ROWS_PER_BLOCK * WARP, 0, s>>>(
      att, scores, scale, (int)rows, T);
  return cudaGetLastError();
}

template <typename LP> cudaError_t gpt_k_softmax_causal_backward_lp(LP *dpre, const LP *att, const float *datt, float scale,
                                             int BNH, int T, cudaStream_t s) {
  int64_t rows = (int64_t)BNH * T;
  softmax_causal_backward_lp_kernel<<<gpt_row_blocks(rows, GPT_ROWS_PER_BLOCK), GPT_ROWS_PER_BLOCK * WARP, 0, s>>>(
      dpre, att, datt, scale, (int)rows, T);
  return cudaGetLastError();
}

/* ---- the two storage types ---- */

#define INSTANTIATE(LP)                                                                                       \
  template cudaError_t gpt_k_f32_to_lp<LP>(LP *, const float *, int64_t, cudaStream_t);                       \
  template cudaError_t gpt_k_lp_to_f32<LP>(float *, const LP *, int64_t, cudaStream_t);                       \
  template cudaError_t gpt_k_layernorm_forward_lp<LP>(LP *, float *, float *, const float *, const float *,   \
                                                      const float *, int, int, cudaStream_t);                  \
  template cudaError_t gpt_k_bias_add_lp<LP>(LP *, const LP *, int, int, cudaStream_t);                       \
  template cudaError_t gpt_k_bias_backward_lp<LP>(float *, const LP *, int, int, cudaStream_t);               \
  template cudaError_t gpt_k_gelu_forward_lp<LP>(LP *, const LP *, int64_t, cudaStream_t);                    \
  template cudaError_t gpt_k_gelu_backward_inplace_lp<LP>(LP *, const LP *, int64_t, cudaStream_t);           \
  template cudaError_t gpt_k_softmax_causal_forward_lp<LP>(LP *, const float *, float, int, int, cudaStream_t); \
  template cudaError_t gpt_k_softmax_causal_backward_lp<LP>(LP *, const LP *, const float *, float, int, int,  \
                                                            cudaStream_t);
INSTANTIATE(gpt_bf16)
INSTANTIATE(gpt_f16)
