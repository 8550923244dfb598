/* SPDX-License-Identifier: Apache-2.0 */
/* Element-wise, embedding, LayerNorm, bias and dtype kernels of the GPT
 * example. Row reductions use one warp per row; column reductions (bias and
 * LayerNorm parameter gradients) use a fixed tree per column so results do
 * not depend on scheduling. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "gpt_kernels.cuh"

#define WARP 32
#define GELU_K 0.7978845608028654f
#define LN_EPS 1e-5f

static __device__ __forceinline__ float warp_sum(float v) {
  for (int o = WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

static inline unsigned blocks_for(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

/* ---- embeddings ---- */

__global__ void embed_forward_kernel(float *out, const int *tokens, const float *wte, const float *wpe,
                                     int B, int T, int C) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (int64_t)B * T * C) return;
  int c = (int)(i % C);
  int64_t bt = i / C;
  int t = (int)(bt % T);
  out[i] = wte[(int64_t)tokens[bt] * C + c] + wpe[(int64_t)t * C + c];
}

/* block (u, channel tile): token tok[u]'s rows summed in ascending position */
__global__ void embed_backward_wte_kernel(float *dwte, const float *dout, const int *order, const int *tok,
                                          const int *seg, int C) {
  const int u = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float acc = 0.0f;
  for (int i = seg[u]; i < seg[u + 1]; i++) acc += dout[(int64_t)order[i] * C + c];
  dwte[(int64_t)tok[u] * C + c] += acc;
}

__global__ void embed_backward_wpe_kernel(float *dwpe, const float *dout, int B, int T, int C) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; /* (t, c) */
  if (i >= (int64_t)T * C) return;
  float acc = 0.0f;
  for (int b = 0; b < B; b++) acc += dout[(int64_t)b * T * C + i];
  dwpe[i] += acc;
}

cudaError_t gpt_k_embed_forward(float *out, const int *tokens, const float *wte, const float *wpe,
                                int B, int T, int C, cudaStream_t s) {
  int64_t n = (int64_t)B * T * C;
  embed_forward_kernel<<<blocks_for(n, 256), 256, 0, s>>>(out, tokens, wte, wpe, B, T, C);
  return cudaGetLastError();
}

cudaError_t gpt_k_embed_backward(float *dwte, float *dwpe, const float *dout, const int *order, const int *tok,
                                 const int *seg, int nuniq, int B, int T, int C, cudaStream_t s) {
  if (nuniq > 0)
    embed_backward_wte_kernel<<<dim3((unsigned)nuniq, blocks_for(C, 256)), 256, 0, s>>>(dwte, dout, order, tok, seg,
                                                                                        C);
  embed_backward_wpe_kernel<<<blocks_for((int64_t)T * C, 256), 256, 0, s>>>(dwpe, dout, B, T, C);
  return cudaGetLastError();
}

/* ---- LayerNorm ---- */

__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
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
  float *o = out + (int64_t)row * C;
  for (int c = lane; c < C; c += WARP) o[c] = (x[c] - m) * r * w[c] + b[c];
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

/* dinp per row; the two row means the parameter gradients do not need */
__global__ void layernorm_backward_inp_kernel(float *dinp, const float *dout, const float *inp,
                                              const float *w, const float *mean, const float *rstd,
                                              int N, int C) {
  int row = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  int lane = threadIdx.x % WARP;
  if (row >= N) return;
  const float *dy = dout + (int64_t)row * C, *x = inp + (int64_t)row * C;
  float m = mean[row], r = rstd[row];
  float sd = 0.0f, sdx = 0.0f;
  for (int c = lane; c < C; c += WARP) {
    float xh = (x[c] - m) * r, dn = w[c] * dy[c];
    sd += dn;
    sdx += dn * xh;
  }
  float md = warp_sum(sd) / C, mdx = warp_sum(sdx) / C;
  float *dx = dinp + (int64_t)row * C;
  for (int c = lane; c < C; c += WARP) {
    float xh = (x[c] - m) * r, dn = w[c] * dy[c];
    dx[c] += r * (dn - md - xh * mdx);
  }
}

/* Column sums over N rows: blockDim (32, 8): x picks the column, y strides
 * rows; a shared-memory tree over y. */
__global__ void layernorm_backward_params_kernel(float *dw, float *db, const float *dout,
                                                 const float *inp, const float *mean,
                                                 const float *rstd, int N, int C) {
  __shared__ float sw[8][WARP + 1], sb[8][WARP + 1];
  int c = blockIdx.x * WARP + threadIdx.x;
  float aw = 0.0f, ab = 0.0f;
  if (c < C) {
    for (int n = threadIdx.y; n < N; n += blockDim.y) {
      float dy = dout[(int64_t)n * C + c];
      aw += (inp[(int64_t)n * C + c] - mean[n]) * rstd[n] * dy;
      ab += dy;
    }
  }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int y = 1; y < (int)blockDim.y; y++) {
      aw += sw[y][threadIdx.x];
      ab += sb[y][threadIdx.x];
    }
    dw[c] += aw;
    db[c] += ab;
  }
}

cudaError_t gpt_k_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                    const float *w, const float *b, int N, int C, cudaStream_t s) {
  const int rows_per_block = 8;
  layernorm_forward_kernel<<<blocks_for(N, rows_per_block), rows_per_block * WARP, 0, s>>>(
      out, mean, rstd, inp, w, b, N, C);
  return cudaGetLastError();
}

cudaError_t gpt_k_layernorm_backward(float *dinp, float *dw, float *db,
                                     const float *dout, const float *inp, const float *w,
                                     const float *mean, const float *rstd, int N, int C,
                                     cudaStream_t s) {
  const int rows_per_block = 8;
  layernorm_backward_inp_kernel<<<blocks_for(N, rows_per_block), rows_per_block * WARP, 0, s>>>(
      dinp, dout, inp, w, mean, rstd, N, C);
  layernorm_backward_params_kernel<<<blocks_for(C, WARP), dim3(WARP, 8), 0, s>>>(dw, db, dout, inp,
                                                                              mean, rstd, N, C);
  return cudaGetLastError();
}

/* ---- bias ---- */

__global__ void bias_broadcast_kernel(float *out, const float *b, int N, int OC) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < (int64_t)N * OC) out[i] = b[i % OC];
}

__global__ void column_sum_add_kernel(float *db, const float *d, int N, int OC) {
  __shared__ float sh[8][WARP + 1];
  int c = blockIdx.x * WARP + threadIdx.x;
  float a = 0.0f;
  if (c < OC)
    for (int n = threadIdx.y; n < N; n += blockDim.y) a += d[(int64_t)n * OC + c];
  sh[threadIdx.y][threadIdx.x] = a;
  __syncthreads();
  if (threadIdx.y == 0 && c < OC) {
    for (int y = 1; y < (int)blockDim.y; y++) a += sh[y][threadIdx.x];
    db[c] += a;
  }
}

cudaError_t gpt_k_bias_broadcast(float *out, const float *b, int N, int OC, cudaStream_t s) {
  bias_broadcast_kernel<<<blocks_for((int64_t)N * OC, 256), 256, 0, s>>>(out, b, N, OC);
  return cudaGetLastError();
}

cudaError_t gpt_k_bias_backward(float *db, const float *d, int N, int OC, cudaStream_t s) {
  column_sum_add_kernel<<<blocks_for(OC, WARP), dim3(WARP, 8), 0, s>>>(db, d, N, OC);
  return cudaGetLastError();
}

/* ---- GELU, residual ---- */

__global__ void gelu_forward_kernel(float *out, const float *inp, int n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = inp[i];
  out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
}

__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, int n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = inp[i];
  float t = tanhf(GELU_K * (x + 0.044715f * x * x * x));
  float g = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
  dinp[i] = g * dout[i];
}

__global__ void residual_kernel(float *out, const float *a, const float *b, int n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

cudaError_t gpt_k_gelu_forward(float *out, const float *inp, int n, cudaStream_t s) {
  gelu_forward_kernel<<<blocks_for(n, 256), 256, 0, s>>>(out, inp, n);
  return cudaGetLastError();
}

cudaError_t gpt_k_gelu_backward(float *dinp, const float *inp, const float *dout, int n, cudaStream_t s) {
  gelu_backward_kernel<<<blocks_for(n, 256), 256, 0, s>>>(dinp, inp, dout, n);
  return cudaGetLastError();
}

cudaError_t gpt_k_residual_forward(float *out, const float *a, const float *b, int n, cudaStream_t s) {
  residual_kernel<<<blocks_for(n, 256), 256, 0, s>>>(out, a, b, n);
  return cudaGetLastError();
}

/* ---- dtype ---- */

template <typename T> __device__ __forceinline__ float load_f(T v);
template <> __device__ __forceinline__ float load_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float load_f<__half>(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T store_f(float v);
template <> __device__ __forceinline__ __nv_bfloat16 store_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half store_f<__half>(float v) { return __float2half_rn(v); }

template <typename T> __global__ void to_f32_kernel(float *dst, const T *src, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = load_f<T>(src[i]);
}

template <typename T> __global__ void add_into_kernel(T *dst, const float *src, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = store_f<T>(load_f<T>(dst[i]) + src[i]);
}

__global__ void add_into_f32_kernel(float *dst, const float *src, int64_t n) {
  int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] += src[i];
}

cudaError_t gpt_k_to_f32(float *dst, const void *src, shardrt_dtype dt, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  switch (dt) {
  case SHARDRT_F32:
    return cudaMemcpyAsync(dst, src, (size_t)n * sizeof(float), cudaMemcpyDeviceToDevice, s);
  case SHARDRT_BF16:
    to_f32_kernel<<<blocks_for(n, 256), 256, 0, s>>>(dst, (const __nv_bfloat16 *)src, n);
    break;
  case SHARDRT_F16:
    to_f32_kernel<<<blocks_for(n, 256), 256, 0, s>>>(dst, (const __half *)src, n);
    break;
  default:
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t gpt_k_add_f32_into(void *dst, shardrt_dtype dt, const float *src, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  switch (dt) {
  case SHARDRT_F32:
    add_into_f32_kernel<<<blocks_for(n, 256), 256, 0, s>>>((float *)dst, src, n);
    break;
  case SHARDRT_BF16:
    add_into_kernel<<<blocks_for(n, 256), 256, 0, s>>>((__nv_bfloat16 *)dst, src, n);
    break;
  case SHARDRT_F16:
    add_into_kernel<<<blocks_for(n, 256), 256, 0, s>>>((__half *)dst, src, n);
    break;
  default:
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}
