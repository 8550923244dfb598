/* SPDX-License-Identifier: Apache-2.0 */
/* LD_PRELOAD shim for test_gpt_blas_reexec.sh: makes OpenBLAS's kernel
 * detection read as "Prescott", what 0.3.21 reports on a CPU model it does
 * not know, until train_gpt has re-executed itself (its marker variable set)
 * or the user forced a kernel; then it answers with the real library. This
 * is the only way to produce the misdetection on a CPU that OpenBLAS knows. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

char *openblas_get_corename(void) {
  if (!getenv("SHARDRT_BLAS_DETECTED") && !getenv("OPENBLAS_CORETYPE")) return "Prescott";
  char *(*real)(void) = (char *(*)(void))dlsym(RTLD_NEXT, "openblas_get_corename");
  return real ? real() : "unknown";
}
