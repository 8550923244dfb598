/* SPDX-License-Identifier: Apache-2.0 */
/* Bytes/s of the CPU device backend's element-wise ops (AdamW, SGD, casts,
 * add, scale, sqnorm) next to a STREAM-like copy and triad measured in the
 * same run, at an L2-sized and a DRAM-sized shard. Each ISA build of the
 * kernels this CPU runs is measured, and so is "before": the loops the
 * backend had until the kernels were specialised (a dtype switch and
 * out-of-line conversions per element), kept here as the baseline.
 * Variants are alternated within each repetition and the median is
 * printed, so a busy machine slows all of them alike.
 *
 *   bench_device_cpu [--l2 N] [--dram N] [--reps R] [--wall] [--quick]
 *
 * N: elements per buffer (defaults 32768 and 16777216: AdamW's four fp32
 * buffers are 512 KiB and 256 MiB, each DRAM-sized buffer alone 64 MiB,
 * twice a 32 MiB L3). Bytes counted: every byte an op must
 * read or write once (AdamW fp32: 16 read + 12 written per element),
 * as STREAM counts them (no write-allocate). Single thread. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <math.h>

#include "src/device/cpu_kernels.h"
#include "src/device/device.h"

/* ---- "before": the pre-specialisation loops, verbatim in effect ---- */
static float old_ld(const void *p, shardrt_dtype dt, size_t i) {
  switch (dt) {
    case SHARDRT_F32: return ((const float *)p)[i];
    case SHARDRT_BF16: return shardrt_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return shardrt_f16_to_f32(((const uint16_t *)p)[i]);
  }
}
static void old_st(void *p, shardrt_dtype dt, size_t i, float v) {
  switch (dt) {
    case SHARDRT_F32: ((float *)p)[i] = v; break;
    case SHARDRT_BF16: ((uint16_t *)p)[i] = shardrt_f32_to_bf16(v); break;
    default: ((uint16_t *)p)[i] = shardrt_f32_to_f16(v); break;
  }
}
static void old_adamw(void *param, shardrt_dtype pdt, const void *grad, shardrt_dtype gdt, void *m, void *v,
                      shardrt_dtype sdt, size_t n, const shardrt__adamw_args *a) {
  for (size_t i = 0; i < n; i++) {
    float p = old_ld(param, pdt, i), mi = old_ld(m, sdt, i), vi = old_ld(v, sdt, i);
    float g = old_ld(grad, gdt, i) * a->grad_scale, w = a->one_minus_beta1;
    mi = fabsf(w) < 0.5f ? mi + w * (g - mi) : g - (g - mi) * (1.0f - w);
    vi = vi * a->beta2 + (a->one_minus_beta2 * g) * g;
    float denom = sqrtf(vi) / a->bc2_sqrt + a->eps;
    p = p * a->decay;
    p = p + (a->neg_step_size * mi) / denom;
    old_st(m, sdt, i, mi), old_st(v, sdt, i, vi), old_st(param, pdt, i, p);
  }
}
static void old_sgd(void *param, shardrt_dtype pdt, const void *grad, shardrt_dtype gdt, void *buf,
                    shardrt_dtype sdt, size_t n, const shardrt__sgd_args *a) {
  for (size_t i = 0; i < n; i++) {
    float p = old_ld(param, pdt, i), g = old_ld(grad, gdt, i) * a->grad_scale + a->weight_decay * p;
    float b = a->momentum * old_ld(buf, sdt, i) + g;
    old_st(buf, sdt, i, b);
    old_st(param, pdt, i, p - a->lr * b);
  }
}
static double old_sqnorm(const void *buf, shardrt_dtype dt, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) {
    double v = old_ld(buf, dt, i);
    s += v * v;
  }
  return s;
}

/* ---- the ops ---- */
enum { OP_ADAMW, OP_ADAMW_G16, OP_SGD, OP_CAST_TO_BF16, OP_CAST_FROM_BF16, OP_CAST_TO_F16, OP_CAST_FROM_F16,
       OP_ADD, OP_ADD_BF16, OP_SCALE, OP_SQNORM, OP_SQNORM_BF16, NOPS };
static const char *op_name[NOPS] = {"adamw fp32",       "adamw p32 g-bf16 s32", "sgd fp32 momentum",
                                    "cast fp32->bf16",  "cast bf16->fp32",      "cast fp32->fp16",
                                    "cast fp16->fp32",  "add fp32+=fp32",       "add fp32+=bf16",
                                    "scale fp32",       "sqnorm fp32",          "sqnorm bf16"};
static const double op_bytes[NOPS] = {28, 26, 20, 6, 6, 6, 6, 12, 10, 8, 4, 2}; /* per element */

typedef struct bufs {
  float *p, *g, *m, *v, *a, *b, *c;
  uint16_t *h;
} bufs;

static volatile double sink;

/* k == NULL: the "before" loops. */
static void run_op(int op, const shardrt__cpu_kernels *k, bufs *B, size_t n, const shardrt__adamw_args *aa,
                   const shardrt__sgd_args *sa) {
  const shardrt_dtype F = SHARDRT_F32, H = SHARDRT_BF16, X = SHARDRT_F16;
  switch (op) {
    case OP_ADAMW: k ? k->adamw[F][F][F][0](B->p, B->g, B->m, B->v, n, aa) : old_adamw(B->p, F, B->g, F, B->m, B->v, F, n, aa); break;
    case OP_ADAMW_G16: k ? k->adamw[F][H][F][0](B->p, B->h, B->m, B->v, n, aa) : old_adamw(B->p, F, B->h, H, B->m, B->v, F, n, aa); break;
    case OP_SGD: k ? k->sgd[F][F][F][1](B->p, B->g, B->m, n, sa) : old_sgd(B->p, F, B->g, F, B->m, F, n, sa); break;
    case OP_CAST_TO_BF16: k ? k->cast[H][F](B->h, B->a, n) : shardrt_convert(B->h, H, B->a, F, n); break;
    case OP_CAST_FROM_BF16: k ? k->cast[F][H](B->a, B->h, n) : shardrt_convert(B->a, F, B->h, H, n); break;
    case OP_CAST_TO_F16: k ? k->cast[X][F](B->h, B->a, n) : shardrt_convert(B->h, X, B->a, F, n); break;
    case OP_CAST_FROM_F16: k ? k->cast[F][X](B->a, B->h, n) : shardrt_convert(B->a, F, B->h, X, n); break;
    case OP_ADD:
      if (k) k->add[F][F](B->a, B->b, n);
      else for (size_t i = 0; i < n; i++) old_st(B->a, F, i, old_ld(B->a, F, i) + old_ld(B->b, F, i));
      break;
    case OP_ADD_BF16:
      if (k) k->add[F][H](B->a, B->h, n);
      else for (size_t i = 0; i < n; i++) old_st(B->a, F, i, old_ld(B->a, F, i) + old_ld(B->h, H, i));
      break;
    case OP_SCALE:
      if (k) k->scale[F](B->b, n, 0.99999f);
      else for (size_t i = 0; i < n; i++) old_st(B->b, F, i, old_ld(B->b, F, i) * 0.99999f);
      break;
    case OP_SQNORM: sink = k ? k->sqnorm[F](B->g, n) : old_sqnorm(B->g, F, n); break;
    case OP_SQNORM_BF16: sink = k ? k->sqnorm[H](B->h, n) : old_sqnorm(B->h, H, n); break;
  }
}

/* STREAM's copy and triad on fp32 (8 and 12 bytes per element). */
static void stream_copy(float *restrict a, const float *restrict b, size_t n) {
  for (size_t i = 0; i < n; i++) a[i] = b[i];
}
static void stream_triad(float *restrict a, const float *restrict b, const float *restrict c, size_t n) {
  for (size_t i = 0; i < n; i++) a[i] = b[i] + 3.0f * c[i];
}

/* This thread's CPU time, not the wall clock: on a shared machine the
 * process is descheduled for long stretches, and that is not the op's
 * cost. (Time stalled on memory is CPU time, so bandwidth still shows.)
 * --wall measures the wall clock instead. */
static clockid_t clock_id = CLOCK_THREAD_CPUTIME_ID;

static double now(void) {
  struct timespec t;
  clock_gettime(clock_id, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define NVAR (1 + SHARDRT__CPU_ISA_COUNT) /* before + each ISA */

static void bench_size(size_t n, int reps) {
  bufs B;
  float **f[] = {&B.p, &B.g, &B.m, &B.v, &B.a, &B.b, &B.c};
  for (size_t j = 0; j < sizeof f / sizeof f[0]; j++) {
    *f[j] = aligned_alloc(64, (n * 4 + 63) & ~(size_t)63);
    for (size_t i = 0; i < n; i++) (*f[j])[i] = 0.5f + 0.25f * (float)((i * 7 + j) % 13) / 13.0f;
  }
  B.h = aligned_alloc(64, (n * 2 + 63) & ~(size_t)63);
  for (size_t i = 0; i < n; i++) B.h[i] = shardrt_f32_to_bf16(B.g[i]);
  shardrt__adamw_args aa;
  shardrt__adamw_args_make(&aa, 1e-3, 0.9, 0.999, 1e-8, 0.01, 10.0, 1.0f);
  shardrt__sgd_args sa = {.lr = 1e-3f, .momentum = 0.9f, .weight_decay = 0.0f, .grad_scale = 1.0f};
  const shardrt__cpu_kernels *ks[NVAR] = {NULL};
  const char *names[NVAR] = {"before"};
  for (int i = 0; i < SHARDRT__CPU_ISA_COUNT; i++) {
    ks[1 + i] = shardrt__cpu_kernels_for((shardrt__cpu_isa)i);
    names[1 + i] = ks[1 + i] ? ks[1 + i]->isa : NULL;
  }
  /* Calls per timing: about 64 MiB of traffic, so the L2 size is not
   * measuring the clock. */
  int calls = (int)(64.0 * 1048576 / (28.0 * (double)n)) + 1;
  double *t = calloc((size_t)reps * (NOPS * NVAR + 2), sizeof *t);
#define T(r, slot) t[(size_t)(slot) * reps + (r)]
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (int c = 0; c < calls; c++) stream_copy(B.a, B.b, n);
    T(r, 0) = (now() - t0) / calls;
    t0 = now();
    for (int c = 0; c < calls; c++) stream_triad(B.a, B.b, B.c, n);
    T(r, 1) = (now() - t0) / calls;
    for (int op = 0; op < NOPS; op++)
      for (int v = 0; v < NVAR; v++) {
        if (v > 0 && !ks[v]) continue;
        t0 = now();
        for (int c = 0; c < calls; c++) run_op(op, v ? ks[v] : NULL, &B, n, &aa, &sa);
        T(r, 2 + op * NVAR + v) = (now() - t0) / calls;
      }
  }
  double copy = 8.0 * n / median(&T(0, 0), reps), triad = 12.0 * n / median(&T(0, 1), reps);
  printf("\n== n = %zu elements per buffer (fp32 buffer %.1f MiB), median of %d, %d calls per timing\n", n,
         4.0 * n / 1048576, reps, calls);
  printf("%-22s %-9s %9s %8s %8s\n", "op", "variant", "GB/s", "/copy", "/triad");
  printf("%-22s %-9s %9.2f %8.2f %8.2f\n", "stream copy", "-", copy / 1e9, 1.0, copy / triad);
  printf("%-22s %-9s %9.2f %8.2f %8.2f\n", "stream triad", "-", triad / 1e9, triad / copy, 1.0);
  for (int op = 0; op < NOPS; op++)
    for (int v = 0; v < NVAR; v++) {
      if (v > 0 && !ks[v]) continue;
      double bw = op_bytes[op] * n / median(&T(0, 2 + op * NVAR + v), reps);
      printf("%-22s %-9s %9.2f %8.2f %8.2f\n", op_name[op], names[v], bw / 1e9, bw / copy, bw / triad);
    }
  fflush(stdout);
#undef T
  free(t);
  for (size_t j = 0; j < sizeof f / sizeof f[0]; j++) free(*f[j]);
  free(B.h);
}

int main(int argc, char **argv) {
  size_t l2 = 32768, dram = 16777216;
  int reps = 7;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) l2 = 1000, dram = 4099, reps = 1;
    else if (!strcmp(argv[i], "--wall")) clock_id = CLOCK_MONOTONIC;
    else if (!strcmp(argv[i], "--l2") && i + 1 < argc) l2 = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--dram") && i + 1 < argc) dram = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--l2 N] [--dram N] [--reps R] [--wall] [--quick]\n", argv[0]);
      return 2;
    }
  }
  if (reps < 1 || l2 < 1 || dram < 1) {
    fprintf(stderr, "bench_device_cpu: N and R must be positive\n");
    return 2;
  }
  printf("bench_device_cpu: kernels used by the backend: %s; timed by %s\n", shardrt__cpu_kernels_best()->isa,
         clock_id == CLOCK_MONOTONIC ? "wall clock" : "thread CPU time");
  bench_size(l2, reps);
  bench_size(dram, reps);
  return 0;
}
