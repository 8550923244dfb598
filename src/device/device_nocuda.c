/* SPDX-License-Identifier: Apache-2.0 */
/* The cuda device entry points of a build without CUDA: they answer that
 * the build cannot serve the request, and report no GPUs. */
#include "src/core/error.h"
#include "src/device/device.h"

shardrt_status shardrt__device_cuda_create(int index, shardrt__device *out) {
  if (out) {
    out->i = NULL;
    out->self = NULL;
    out->is_cuda = false;
  }
  return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                        "cuda device %d requested, but libshardrt was built without CUDA "
                        "(configure with -DSHARDRT_CUDA=ON); use the cpu device",
                        index);
}

int shardrt__cuda_device_count(void) { return 0; }
