/* SPDX-License-Identifier: Apache-2.0 */
/* The nccl comm entry point of a build without CUDA. */
#include "src/comm/comm.h"
#include "src/core/error.h"

shardrt_status shardrt__comm_nccl_create(const shardrt__comm_args *a, shardrt__comm *out) {
  (void)a;
  if (out) {
    out->i = NULL;
    out->self = NULL;
  }
  return shardrt__error(SHARDRT_ERR_UNSUPPORTED,
                        "the nccl comm backend was requested, but libshardrt was built without CUDA "
                        "(configure with -DSHARDRT_CUDA=ON); use the mpi backend (--comm mpi)");
}
