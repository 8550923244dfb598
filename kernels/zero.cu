/* SPDX-License-Identifier: Apache-2.0 */
#include "kernels/zero.cuh"

extern "C" cudaError_t shardrt__cuda_zero(void *buf, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (!buf) return cudaErrorInvalidValue;
  return cudaMemsetAsync(buf, 0, bytes, stream);
}
