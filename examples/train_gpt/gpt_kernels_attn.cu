/* SPDX-License-Identifier: Apache-2.0 */
/* Row-softmax kernels of the GPT example: the causal attention softmax and
 * the fused softmax + cross-entropy of the LM head. One warp per row; rows
 * are short (T) for attention, so a block holds several; the vocabulary row
 * is long (up to 50257), so cross-entropy gives each row a whole block. */
#include <float.h>

#include "gpt_kernels.cuh"

#define WARP 32

static __device__ __forceinline__ float warp_sum(float v) {
  for (int o = WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

static __device__ __forceinline__ float warp_max(float v) {
  for (int o = WARP / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

static inline unsigned blocks_for(int64_t n, int per) { return (unsigned)((n + per - 1) / per); }

/* row r of all BNH*T rows: i = r % T is the query position */
__global__ void softmax_causal_forward_kernel(float *att, float scale, int rows, int T) {
  int r = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  int lane = threadIdx.x % WARP;
  if (r >= rows) return;
  int i = r % T;
  float *row = att + (int64_t)r * T;
  float mx = -FLT_MAX;
  for (int j = lane; j <= i; j += WARP) mx = fmaxf(mx, row[j] * scale);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int j = lane; j <= i; j += WARP) {
    float e = __expf(row[j] * scale - mx);
    row[j] = e;
    sum += e;
  }
  float inv = 1.0f / warp_sum(sum);
  for (int j = lane; j < T; j += WARP) row[j] = j <= i ? row[j] * inv : 0.0f;
}

__global__ void softmax_causal_backward_kernel(float *dpre, const float *att, const float *datt,
                                               float scale, int rows, int T) {
  int r = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
  int lane = threadIdx.x % WARP;
  if (r >= rows) return;
  int i = r % T;
  const float *a = att + (int64_t)r * T, *da = datt + (int64_t)r * T;
  float dot = 0.0f;
  for (int j = lane; j <= i; j += WARP) dot += a[j] * da[j];
  dot = warp_sum(dot);
  float *o = dpre + (int64_t)r * T;
  for (int j = lane; j < T; j += WARP) o[j] = j <= i ? scale * a[j] * (da[j] - dot) : 0.0f;
}

cudaError_t gpt_k_softmax_causal_forward(float *att, float scale, int BNH, int T, cudaStream_t s) {
  int rows = BNH * T, per = 8;
  softmax_causal_forward_kernel<<<blocks_for(rows, per), per * WARP, 0, s>>>(att, scale, rows, T);
  return cudaGetLastError();
}

cudaError_t gpt_k_softmax_causal_backward(float *dpre, const float *att, const float *datt,
                                          float scale, int BNH, int T, cudaStream_t s) {
  int rows = BNH * T, per = 8;
  softmax_causal_backward_kernel<<<blocks_for(rows, per), per * WARP, 0, s>>>(dpre, att, datt, scale,
                                                                              rows, T);
  return cudaGetLastError();
}

/* ---- fused softmax + cross-entropy, one block (256 threads) per row ---- */

#define XENT_THREADS 256

static __device__ float block_reduce(float v, bool is_max) {
  __shared__ float sh[XENT_THREADS / WARP];
  int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
  v = is_max ? warp_max(v) : warp_sum(v);
  if (lane == 0) sh[w] = v;
  __syncthreads();
  float r = lane < XENT_THREADS / WARP ? sh[lane] : (is_max ? -FLT_MAX : 0.0f);
  r = is_max ? warp_max(r) : warp_sum(r);
  __syncthreads(); /* sh is reused by the next reduction */
  return r;
}

__global__ void crossentropy_forward_kernel(float *probs, float *losses, const int *targets, int V, int Vp) {
  int64_t row = blockIdx.x;
  float *x = probs + row * Vp;
  /* read before the max reduction: its barriers order this read before any
   * thread's exp loop overwrites the row */
  const float target_logit = x[targets[row]];
  float mx = -FLT_MAX;
  for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, x[v]);
  mx = block_reduce(mx, true);
  float sum = 0.0f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    float e = expf(x[v] - mx);
    x[v] = e;
    sum += e;
  }
  sum = block_reduce(sum, false);
  float inv = 1.0f / sum;
  for (int v = threadIdx.x; v < Vp; v += blockDim.x) x[v] = v < V ? x[v] * inv : 0.0f;
  if (threadIdx.x == 0) losses[row] = logf(sum) + mx - target_logit;
}

__global__ void crossentropy_backward_kernel(float *probs, const int *targets, float dloss, int V, int Vp) {
  int64_t row = blockIdx.x;
  float *x = probs + row * Vp;
  int t = targets[row];
  for (int v = threadIdx.x; v < Vp; v += blockDim.x) x[v] = v < V ? (x[v] - (v == t ? 1.0f : 0.0f)) * dloss : 0.0f;
}

cudaError_t gpt_k_crossentropy_forward(float *probs, float *losses, const int *targets, int N, int V, int Vp,
                                       cudaStream_t s) {
  crossentropy_forward_kernel<<<N, XENT_THREADS, 0, s>>>(probs, losses, targets, V, Vp);
  return cudaGetLastError();
}

cudaError_t gpt_k_crossentropy_backward(float *probs, const int *targets, float dloss, int N, int V, int Vp,
                                        cudaStream_t s) {
  crossentropy_backward_kernel<<<N, XENT_THREADS, 0, s>>>(probs, targets, dloss, V, Vp);
  return cudaGetLastError();
}
