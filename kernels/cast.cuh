/* SPDX-License-Identifier: Apache-2.0 */
/* dst[i] = (dst_dt) src[i] for any pair of fp32/bf16/fp16, on a stream. */
#ifndef SHARDRT_KERNELS_CAST_CUH
#define SHARDRT_KERNELS_CAST_CUH

#include <cuda_runtime_api.h>

#include "shardrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rounds to nearest even. Equal dtypes copy (overlap allowed: memmove
 * semantics); different dtypes must not overlap. Asynchronous. */
cudaError_t shardrt__cuda_cast(void *dst, shardrt_dtype dst_dt, const void *src, shardrt_dtype src_dt,
                               size_t n, cudaStream_t stream);
/* Byte copy between device buffers with memmove semantics (an overlapping
 * move goes through a stream-ordered temporary). Asynchronous. */
cudaError_t shardrt__cuda_move(void *dst, const void *src, size_t bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
