/* SPDX-License-Identifier: Apache-2.0 */
/* Host-side planning of the GPT's cuBLASLt matrix products: the row-major
 * to column-major mapping, the pointer-alignment class, the vocabulary
 * padding, and the cache of heuristic results. Pure C with no CUDA types,
 * so every decision the GPU path takes is tested on the CPU
 * (tests/gpt/test_gpt_lt_host.c); gpt_lt.cu only feeds these to cuBLASLt. */
#ifndef GPT_LT_H
#define GPT_LT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Vocabulary rows of the padded logits: a multiple of 128 so every logits
 * row starts 256-byte aligned in bf16 and the head GEMM's N tiles evenly
 * (llm.c pads 50257 to 50304). Padded columns are masked out of the loss. */
#define GPT_VOCAB_PAD 128
int gpt_padded_vocab(int vocab);

/* Elements a per-layer activation slot of n elements takes: n rounded up
 * to 128, so every slot of a 2- or 4-byte tensor starts 256-byte aligned
 * (cudaMalloc gives 256). Layer l's slot then has the same alignment as
 * slot 0, so a product reads the same alignment with and without
 * activation checkpointing (which reuses slot 0 for every layer), cuBLAS
 * picks the same kernel, and the two runs agree bit for bit. */
#define GPT_ACT_SLOT_ALIGN 128
static inline size_t gpt_act_slot(long long n) {
  return (size_t)((n + GPT_ACT_SLOT_ALIGN - 1) / GPT_ACT_SLOT_ALIGN * GPT_ACT_SLOT_ALIGN);
}

/* The embedding backward's plan for a batch of BT tokens in [0, V): a
 * stable counting sort of the positions by token, so the GPU sums each
 * token's rows in ascending position order, without atomics (whose order,
 * and so rounding, changes from run to run). Fills order[BT] (positions
 * grouped by token, ascending within a token), tok[] (the distinct tokens,
 * ascending) and seg[] (token u's positions are order[seg[u] .. seg[u+1]));
 * count is (V + 1) ints of scratch. Returns the number of distinct tokens
 * (tok holds that many, seg one more). O(V + BT); tokens must be in range
 * (the caller checks). */
int gpt_embed_plan(const int *tokens, int BT, int V, int *count, int *order, int *tok, int *seg);

/* A row-major product C(M,N) = op(A) op(B) (+ beta C), each matrix with
 * its row stride, as the model code writes it (cblas twin). */
typedef struct gpt_rm_gemm {
  bool ta, tb; /* op(A) = A^T when ta: A is stored (K,M), else (M,K) */
  int M, N, K;
  int lda, ldb, ldc;
} gpt_rm_gemm;

/* The same product as cuBLAS sees it: column-major, with the operands
 * swapped (a row-major X is the column-major X^T), so first = B, second =
 * A. rows/cols are each operand's STORED column-major shape, which is what
 * a cublasLtMatrixLayout describes. */
typedef struct gpt_cm_gemm {
  bool trans_first, trans_second; /* CUBLAS_OP_T when true */
  int m, n, k;
  int first_rows, first_cols, ld_first;   /* from the row-major B */
  int second_rows, second_cols, ld_second; /* from the row-major A */
  int c_rows, c_cols, ldc;
} gpt_cm_gemm;

/* Returns 0, or -1 with a message in err when a size is not positive or a
 * row stride is shorter than the row it holds. */
int gpt_rm_to_cm(const gpt_rm_gemm *g, gpt_cm_gemm *out, char *err, size_t errlen);

/* Alignment class of a device pointer, in bytes (a power of two, at most
 * 256): cuBLASLt picks kernels for the alignment it is promised, so the
 * promise is the pointer's real alignment and is part of the cache key. */
int gpt_lt_alignment(uintptr_t p);

/* What a cached heuristic result is valid for. Zero-initialise before
 * filling (the key is compared bytewise). */
typedef struct gpt_lt_key {
  gpt_cm_gemm shape;
  int ab_type, cd_type; /* cudaDataType values, opaque here */
  int epilogue;         /* cublasLtEpilogue_t value */
  int align_a, align_b, align_c, align_d;
  int has_beta;         /* beta != 0 changes the kernels allowed */
  int tf32;
} gpt_lt_key;

/* Fixed-size cache: one slot per distinct product of a training step (a
 * GPT step has ~12; 64 leaves room for two models or odd shapes). The
 * algorithm is cuBLASLt's opaque 64-byte struct, stored as bytes. */
#define GPT_LT_CACHE_SLOTS 64
typedef struct gpt_lt_entry {
  gpt_lt_key key;
  unsigned char algo[64];
  size_t workspace; /* bytes the algorithm needs */
  int supported;    /* 0: cuBLASLt has no algorithm; use the fallback */
  int used;
} gpt_lt_entry;

typedef struct gpt_lt_cache {
  gpt_lt_entry slot[GPT_LT_CACHE_SLOTS];
  int next_victim; /* round-robin eviction once full */
  long hits, misses;
} gpt_lt_cache;

/* Finds key. Returns the entry and sets *found; on a miss returns the slot
 * to fill (key stored, used set, the rest cleared), evicting round-robin
 * when every slot is taken. Never NULL. */
gpt_lt_entry *gpt_lt_cache_lookup(gpt_lt_cache *c, const gpt_lt_key *key, bool *found);

#ifdef __cplusplus
}
#endif
#endif
