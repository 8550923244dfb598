/* SPDX-License-Identifier: Apache-2.0 */
/* buf[i] *= factor (gradient unscale / clip), on a stream. */
#ifndef SHARDRT_KERNELS_SCALE_CUH
#define SHARDRT_KERNELS_SCALE_CUH

#include <cuda_runtime_api.h>

#include "shardrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The product is formed in fp32 and rounded once to dt. Asynchronous. */
cudaError_t shardrt__cuda_scale(void *buf, shardrt_dtype dt, size_t n, float factor, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
