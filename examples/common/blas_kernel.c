/* SPDX-License-Identifier: Apache-2.0 */
#include "blas_kernel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Weak, so a build against another BLAS (no such symbol) links and reports
 * "not OpenBLAS" instead of failing. */
extern char *openblas_get_corename(void) __attribute__((weak));

/* Marks the re-executed process: holds the core OpenBLAS first detected, so
 * the note can say what was replaced, and stops a second re-execution. */
#define REEXEC_ENV "SHARDRT_BLAS_DETECTED"

/* OpenBLAS's generic and pre-AVX2 x86 cores: what it falls back to for a CPU
 * model it does not know. Sandybridge (AVX without FMA) is included: a CPU
 * with AVX2+FMA that reads as Sandybridge is a misdetection too. */
static const char *const fallback_cores[] = {
    "Prescott", "Core2",   "Penryn", "Dunnington", "Nehalem",  "Atom",    "Katmai",
    "Coppermine", "Northwood", "Banias", "Opteron", "Opteron_SSE3", "Barcelona", "Bobcat",
    "Sandybridge", "Generic", "Unknown",
};

const char *ex_blas_pick(const char *detected, int avx512, int avx2_fma) {
  if (!detected) return NULL;
  int fallback = 0;
  for (size_t i = 0; i < sizeof fallback_cores / sizeof *fallback_cores; i++)
    if (strcasecmp(detected, fallback_cores[i]) == 0) fallback = 1;
  if (!fallback) return NULL;
  /* SkylakeX's sgemm kernel needs F+BW+DQ+VL; Haswell's needs AVX2+FMA */
  if (avx512) return strcasecmp(detected, "SkylakeX") == 0 ? NULL : "SkylakeX";
  if (avx2_fma) return "Haswell";
  return NULL;
}

static int cpu_avx512(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

static int cpu_avx2_fma(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static const char *detected_core(void) {
  return openblas_get_corename ? openblas_get_corename() : NULL;
}

static int reexec_failed_errno = 0;

void ex_blas_startup(char **argv) {
  if (getenv("OPENBLAS_CORETYPE") || getenv(REEXEC_ENV)) return;
  const char *automatic = getenv("SHARDRT_BLAS_AUTO");
  if (automatic && strcmp(automatic, "0") == 0) return;
  const char *det = detected_core();
  const char *pick = ex_blas_pick(det, cpu_avx512(), cpu_avx2_fma());
  if (!pick) return;
  if (setenv("OPENBLAS_CORETYPE", pick, 1) != 0 || setenv(REEXEC_ENV, det, 1) != 0) {
    reexec_failed_errno = errno;
    return;
  }
  fflush(NULL);
  /* /proc/self/exe, not argv[0]: the program may have been found on PATH */
  execv("/proc/self/exe", argv);
  reexec_failed_errno = errno;
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(REEXEC_ENV);
}

void ex_blas_note(char *buf, size_t len) {
  const char *core = detected_core();
  if (!core) {
    snprintf(buf, len, "BLAS: not OpenBLAS (kernel choice left to the library)");
    return;
  }
  const char *was = getenv(REEXEC_ENV), *forced = getenv("OPENBLAS_CORETYPE");
  if (reexec_failed_errno)
    snprintf(buf, len,
             "BLAS: OpenBLAS kernel %s, a fallback for this CPU; switching to %s failed (re-exec: %s); "
             "set OPENBLAS_CORETYPE=%s yourself",
             core, ex_blas_pick(core, cpu_avx512(), cpu_avx2_fma()), strerror(reexec_failed_errno),
             ex_blas_pick(core, cpu_avx512(), cpu_avx2_fma()));
  else if (was)
    snprintf(buf, len,
             "BLAS: OpenBLAS kernel %s (chosen at start-up: OpenBLAS detected %s, a fallback for this "
             "CPU; SHARDRT_BLAS_AUTO=0 keeps the detected one)",
             core, was);
  else if (forced)
    snprintf(buf, len, "BLAS: OpenBLAS kernel %s (set by OPENBLAS_CORETYPE=%s)", core, forced);
  else
    snprintf(buf, len, "BLAS: OpenBLAS kernel %s (detected)", core);
}
