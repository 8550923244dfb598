/* SPDX-License-Identifier: Apache-2.0 */
/* GPT-2 forward and backward on one GPU: the same stages and layouts as
 * gpt_cpu.h, over device fp32 arrays, with cuBLAS for the matrix products
 * and the kernels of gpt_kernels.cuh. Everything runs on the stream given at
 * init (the runtime's shardrt_cuda_stream(ctx) in the trainer); only
 * gpt_cuda_loss_sum waits for the GPU (gpt_cuda_set_batch copies through
 * pinned memory and waits only for the previous batch's copy).
 * Functions return 0, or -1 with a message in gpt_cuda_error(). */
#ifndef GPT_CUDA_H
#define GPT_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpt_model.h"
#include "shardrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpt_cuda gpt_cuda;

/* Returns the number of usable GPUs (0 when the driver or device is absent). */
int gpt_cuda_device_count(void);

/* How the GPU computes. compute = SHARDRT_F32: every tensor fp32 (the CPU
 * path's twin), TF32 tensor cores only when tf32 is set (off by default, as
 * PyTorch's matmul default). compute = SHARDRT_BF16 or SHARDRT_F16: matrix
 * products on 16-bit tensor cores with fp32 accumulation through cuBLASLt
 * (bias and GELU fused in their epilogues), 16-bit storage for what feeds
 * a product, fp32 residual stream, LayerNorm statistics, softmax sums and
 * parameter gradients. fp16 is bf16's code with the other 16-bit type: it
 * relies on the runtime's loss scaling (the scale is in the dloss passed
 * to gpt_cuda_head_backward; an fp16 overflow shows as a non-finite
 * gradient, which the dynamic scaler skips). On every path the vocabulary
 * is padded to gpt_padded_vocab() logits columns, the padding masked out
 * of the loss and given no gradient; parameters (and so checkpoints) keep
 * the real vocabulary. Parameters and gradients cross this API in fp32. */
typedef struct gpt_cuda_options {
  shardrt_dtype compute; /* SHARDRT_F32 (default), SHARDRT_BF16 or SHARDRT_F16 */
  bool tf32;             /* fp32 compute only */
  bool no_lt_epilogues;  /* bf16/fp16: plain products + separate bias/GELU kernels (tests compare both) */
  bool recompute;        /* activation checkpointing, each block's forward re-run in its backward (every
                            dtype; the same bits as without it) */
  bool flash_attention;  /* bf16/fp16: fused flash-style attention (no T x T scores in memory); head size
                            16/32/64/128 */
} gpt_cuda_options;
void gpt_cuda_options_default(gpt_cuda_options *o);

/* Allocates device activations for B sequences of T <= seq_len tokens and a
 * cuBLAS handle bound to `stream` (a cudaStream_t; NULL = default stream).
 * gpt_cuda_create uses the default options. */
int gpt_cuda_create(gpt_cuda **out, const gpt_config *cfg, int B, int T, void *stream, char *err,
                    size_t errlen);
int gpt_cuda_create_ex(gpt_cuda **out, const gpt_config *cfg, int B, int T, void *stream,
                       const gpt_cuda_options *opt, char *err, size_t errlen);
/* Products done by cuBLASLt with a fused epilogue, and those that fell back
 * (no algorithm for the shape or alignment), since create. */
void gpt_cuda_lt_counts(const gpt_cuda *m, long *fused, long *fallback);
/* The last product that fell back, as "MxNxK ta tb epilogue out ld" ("" if none). */
const char *gpt_cuda_lt_last_fallback(const gpt_cuda *m);
void gpt_cuda_destroy(gpt_cuda *m); /* NULL-safe */
const char *gpt_cuda_error(const gpt_cuda *m);

/* Copies the host (B,T) token and target ids to the device after checking
 * they are inside the vocabulary, with the embedding backward's plan (the
 * positions grouped by token, so the wte gradient is summed in a fixed
 * order, without atomics: the same batch gives the same bits). */
int gpt_cuda_set_batch(gpt_cuda *m, const int *tokens, const int *targets);

/* p / g: arrays (indexed by parameter id) of DEVICE fp32 pointers. */
int gpt_cuda_embed_forward(gpt_cuda *m, const float *const *p);
int gpt_cuda_block_forward(gpt_cuda *m, const float *const *p, int layer);
int gpt_cuda_head_forward(gpt_cuda *m, const float *const *p);
/* Returns the sum of the B*T token losses of the last head forward,
 * waiting for that forward only (not for work enqueued after it): call it
 * after enqueueing the backward so the GPU never idles on the host. */
int gpt_cuda_loss_sum(gpt_cuda *m, double *out);
int gpt_cuda_head_backward(gpt_cuda *m, const float *const *p, float *const *g, float dloss);
int gpt_cuda_block_backward(gpt_cuda *m, const float *const *p, float *const *g, int layer);
int gpt_cuda_embed_backward(gpt_cuda *m, float *const *g);

/* Device dtype helpers for the runtime's views (on the model's stream):
 * dst = float(src), and dst = round(dst + src) for gradients. */
int gpt_cuda_to_f32(gpt_cuda *m, float *dst, const void *src, shardrt_dtype dt, int64_t n);
int gpt_cuda_add_f32_into(gpt_cuda *m, void *dst, shardrt_dtype dt, const float *src, int64_t n);

/* Small device-memory helpers so C callers need no CUDA headers. */
int gpt_cuda_alloc(gpt_cuda *m, void **ptr, size_t bytes);
void gpt_cuda_free(void *ptr);
int gpt_cuda_memset_zero(gpt_cuda *m, void *ptr, size_t bytes);
int gpt_cuda_copy_h2d(gpt_cuda *m, void *dst, const void *src, size_t bytes);
int gpt_cuda_copy_d2h(gpt_cuda *m, void *dst, const void *src, size_t bytes); /* synchronous */

#ifdef __cplusplus
}
#endif
#endif
