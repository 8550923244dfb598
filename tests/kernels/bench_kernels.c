/* SPDX-License-Identifier: Apache-2.0 */
/* Effective memory bandwidth of the hot kernels (cast, add, fused AdamW,
 * squared norm) on the cuda device for 1M..256M elements.
 *   bench_kernels [max_elements]
 * Without a GPU it says so and exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "src/device/device.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct bufs {
  void *p32, *g16, *m32, *v32, *b16;
} bufs;

enum { OP_CAST_F32_BF16, OP_CAST_BF16_F32, OP_ADD, OP_ADAMW, OP_SQNORM, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"cast fp32->bf16", "cast bf16->fp32", "add fp32+=bf16",
                                               "adamw p32 g16 s32", "sqnorm fp32"};
/* Bytes each op reads plus writes per element. */
static const double op_bytes[OP_COUNT] = {6, 6, 10, 26, 4};

static shardrt_status run_op(shardrt__device *d, int op, bufs *b, size_t n) {
  shardrt__adamw_args a;
  shardrt__adamw_args_make(&a, 1e-3, 0.9, 0.999, 1e-8, 0.01, 1.0, 1.0f);
  double norm;
  switch (op) {
    case OP_CAST_F32_BF16: return d->i->cast(d->self, b->b16, SHARDRT_BF16, b->p32, SHARDRT_F32, n);
    case OP_CAST_BF16_F32: return d->i->cast(d->self, b->m32, SHARDRT_F32, b->g16, SHARDRT_BF16, n);
    case OP_ADD: return d->i->add(d->self, b->v32, SHARDRT_F32, b->g16, SHARDRT_BF16, n);
    case OP_ADAMW:
      return d->i->adamw(d->self, b->p32, SHARDRT_F32, b->g16, SHARDRT_BF16, b->m32, b->v32, SHARDRT_F32, n, &a);
    default: return d->i->sqnorm(d->self, b->p32, SHARDRT_F32, n, &norm); /* includes the read-back */
  }
}

static int fail(const char *what) {
  fprintf(stderr, "bench_kernels: %s: %s\n", what, shardrt_last_error());
  return 1;
}

int main(int argc, char **argv) {
  size_t max_n = (size_t)256 << 20;
  if (argc > 1) {
    char *end = NULL;
    unsigned long long v = strtoull(argv[1], &end, 10);
    if (!end || *end || v == 0) {
      fprintf(stderr, "usage: %s [max_elements]  (a positive integer, default %zu)\n", argv[0], max_n);
      return 2;
    }
    max_n = (size_t)v;
  }
  if (shardrt__cuda_device_count() == 0) {
    printf("bench_kernels: no CUDA GPU is present; nothing to measure\n");
    return 0;
  }
  shardrt__device d;
  if (shardrt__device_cuda_create(0, &d) != SHARDRT_OK) return fail("cuda device");
  bufs b = {0};
  void **all[] = {&b.p32, &b.g16, &b.m32, &b.v32, &b.b16};
  const size_t width[] = {4, 2, 4, 4, 2};
  for (int k = 0; k < 5; k++) {
    if (d.i->alloc(d.self, max_n * width[k], all[k]) != SHARDRT_OK) return fail("allocating the buffers");
    if (d.i->fill_zero(d.self, *all[k], max_n * width[k]) != SHARDRT_OK) return fail("zeroing the buffers");
  }
  printf("%-20s %12s %10s %10s\n", "kernel", "elements", "us/call", "GB/s");
  for (size_t n = (size_t)1 << 20; n <= max_n; n *= 4)
    for (int op = 0; op < OP_COUNT; op++) {
      double bytes = op_bytes[op] * (double)n;
      int iters = (int)(4e9 / bytes);
      if (iters < 5) iters = 5;
      if (iters > 200) iters = 200;
      for (int w = 0; w < 2; w++)
        if (run_op(&d, op, &b, n) != SHARDRT_OK) return fail(op_names[op]);
      if (d.i->sync(d.self) != SHARDRT_OK) return fail("sync");
      double t0 = now();
      for (int it = 0; it < iters; it++)
        if (run_op(&d, op, &b, n) != SHARDRT_OK) return fail(op_names[op]);
      if (d.i->sync(d.self) != SHARDRT_OK) return fail("sync");
      double dt = (now() - t0) / iters;
      printf("%-20s %12zu %10.1f %10.1f\n", op_names[op], n, dt * 1e6, bytes / dt / 1e9);
    }
  for (int k = 0; k < 5; k++) d.i->free(d.self, *all[k]);
  shardrt__device_destroy(&d);
  return 0;
}
