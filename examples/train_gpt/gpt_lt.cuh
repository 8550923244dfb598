/* SPDX-License-Identifier: Apache-2.0 */
/* cuBLASLt matrix products of the GPT in row-major terms: bf16 (or fp16)
 * operands with fp32 accumulation, fp32 operands with optional TF32, and
 * the fused epilogues the model uses (bias; bias + GELU saving the GELU
 * input; the GELU gradient from that saved input). One workspace, and one
 * heuristic query per distinct product (gpt_lt.h's cache): after the first
 * step no call does more than build descriptors and launch. */
#ifndef GPT_LT_CUH
#define GPT_LT_CUH

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "gpt_lt.h"

typedef enum gpt_epi {
  GPT_EPI_NONE = 0,
  GPT_EPI_BIAS,          /* D = AB (+ beta C) + bias[col] */
  GPT_EPI_GELU_AUX_BIAS, /* aux = AB + bias; D = gelu(aux) (tanh form) */
  GPT_EPI_DGELU,         /* D = (AB) * gelu'(aux) */
} gpt_epi;

typedef struct gpt_lt {
  cublasLtHandle_t handle;
  void *workspace;
  size_t workspace_bytes;
  gpt_lt_cache cache;
} gpt_lt;

/* Workspace: 32 MiB, what cuBLAS itself recommends for Hopper. */
int gpt_lt_init(gpt_lt *lt, char *err, size_t errlen);
void gpt_lt_free(gpt_lt *lt); /* NULL-safe, idempotent */

typedef struct gpt_lt_call {
  gpt_rm_gemm g;             /* row-major shape */
  cudaDataType_t ab, cd;     /* operand and output types */
  const void *A, *B;
  float alpha, beta;
  const void *C;             /* read when beta != 0 (may differ from D), same type/ld as D */
  void *D;
  gpt_epi epi;
  const void *bias;          /* type cd, N elements (row-major columns) */
  void *aux;                 /* type cd, (M, N) row-major with row stride ld_aux */
  int ld_aux;
  bool tf32;                 /* fp32 operands only: allow TF32 tensor cores */
} gpt_lt_call;

/* Returns 0 when done; 1 when cuBLASLt has no algorithm for this product
 * (alignment, epilogue): nothing was launched, the caller falls back;
 * -1 with a message in err on a real failure. */
int gpt_lt_matmul(gpt_lt *lt, const gpt_lt_call *c, cudaStream_t s, char *err, size_t errlen);

#endif
