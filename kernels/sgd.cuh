/* SPDX-License-Identifier: Apache-2.0 */
/* SGD with momentum and L2 weight decay on a flat shard, on a stream. */
#ifndef SHARDRT_KERNELS_SGD_CUH
#define SHARDRT_KERNELS_SGD_CUH

#include <cuda_runtime_api.h>

#include "src/device/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* buf (state_dt) may be NULL: plain SGD without a momentum buffer. The math
 * is fp32 in the CPU twin's operation order. Buffers must not overlap.
 * Asynchronous. */
cudaError_t shardrt__cuda_sgd(void *param, shardrt_dtype param_dt, const void *grad, shardrt_dtype grad_dt,
                              void *buf, shardrt_dtype state_dt, size_t n, const shardrt__sgd_args *args,
                              cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
