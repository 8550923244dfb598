/* SPDX-License-Identifier: Apache-2.0 */
/* The fused classifier of the bf16 and fp16 paths (templates over the
 * storage type LP): softmax + cross-entropy over the
 * padded vocabulary, one block per row. The forward keeps only each row's
 * log-sum-exp; the backward recomputes the probabilities from it while
 * writing the logits' gradient over the logits, so the (N, Vp) tensor
 * exists once, in LP, and the probabilities never. */
#include <float.h>

#include "gpt_kernels_lp.cuh"

#define WARP 32
#define XENT_THREADS 256

static __device__ __forceinline__ float warp_sum(float v) {
  for (int o = WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
static __device__ __forceinline__ float warp_max(float v) {
  for (int o = WARP / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

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

template <typename LP> __global__ void classifier_forward_lp_kernel(float *lse, float *losses, const LP *logits, const int *targets,
                                             int V, int Vp) {
  const int64_t row = blockIdx.x;
  const LP *x = logits + row * Vp;
  float mx = -FLT_MAX;
  for (int v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, gpt_ld(x[v]));
  mx = block_reduce(mx, true);
  float sum = 0.0f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) sum += expf(gpt_ld(x[v]) - mx);
  sum = block_reduce(sum, false);
  if (threadIdx.x == 0) {
    float l = logf(sum) + mx;
    lse[row] = l;
    losses[row] = l - gpt_ld(x[targets[row]]);
  }
}

template <typename LP> __global__ void classifier_backward_lp_kernel(LP *logits, const float *lse, const int *targets, float dloss,
                                              int V, int Vp) {
  const int64_t row = blockIdx.x;
  LP *x = logits + row * Vp;
  const float l = lse[row];
  const int t = targets[row];
  for (int v = threadIdx.x; v < Vp; v += blockDim.x) {
    float d = 0.0f; /* padded columns: no gradient, so the padded head rows stay 0 */
    if (v < V) d = (expf(gpt_ld(x[v]) - l) - (v == t ? 1.0f : 0.0f)) * dloss;
    x[v] = gpt_st<LP>(d);
  }
}

template <typename LP> cudaError_t gpt_k_classifier_forward_lp(float *lse, float *losses, const LP *logits, const int *targets, int N,
                                        int V, int Vp, cudaStream_t s) {
  classifier_forward_lp_kernel<<<N, XENT_THREADS, 0, s>>>(lse, losses, logits, targets, V, Vp);
  return cudaGetLastError();
}

template <typename LP> cudaError_t gpt_k_classifier_backward_lp(LP *logits, const float *lse, const int *targets, float dloss, int N,
                                         int V, int Vp, cudaStream_t s) {
  classifier_backward_lp_kernel<<<N, XENT_THREADS, 0, s>>>(logits, lse, targets, dloss, V, Vp);
  return cudaGetLastError();
}

template cudaError_t gpt_k_classifier_forward_lp<gpt_bf16>(float *, float *, const gpt_bf16 *, const int *, int, int,
                                                           int, cudaStream_t);
template cudaError_t gpt_k_classifier_backward_lp<gpt_bf16>(gpt_bf16 *, const float *, const int *, float, int, int,
                                                            int, cudaStream_t);
template cudaError_t gpt_k_classifier_forward_lp<gpt_f16>(float *, float *, const gpt_f16 *, const int *, int, int, int,
                                                          cudaStream_t);
template cudaError_t gpt_k_classifier_backward_lp<gpt_f16>(gpt_f16 *, const float *, const int *, float, int, int, int,
                                                           cudaStream_t);
