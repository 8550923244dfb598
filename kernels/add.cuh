/* SPDX-License-Identifier: Apache-2.0 */
/* dst[i] += src[i] with mixed dtypes (accumulate a reduced gradient into a store). */
#ifndef SHARDRT_KERNELS_ADD_CUH
#define SHARDRT_KERNELS_ADD_CUH

#include <cuda_runtime_api.h>

#include "shardrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The sum is formed in fp32 and rounded once to dst_dt. dst may equal src
 * (doubling); other overlaps are not allowed. Asynchronous. */
cudaError_t shardrt__cuda_add(void *dst, shardrt_dtype dst_dt, const void *src, shardrt_dtype src_dt,
                              size_t n, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
