/* SPDX-License-Identifier: Apache-2.0 */
/* Zeroing of flat buffers, on a stream. */
#ifndef SHARDRT_KERNELS_ZERO_CUH
#define SHARDRT_KERNELS_ZERO_CUH

#include <cuda_runtime_api.h>

#include "shardrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* All-zero bytes are +0 in every dtype, so zeroing is a memset. Asynchronous. */
cudaError_t shardrt__cuda_zero(void *buf, size_t bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
