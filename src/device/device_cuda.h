/* SPDX-License-Identifier: Apache-2.0 */
/* Internal to the CUDA builds (device_cuda.c, nccl_cuda.c): turning CUDA
 * errors into shardrt statuses, and what the NCCL backend needs to know
 * about a cuda device. */
#ifndef SHARDRT_DEVICE_CUDA_H
#define SHARDRT_DEVICE_CUDA_H

#include <cuda_runtime_api.h>

#include "src/core/error.h"
#include "src/device/device.h"

/* Records "cuda: <call> failed at <file>:<line>: <name> (<text>)" as the
 * last error and clears CUDA's (non-sticky) last error so the next call does
 * not see it. cudaErrorMemoryAllocation maps to SHARDRT_ERR_OUT_OF_MEMORY,
 * everything else to SHARDRT_ERR_DEVICE. */
shardrt_status shardrt__cuda_fail(cudaError_t e, const char *call, const char *file, int line);

#define SHARDRT__CUDA_CHECK(call)                                                  \
  do {                                                                             \
    cudaError_t e__ = (call);                                                      \
    if (e__ != cudaSuccess) return shardrt__cuda_fail(e__, #call, __FILE__, __LINE__); \
  } while (0)

#define SHARDRT__CUDA_CHECK_GOTO(call, rc, label)                         \
  do {                                                                    \
    cudaError_t e__ = (call);                                             \
    if (e__ != cudaSuccess) {                                             \
      (rc) = shardrt__cuda_fail(e__, #call, __FILE__, __LINE__);          \
      goto label;                                                         \
    }                                                                     \
  } while (0)

/* The GPU ordinal a cuda device was created on; -1 for any other device. */
int shardrt__device_cuda_index(const shardrt__device *d);

#endif
