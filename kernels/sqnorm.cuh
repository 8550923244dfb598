/* SPDX-License-Identifier: Apache-2.0 */
/* sum(buf[i]^2) in double, reduced entirely on the device. */
#ifndef SHARDRT_KERNELS_SQNORM_CUH
#define SHARDRT_KERNELS_SQNORM_CUH

#include <cuda_runtime_api.h>

#include "shardrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Doubles of device workspace the launcher needs: work[0] receives the
 * result, the rest holds one partial sum per block. */
#define SHARDRT__CUDA_SQNORM_WORK 1025

/* Writes sum(buf[i]^2) to work[0] (device memory). Each block accumulates
 * its elements in double; a second single-block pass adds the partials in a
 * fixed order, so the result is deterministic on a given GPU. A non-finite
 * element makes the result non-finite (inf or nan). Asynchronous. */
cudaError_t shardrt__cuda_sqnorm(const void *buf, shardrt_dtype dt, size_t n, double *work,
                                 cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
