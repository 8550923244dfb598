/* SPDX-License-Identifier: Apache-2.0 */
/* Fused AdamW on a flat shard, on a stream. */
#ifndef SHARDRT_KERNELS_ADAMW_CUH
#define SHARDRT_KERNELS_ADAMW_CUH

#include <cuda_runtime_api.h>

#include "src/device/device.h"

#ifdef __cplusplus
extern "C" {
#endif

/* param (param_dt), grad (grad_dt), m and v (state_dt) hold n elements each;
 * the update is computed in fp32 with the CPU twin's exact operation order
 * and rounded to each buffer's dtype. Buffers must not overlap. Asynchronous. */
cudaError_t shardrt__cuda_adamw(void *param, shardrt_dtype param_dt, const void *grad, shardrt_dtype grad_dt,
                                void *m, void *v, shardrt_dtype state_dt, size_t n,
                                const shardrt__adamw_args *args, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
