/* SPDX-License-Identifier: Apache-2.0 */
/* cuBLASLt calls. Descriptors are built per call (host-only structs, a few
 * microseconds); the heuristic query, which is not cheap, is cached. */
#include <stdio.h>
#include <string.h>

#include "gpt_lt.cuh"

#define GPT_LT_WORKSPACE (32u << 20)

int gpt_lt_init(gpt_lt *lt, char *err, size_t errlen) {
  memset(lt, 0, sizeof *lt);
  cublasStatus_t st = cublasLtCreate(&lt->handle);
  if (st != CUBLAS_STATUS_SUCCESS) {
    snprintf(err, errlen, "cublasLtCreate failed: status %d (no usable GPU or driver?)", (int)st);
    return -1;
  }
  cudaError_t e = cudaMalloc(&lt->workspace, GPT_LT_WORKSPACE);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    snprintf(err, errlen, "cudaMalloc of the %u-byte cuBLASLt workspace failed: %s", GPT_LT_WORKSPACE,
             cudaGetErrorString(e));
    cublasLtDestroy(lt->handle);
    lt->handle = NULL;
    return -1;
  }
  lt->workspace_bytes = GPT_LT_WORKSPACE;
  return 0;
}

void gpt_lt_free(gpt_lt *lt) {
  if (!lt) return;
  if (lt->workspace) cudaFree(lt->workspace);
  if (lt->handle) cublasLtDestroy(lt->handle);
  memset(lt, 0, sizeof *lt);
}

static cublasLtEpilogue_t lt_epilogue(gpt_epi e) {
  switch (e) {
  case GPT_EPI_BIAS: return CUBLASLT_EPILOGUE_BIAS;
  case GPT_EPI_GELU_AUX_BIAS: return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
  case GPT_EPI_DGELU: return CUBLASLT_EPILOGUE_DGELU;
  default: return CUBLASLT_EPILOGUE_DEFAULT;
  }
}

#define LTCK(expr, what)                                                                     \
  do {                                                                                       \
    cublasStatus_t st__ = (expr);                                                            \
    if (st__ != CUBLAS_STATUS_SUCCESS) {                                                     \
      snprintf(err, errlen, "cuBLASLt %s failed: status %d (gemm %dx%dx%d)", (what), (int)st__, \
               c->g.M, c->g.N, c->g.K);                                                      \
      rc = -1;                                                                               \
      goto done;                                                                             \
    }                                                                                        \
  } while (0)

int gpt_lt_matmul(gpt_lt *lt, const gpt_lt_call *c, cudaStream_t s, char *err, size_t errlen) {
  gpt_lt_key key;
  memset(&key, 0, sizeof key); /* the key is compared bytewise, padding included */
  if (gpt_rm_to_cm(&c->g, &key.shape, err, errlen)) return -1;
  const gpt_cm_gemm *cm = &key.shape;
  const bool fp32 = c->ab == CUDA_R_32F;
  key.ab_type = (int)c->ab;
  key.cd_type = (int)c->cd;
  key.epilogue = (int)c->epi;
  key.align_a = gpt_lt_alignment((uintptr_t)c->B); /* cuBLAS's A is our B (operands swap) */
  key.align_b = gpt_lt_alignment((uintptr_t)c->A);
  key.align_c = gpt_lt_alignment((uintptr_t)(c->beta != 0.0f ? c->C : c->D));
  key.align_d = gpt_lt_alignment((uintptr_t)c->D);
  key.has_beta = c->beta != 0.0f;
  key.tf32 = fp32 && c->tf32;
  if (c->epi != GPT_EPI_NONE && c->epi != GPT_EPI_BIAS) {
    /* the aux matrix: cuBLASLt wants its ld a multiple of 8 and 16-byte rows */
    if (c->ld_aux % 8 != 0 || gpt_lt_alignment((uintptr_t)c->aux) < 16) return 1;
  }

  int rc = 0;
  cublasLtMatmulDesc_t op = NULL;
  cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL, ld = NULL;
  cublasLtMatmulPreference_t pref = NULL;
  const cublasComputeType_t ct = fp32 ? (c->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F)
                                      : CUBLAS_COMPUTE_32F;
  const cublasOperation_t ta = cm->trans_first ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = cm->trans_second ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasLtEpilogue_t epi = lt_epilogue(c->epi);
  LTCK(cublasLtMatmulDescCreate(&op, ct, CUDA_R_32F), "descriptor create");
  LTCK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "set transa");
  LTCK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "set transb");
  LTCK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "set epilogue");
  if (c->epi == GPT_EPI_BIAS || c->epi == GPT_EPI_GELU_AUX_BIAS)
    LTCK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &c->bias, sizeof c->bias),
         "set bias");
  if (c->epi == GPT_EPI_GELU_AUX_BIAS || c->epi == GPT_EPI_DGELU) {
    const int64_t ldaux = c->ld_aux;
    LTCK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &c->aux, sizeof c->aux),
         "set aux pointer");
    LTCK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ldaux, sizeof ldaux), "set aux ld");
  }
  LTCK(cublasLtMatrixLayoutCreate(&la, c->ab, cm->first_rows, cm->first_cols, cm->ld_first), "layout A");
  LTCK(cublasLtMatrixLayoutCreate(&lb, c->ab, cm->second_rows, cm->second_cols, cm->ld_second), "layout B");
  LTCK(cublasLtMatrixLayoutCreate(&lc, c->cd, cm->c_rows, cm->c_cols, cm->ldc), "layout C");
  LTCK(cublasLtMatrixLayoutCreate(&ld, c->cd, cm->c_rows, cm->c_cols, cm->ldc), "layout D");

  bool found;
  gpt_lt_entry *ent;
  ent = gpt_lt_cache_lookup(&lt->cache, &key, &found);
  if (!found) {
    LTCK(cublasLtMatmulPreferenceCreate(&pref), "preference create");
    const uint64_t ws = lt->workspace_bytes;
    const uint32_t aa = (uint32_t)key.align_a, ab = (uint32_t)key.align_b, ac = (uint32_t)key.align_c,
                   ad = (uint32_t)key.align_d;
    LTCK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
         "set workspace");
    LTCK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa),
         "set alignment A");
    LTCK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof ab),
         "set alignment B");
    LTCK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof ac),
         "set alignment C");
    LTCK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ad, sizeof ad),
         "set alignment D");
    cublasLtMatmulHeuristicResult_t res;
    int n = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt->handle, op, la, lb, lc, ld, pref, 1, &res, &n);
    /* NOT_SUPPORTED (or no result) is an answer, cached like a result; so
     * is INVALID_VALUE, which cuBLASLt also gives for a type/epilogue
     * combination it lacks: the caller falls back and counts it, and the
     * GPU tests fail on any fallback, so a wrong descriptor is not hidden */
    if (st == CUBLAS_STATUS_SUCCESS && n > 0) {
      static_assert(sizeof res.algo == sizeof ent->algo, "cublasLtMatmulAlgo_t is 64 bytes");
      memcpy(ent->algo, &res.algo, sizeof res.algo);
      ent->workspace = res.workspaceSize;
      ent->supported = 1;
    } else if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED && st != CUBLAS_STATUS_INVALID_VALUE) {
      ent->used = 0; /* do not cache a failure that may be transient */
      LTCK(st, "heuristic query");
    }
  }
  if (!ent->supported) {
    rc = 1;
    goto done;
  }
  {
    cublasLtMatmulAlgo_t algo;
    memcpy(&algo, ent->algo, sizeof algo);
    const void *cptr = c->beta != 0.0f ? c->C : c->D;
    cublasStatus_t st = cublasLtMatmul(lt->handle, op, &c->alpha, c->B, la, c->A, lb, &c->beta, cptr, lc, c->D, ld,
                                       &algo, lt->workspace, ent->workspace, s);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED) { /* refused at launch: nothing ran; remember, fall back */
      ent->supported = 0;
      rc = 1;
      goto done;
    }
    LTCK(st, "matmul");
  }
done:
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (ld) cublasLtMatrixLayoutDestroy(ld);
  if (lc) cublasLtMatrixLayoutDestroy(lc);
  if (lb) cublasLtMatrixLayoutDestroy(lb);
  if (la) cublasLtMatrixLayoutDestroy(la);
  if (op) cublasLtMatmulDescDestroy(op);
  return rc;
}
