/* SPDX-License-Identifier: Apache-2.0 */
/* The CPU backend's element-wise kernels, one specialised loop per dtype
 * combination, compiled once per x86 vector ISA and picked at run time.
 *
 * Why: a loop that switches on the dtype per element, or calls an
 * out-of-line conversion, stays scalar; these loops have the dtypes fixed
 * at compile time and are written so the compiler vectorises them. Each ISA
 * build computes the same bits: the sources are compiled with
 * -ffp-contract=off (no FMA where the reference has a multiply and an add),
 * sqrt and divide are correctly rounded in every ISA, and the one reduction
 * (sqnorm) has a fixed blocking of its own that does not depend on the
 * vector width. tests/unit/test_device_cpu_isa.c compares every table with
 * a scalar oracle, bit for bit. */
#ifndef SHARDRT_DEVICE_CPU_KERNELS_H
#define SHARDRT_DEVICE_CPU_KERNELS_H

#include <stddef.h>

#include "src/device/device.h"

typedef enum shardrt__cpu_isa {
  SHARDRT__CPU_ISA_BASE = 0, /* the compiler's baseline (SSE2 on x86-64) */
  SHARDRT__CPU_ISA_AVX2,     /* AVX2 */
  SHARDRT__CPU_ISA_AVX512,   /* AVX-512 F/BW/DQ/VL, 512-bit vectors */
  SHARDRT__CPU_ISA_COUNT,
} shardrt__cpu_isa;

#define SHARDRT__NDT 3 /* fp32, bf16, fp16: shardrt_dtype values 0..2 */

typedef void (*shardrt__cpu_unary_fn)(void *dst, const void *src, size_t n);
typedef void (*shardrt__cpu_scale_fn)(void *buf, size_t n, float f);
typedef double (*shardrt__cpu_sqnorm_fn)(const void *buf, size_t n);
typedef void (*shardrt__cpu_adamw_fn)(void *p, const void *g, void *m, void *v, size_t n,
                                      const shardrt__adamw_args *a);
typedef void (*shardrt__cpu_sgd_fn)(void *p, const void *g, void *buf, size_t n, const shardrt__sgd_args *a);

typedef struct shardrt__cpu_kernels {
  const char *isa;
  shardrt__cpu_unary_fn cast[SHARDRT__NDT][SHARDRT__NDT]; /* [dst][src]; the diagonal copies (no overlap) */
  shardrt__cpu_unary_fn add[SHARDRT__NDT][SHARDRT__NDT];  /* [dst][src]: dst += src */
  shardrt__cpu_scale_fn scale[SHARDRT__NDT];
  shardrt__cpu_sqnorm_fn sqnorm[SHARDRT__NDT];
  /* [param][grad][state][lerp branch: 1 when |1 - beta1| >= 0.5] */
  shardrt__cpu_adamw_fn adamw[SHARDRT__NDT][SHARDRT__NDT][SHARDRT__NDT][2];
  /* [param][grad][state][1 with a momentum buffer] */
  shardrt__cpu_sgd_fn sgd[SHARDRT__NDT][SHARDRT__NDT][SHARDRT__NDT][2];
} shardrt__cpu_kernels;

/* The best table this CPU runs (decided once, thread-safe). */
const shardrt__cpu_kernels *shardrt__cpu_kernels_best(void);
/* The table for one ISA, or NULL when this build or this CPU lacks it
 * (tests and the benchmark run every one the machine has). */
const shardrt__cpu_kernels *shardrt__cpu_kernels_for(shardrt__cpu_isa isa);

#endif
