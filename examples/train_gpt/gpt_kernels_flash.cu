/* SPDX-License-Identifier: Apache-2.0 */
/* Flash-style causal attention for the bf16 and fp16 paths (opt-in:
 * gpt_cuda_options.flash_attention): scores never leave shared memory.
 * 16-bit tensor cores through WMMA (16x16x16, fp32 accumulation; one
 * template over the storage type LP, instantiated for bf16 and fp16); online
 * softmax in fp32 (FlashAttention-2's forward); the backward recomputes the
 * probabilities from the saved log-sum-exp, one block per key tile, dK and
 * dV accumulated in registers, dQ in fp32 through atomics.
 *
 * Layout: qkv (B, T, 3C) LP with head h's q, k, v at columns h*hs,
 * C + h*hs, 2C + h*hs (gpt_cpu_ops.h), out (B, T, C). Head sizes 16, 32,
 * 64 and 128 (gpt_flash_supported); tiles of 64 queries x 64 keys, 4 warps
 * each owning 16 rows. */
#include <mma.h>

#include <math.h>

#include "gpt_kernels_lp.cuh"
#include "gpt_launch.h"

using namespace nvcuda;

#define FL_TILE 64
#define FL_WARPS 4
#define WARP 32

/* WMMA fragments of the storage type (bf16 or fp16, both 16x16x16 with an
 * fp32 accumulator) */
template <typename LP> using frag_a_row = wmma::fragment<wmma::matrix_a, 16, 16, 16, LP, wmma::row_major>;
template <typename LP> using frag_a_col = wmma::fragment<wmma::matrix_a, 16, 16, 16, LP, wmma::col_major>;
template <typename LP> using frag_b_row = wmma::fragment<wmma::matrix_b, 16, 16, 16, LP, wmma::row_major>;
template <typename LP> using frag_b_col = wmma::fragment<wmma::matrix_b, 16, 16, 16, LP, wmma::col_major>;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> frag_acc;

/* rows [r0, r0 + 64) of one head's q/k/v/out columns into shared memory
 * (HS 16-bit values per row, 16-byte vectors; rows past T are zero) */
template <int HS, typename LP>
static __device__ void load_tile(LP *dst, const LP *src, int64_t row_stride, int r0, int T) {
  constexpr int VPR = HS / 8; /* 16-byte vectors per row */
  for (int i = threadIdx.x; i < FL_TILE * VPR; i += blockDim.x) {
    int r = i / VPR, v = i % VPR;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r0 + r < T) val = *(const uint4 *)(src + (int64_t)(r0 + r) * row_stride + v * 8);
    *(uint4 *)(dst + r * HS + v * 8) = val;
  }
}

/* ---- forward ---- */

template <int HS, typename LP> struct fwd_smem {
  LP q[FL_TILE * HS], k[FL_TILE * HS], v[FL_TILE * HS];
  float s[FL_WARPS][16 * (HS > FL_TILE ? HS : FL_TILE)]; /* scores, then the P V tile */
  LP p[FL_WARPS][16 * FL_TILE];
  float o[FL_WARPS][16 * HS];
  float alpha[FL_WARPS][16];
};

template <int HS, typename LP>
__global__ void __launch_bounds__(FL_WARPS *WARP)
    flash_forward_kernel(LP *out, float *lse, const LP *qkv, int T, int C, int NH, float scale) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  fwd_smem<HS, LP> &sm = *reinterpret_cast<fwd_smem<HS, LP> *>(smem_raw);
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int q0 = blockIdx.x * FL_TILE, warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
  const int64_t C3 = 3 * (int64_t)C;
  const LP *base = qkv + (int64_t)b * T * C3;
  load_tile<HS, LP>(sm.q, base + h * HS, C3, q0, T);
  for (int i = lane; i < 16 * HS; i += WARP) sm.o[warp][i] = 0.0f;
  /* two lanes per row: row r = lane / 2, columns half*32 .. +31 */
  const int r = lane / 2, half = lane % 2, qi = q0 + warp * 16 + r;
  float m_run = -INFINITY, l_run = 0.0f;
  const int last_key = min(q0 + FL_TILE, T) - 1;
  for (int k0 = 0; k0 <= last_key; k0 += FL_TILE) {
    __syncthreads(); /* the previous tile's k/v are no longer read */
    load_tile<HS, LP>(sm.k, base + C + h * HS, C3, k0, T);
    load_tile<HS, LP>(sm.v, base + 2 * C + h * HS, C3, k0, T);
    __syncthreads();
    /* S_w(16 x 64) = Q_w K^T */
    #pragma unroll
    for (int n = 0; n < FL_TILE / 16; n++) {
      frag_acc acc;
      wmma::fill_fragment(acc, 0.0f);
      #pragma unroll
      for (int kk = 0; kk < HS / 16; kk++) {
        frag_a_row<LP> a;
        frag_b_col<LP> bk;
        wmma::load_matrix_sync(a, sm.q + warp * 16 * HS + kk * 16, HS);
        wmma::load_matrix_sync(bk, sm.k + n * 16 * HS + kk * 16, HS);
        wmma::mma_sync(acc, a, bk, acc);
      }
      wmma::store_matrix_sync(sm.s[warp] + n * 16, acc, FL_TILE, wmma::mem_row_major);
    }
    __syncwarp();
    /* online softmax over this tile's keys for row qi */
    const float *srow = sm.s[warp] + r * FL_TILE;
    float mx = -INFINITY;
    for (int j = half * 32; j < half * 32 + 32; j++) {
      int kj = k0 + j;
      if (kj <= qi && kj < T) mx = fmaxf(mx, srow[j] * scale);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const bool live = qi < T; /* rows past T: nothing to attend, kept finite */
    const float m_new = live ? fmaxf(m_run, mx) : 0.0f;
    float sum = 0.0f;
    LP *prow = sm.p[warp] + r * FL_TILE;
    for (int j = half * 32; j < half * 32 + 32; j++) {
      int kj = k0 + j;
      float e = (live && kj <= qi && kj < T) ? __expf(srow[j] * scale - m_new) : 0.0f;
      LP eb = gpt_st<LP>(e);
      prow[j] = eb;
      sum += gpt_ld(eb); /* the normaliser sums what P V multiplies */
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    const float alpha = live ? __expf(m_run - m_new) : 1.0f; /* m_run = -inf first: 0 */
    l_run = l_run * alpha + sum;
    m_run = m_new;
    if (half == 0) sm.alpha[warp][r] = alpha;
    __syncwarp();
    /* tmp(16 x HS) = P_w V, into the score buffer; O = O * alpha + tmp */
    #pragma unroll
    for (int n = 0; n < HS / 16; n++) {
      frag_acc acc;
      wmma::fill_fragment(acc, 0.0f);
      #pragma unroll
      for (int kk = 0; kk < FL_TILE / 16; kk++) {
        frag_a_row<LP> a;
        frag_b_row<LP> bv;
        wmma::load_matrix_sync(a, sm.p[warp] + kk * 16, FL_TILE);
        wmma::load_matrix_sync(bv, sm.v + kk * 16 * HS + n * 16, HS);
        wmma::mma_sync(acc, a, bv, acc);
      }
      wmma::store_matrix_sync(sm.s[warp] + n * 16, acc, HS, wmma::mem_row_major);
    }
    __syncwarp();
    for (int i = lane; i < 16 * HS; i += WARP) sm.o[warp][i] = sm.o[warp][i] * sm.alpha[warp][i / HS] + sm.s[warp][i];
    __syncwarp();
  }
  /* out = O / l, lse = m + log l */
  if (qi < T) {
    const float inv = 1.0f / l_run;
    LP *orow = out + ((int64_t)b * T + qi) * C + h * HS;
    for (int c = half; c < HS; c += 2) orow[c] = gpt_st<LP>(sm.o[warp][r * HS + c] * inv);
    if (half == 0) lse[(int64_t)bh * T + qi] = m_run + logf(l_run);
  }
}

/* ---- backward ---- */

/* D[bh, t] = sum_c dout[t, c] * out[t, c] for head h (FlashAttention-2's
 * rowsum(dO o O)), one warp per row */
template <typename LP> __global__ void flash_backward_dot_kernel(float *D, const LP *out, const LP *dout, int64_t rows, int T,
                                          int C, int NH, int HS) {
  const int64_t row = (int64_t)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP; /* (b*NH + h)*T + t */
  const int lane = threadIdx.x % WARP;
  if (row >= rows) return;
  const int bh = (int)(row / T), t = (int)(row % T), b = bh / NH, h = bh % NH;
  const int64_t off = ((int64_t)b * T + t) * C + h * HS;
  float s = 0.0f;
  for (int c = lane; c < HS; c += WARP) s += gpt_ld(out[off + c]) * gpt_ld(dout[off + c]);
  for (int o = WARP / 2; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) D[row] = s;
}

template <int HS, typename LP> struct bwd_smem {
  LP k[FL_TILE * HS], v[FL_TILE * HS], q[FL_TILE * HS], dout[FL_TILE * HS];
  float lse[FL_TILE], D[FL_TILE];
  float s[FL_WARPS][16 * FL_TILE]; /* S^T, then dP^T */
  LP p[FL_WARPS][16 * FL_TILE], ds[FL_WARPS][16 * FL_TILE];
  float dq[FL_TILE * HS];          /* this q tile's dQ, summed over the warps */
  float scratch[FL_WARPS][16 * 16];
};

template <int HS, typename LP>
__global__ void __launch_bounds__(FL_WARPS *WARP)
    flash_backward_kernel(float *dq_acc, LP *dqkv, const LP *qkv, const LP *dout, const float *lse,
                          const float *D, int T, int C, int NH, float scale) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bwd_smem<HS, LP> &sm = *reinterpret_cast<bwd_smem<HS, LP> *>(smem_raw);
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH;
  const int k0 = blockIdx.x * FL_TILE, warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
  const int64_t C3 = 3 * (int64_t)C;
  const LP *base = qkv + (int64_t)b * T * C3;
  load_tile<HS, LP>(sm.k, base + C + h * HS, C3, k0, T);
  load_tile<HS, LP>(sm.v, base + 2 * C + h * HS, C3, k0, T);
  frag_acc dk[HS / 16], dv[HS / 16];
  #pragma unroll
  for (int n = 0; n < HS / 16; n++) wmma::fill_fragment(dk[n], 0.0f), wmma::fill_fragment(dv[n], 0.0f);
  const int r = lane / 2, half = lane % 2, kj = k0 + warp * 16 + r; /* this lane's key row */
  for (int q0 = (k0 / FL_TILE) * FL_TILE; q0 < T; q0 += FL_TILE) {
    __syncthreads(); /* previous q tile fully used (dq flushed) */
    load_tile<HS, LP>(sm.q, base + h * HS, C3, q0, T);
    load_tile<HS, LP>(sm.dout, dout + (int64_t)b * T * C + h * HS, C, q0, T);
    for (int i = threadIdx.x; i < FL_TILE; i += blockDim.x) {
      bool in = q0 + i < T;
      sm.lse[i] = in ? lse[(int64_t)bh * T + q0 + i] : 0.0f;
      sm.D[i] = in ? D[(int64_t)bh * T + q0 + i] : 0.0f;
    }
    for (int i = threadIdx.x; i < FL_TILE * HS; i += blockDim.x) sm.dq[i] = 0.0f;
    __syncthreads();
    /* S^T_w(16 keys x 64 queries) = K_w Q^T */
    #pragma unroll
    for (int n = 0; n < FL_TILE / 16; n++) {
      frag_acc acc;
      wmma::fill_fragment(acc, 0.0f);
      #pragma unroll
      for (int kk = 0; kk < HS / 16; kk++) {
        frag_a_row<LP> a;
        frag_b_col<LP> bq;
        wmma::load_matrix_sync(a, sm.k + warp * 16 * HS + kk * 16, HS);
        wmma::load_matrix_sync(bq, sm.q + n * 16 * HS + kk * 16, HS);
        wmma::mma_sync(acc, a, bq, acc);
      }
      wmma::store_matrix_sync(sm.s[warp] + n * 16, acc, FL_TILE, wmma::mem_row_major);
    }
    __syncwarp();
    /* P^T = exp(scale S^T - lse[q]) where q >= k (both < T), in LP */
    for (int j = half * 32; j < half * 32 + 32; j++) {
      int qj = q0 + j;
      float pv = (kj < T && qj < T && qj >= kj) ? __expf(sm.s[warp][r * FL_TILE + j] * scale - sm.lse[j]) : 0.0f;
      sm.p[warp][r * FL_TILE + j] = gpt_st<LP>(pv);
    }
    __syncwarp();
    /* dV_w += P^T_w dO;  dP^T_w = V_w dO^T (into s) */
    #pragma unroll
    for (int n = 0; n < HS / 16; n++)
      #pragma unroll
      for (int kk = 0; kk < FL_TILE / 16; kk++) {
        frag_a_row<LP> a;
        frag_b_row<LP> bo;
        wmma::load_matrix_sync(a, sm.p[warp] + kk * 16, FL_TILE);
        wmma::load_matrix_sync(bo, sm.dout + kk * 16 * HS + n * 16, HS);
        wmma::mma_sync(dv[n], a, bo, dv[n]);
      }
    #pragma unroll
    for (int n = 0; n < FL_TILE / 16; n++) {
      frag_acc acc;
      wmma::fill_fragment(acc, 0.0f);
      #pragma unroll
      for (int kk = 0; kk < HS / 16; kk++) {
        frag_a_row<LP> a;
        frag_b_col<LP> bo;
        wmma::load_matrix_sync(a, sm.v + warp * 16 * HS + kk * 16, HS);
        wmma::load_matrix_sync(bo, sm.dout + n * 16 * HS + kk * 16, HS);
        wmma::mma_sync(acc, a, bo, acc);
      }
      wmma::store_matrix_sync(sm.s[warp] + n * 16, acc, FL_TILE, wmma::mem_row_major);
    }
    __syncwarp();
    /* dS^T = scale * P^T (dP^T - D[q]) in LP */
    for (int j = half * 32; j < half * 32 + 32; j++) {
      float pv = gpt_ld(sm.p[warp][r * FL_TILE + j]);
      float d = scale * pv * (sm.s[warp][r * FL_TILE + j] - sm.D[j]);
      sm.ds[warp][r * FL_TILE + j] = gpt_st<LP>(d);
    }
    __syncwarp();
    /* dK_w += dS^T_w Q */
    #pragma unroll
    for (int n = 0; n < HS / 16; n++)
      #pragma unroll
      for (int kk = 0; kk < FL_TILE / 16; kk++) {
        frag_a_row<LP> a;
        frag_b_row<LP> bq;
        wmma::load_matrix_sync(a, sm.ds[warp] + kk * 16, FL_TILE);
        wmma::load_matrix_sync(bq, sm.q + kk * 16 * HS + n * 16, HS);
        wmma::mma_sync(dk[n], a, bq, dk[n]);
      }
    /* dQ(64 x HS) += dS(64 x 16) K_w(16 x HS): dS is dS^T_w read column-major */
    #pragma unroll
    for (int mrow = 0; mrow < FL_TILE / 16; mrow++)
      #pragma unroll
      for (int n = 0; n < HS / 16; n++) {
        frag_acc acc;
        wmma::fill_fragment(acc, 0.0f);
        frag_a_col<LP> a;
        frag_b_row<LP> bk;
        wmma::load_matrix_sync(a, sm.ds[warp] + mrow * 16, FL_TILE);
        wmma::load_matrix_sync(bk, sm.k + warp * 16 * HS + n * 16, HS);
        wmma::mma_sync(acc, a, bk, acc);
        wmma::store_matrix_sync(sm.scratch[warp], acc, 16, wmma::mem_row_major);
        __syncwarp();
        for (int i = lane; i < 256; i += WARP)
          atomicAdd(&sm.dq[(mrow * 16 + i / 16) * HS + n * 16 + i % 16], sm.scratch[warp][i]);
        __syncwarp();
      }
    __syncthreads();
    for (int i = threadIdx.x; i < FL_TILE * HS; i += blockDim.x) {
      int qr = q0 + i / HS;
      if (qr < T) atomicAdd(&dq_acc[((int64_t)b * T + qr) * C + h * HS + i % HS], sm.dq[i]);
    }
  }
  /* dK, dV of this warp's 16 keys to dqkv (LP) */
  #pragma unroll
  for (int which = 0; which < 2; which++)
    #pragma unroll
    for (int n = 0; n < HS / 16; n++) {
      wmma::store_matrix_sync(sm.scratch[warp], which ? dv[n] : dk[n], 16, wmma::mem_row_major);
      __syncwarp();
      for (int i = lane; i < 256; i += WARP) {
        int key = k0 + warp * 16 + i / 16;
        if (key < T)
          dqkv[((int64_t)b * T + key) * C3 + (which ? 2 : 1) * C + h * HS + n * 16 + i % 16] =
              gpt_st<LP>(sm.scratch[warp][i]);
      }
      __syncwarp();
    }
}

/* dqkv's q columns = LP(dq_acc) */
template <typename LP> __global__ void flash_dq_store_kernel(LP *dqkv, const float *dq_acc, int64_t BT, int C) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < BT * C; i += (int64_t)gridDim.x * blockDim.x)
    dqkv[(i / C) * 3 * C + i % C] = gpt_st<LP>(dq_acc[i]);
}

/* ---- launchers ---- */

template <int HS, typename LP> static cudaError_t fwd_launch(LP *out, float *lse, const LP *qkv, int B, int T, int C,
                                                int NH, float scale, cudaStream_t s) {
  const size_t bytes = sizeof(fwd_smem<HS, LP>);
  cudaError_t e = cudaFuncSetAttribute(flash_forward_kernel<HS, LP>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
  if (e != cudaSuccess) return e;
  dim3 grid(gpt_row_blocks(T, FL_TILE), (unsigned)(B * NH));
  flash_forward_kernel<HS, LP><<<grid, FL_WARPS * WARP, bytes, s>>>(out, lse, qkv, T, C, NH, scale);
  return cudaGetLastError();
}

template <int HS, typename LP>
static cudaError_t bwd_launch(LP *dqkv, float *dq_acc, float *D, const LP *qkv, const LP *out,
                              const LP *dout, const float *lse, int B, int T, int C, int NH, float scale,
                              cudaStream_t s) {
  const size_t bytes = sizeof(bwd_smem<HS, LP>);
  cudaError_t e = cudaFuncSetAttribute(flash_backward_kernel<HS, LP>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
  if (e != cudaSuccess) return e;
  const int64_t rows = (int64_t)B * NH * T;
  if ((e = cudaMemsetAsync(dq_acc, 0, (size_t)B * T * C * sizeof(float), s)) != cudaSuccess) return e;
  flash_backward_dot_kernel<<<gpt_row_blocks(rows, GPT_ROWS_PER_BLOCK), GPT_ROWS_PER_BLOCK * WARP, 0, s>>>(
      D, out, dout, rows, T, C, NH, HS);
  dim3 grid(gpt_row_blocks(T, FL_TILE), (unsigned)(B * NH));
  flash_backward_kernel<HS, LP><<<grid, FL_WARPS * WARP, bytes, s>>>(dq_acc, dqkv, qkv, dout, lse, D, T, C, NH, scale);
  flash_dq_store_kernel<<<gpt_ew_blocks((int64_t)B * T * C), GPT_EW_THREADS, 0, s>>>(dqkv, dq_acc, (int64_t)B * T, C);
  return cudaGetLastError();
}

int gpt_flash_supported(int hs, int C) { return (hs == 16 || hs == 32 || hs == 64 || hs == 128) && C % 8 == 0; }

template <typename LP> cudaError_t gpt_k_flash_forward(LP *out, float *lse, const LP *qkv, int B, int T, int C, int NH,
                                cudaStream_t s) {
  const int hs = C / NH;
  const float scale = 1.0f / sqrtf((float)hs);
  switch (hs) {
  case 16: return fwd_launch<16, LP>(out, lse, qkv, B, T, C, NH, scale, s);
  case 32: return fwd_launch<32, LP>(out, lse, qkv, B, T, C, NH, scale, s);
  case 64: return fwd_launch<64, LP>(out, lse, qkv, B, T, C, NH, scale, s);
  case 128: return fwd_launch<128, LP>(out, lse, qkv, B, T, C, NH, scale, s);
  default: return cudaErrorInvalidValue;
  }
}

template <typename LP> cudaError_t gpt_k_flash_backward(LP *dqkv, float *dq_acc, float *D, const LP *qkv, const LP *out,
                                 const LP *dout, const float *lse, int B, int T, int C, int NH, cudaStream_t s) {
  const int hs = C / NH;
  const float scale = 1.0f / sqrtf((float)hs);
  switch (hs) {
  case 16: return bwd_launch<16, LP>(dqkv, dq_acc, D, qkv, out, dout, lse, B, T, C, NH, scale, s);
  case 32: return bwd_launch<32, LP>(dqkv, dq_acc, D, qkv, out, dout, lse, B, T, C, NH, scale, s);
  case 64: return bwd_launch<64, LP>(dqkv, dq_acc, D, qkv, out, dout, lse, B, T, C, NH, scale, s);
  case 128: return bwd_launch<128, LP>(dqkv, dq_acc, D, qkv, out, dout, lse, B, T, C, NH, scale, s);
  default: return cudaErrorInvalidValue;
  }
}

template cudaError_t gpt_k_flash_forward<gpt_bf16>(gpt_bf16 *, float *, const gpt_bf16 *, int, int, int, int,
                                                   cudaStream_t);
template cudaError_t gpt_k_flash_forward<gpt_f16>(gpt_f16 *, float *, const gpt_f16 *, int, int, int, int, cudaStream_t);
template cudaError_t gpt_k_flash_backward<gpt_bf16>(gpt_bf16 *, float *, float *, const gpt_bf16 *, const gpt_bf16 *,
                                                    const gpt_bf16 *, const float *, int, int, int, int, cudaStream_t);
template cudaError_t gpt_k_flash_backward<gpt_f16>(gpt_f16 *, float *, float *, const gpt_f16 *, const gpt_f16 *,
                                                   const gpt_f16 *, const float *, int, int, int, int, cudaStream_t);
