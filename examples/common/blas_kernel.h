/* SPDX-License-Identifier: Apache-2.0 */
/* Choosing OpenBLAS's kernel at start-up, for the example trainers whose
 * CPU math runs through cblas (train_gpt, train_mlp). A DYNAMIC_ARCH
 * OpenBLAS picks its kernels from the CPU model number; a release older than the CPU (Debian
 * 12's 0.3.21 on Intel family 6 model 207, for one) does not know the model
 * and falls back to its oldest SSE3 kernel, 3-4x slower at sgemm than the
 * kernel the CPU's features allow. The choice is made in the library's
 * load-time constructor from OPENBLAS_CORETYPE, so the only fix from inside
 * the program is to set that variable and re-execute before anything else
 * runs. See docs/architecture.md, "BLAS kernel choice". */
#ifndef EX_BLAS_KERNEL_H
#define EX_BLAS_KERNEL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The OpenBLAS core name to force, or NULL to keep the detected one.
 * detected: what OpenBLAS chose (NULL when the BLAS is not OpenBLAS);
 * avx512: the CPU has AVX-512 F, BW, DQ and VL; avx2_fma: AVX2 and FMA.
 * Only a detected core known to be older than the CPU's features is
 * replaced; any core OpenBLAS picked on purpose is kept. */
const char *ex_blas_pick(const char *detected, int avx512, int avx2_fma);

/* Call first in main(), before any thread or MPI starts: when OpenBLAS
 * picked a fallback kernel and OPENBLAS_CORETYPE is unset (and
 * SHARDRT_BLAS_AUTO is not 0), sets OPENBLAS_CORETYPE and re-executes the
 * program with the same arguments. Returns only when nothing is to be done
 * or the re-execution failed (then the run continues with the slow kernel
 * and the note says so). */
void ex_blas_startup(char **argv);

/* One line describing the kernel in use and why, for the start-up banner. */
void ex_blas_note(char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
