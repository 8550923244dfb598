/* SPDX-License-Identifier: Apache-2.0 */
/* The host backend: the plain-array math of mlp_cpu.c (cblas when built
 * with it) behind the mlp_backend table. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/trainer.h"
#include "mlp.h"
#include "mlp_backend.h"

typedef struct cpu_backend {
  char err[256];
} cpu_backend;

static int fail(void *self, const char *fmt, ...) {
  cpu_backend *c = self;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  return -1;
}

static int check_view(void *self, const shardrt_view *v, const char *what) {
  if (!v || (!v->data && v->numel > 0) || v->numel < 0)
    return fail(self, "cpu backend: %s view is empty or has a negative size", what);
  if (v->dtype != SHARDRT_F32 && v->dtype != SHARDRT_BF16 && v->dtype != SHARDRT_F16)
    return fail(self, "cpu backend: %s view has dtype %d (allowed: fp32, bf16, fp16)", what, (int)v->dtype);
  return 0;
}

static int cpu_alloc(void *self, size_t bytes, void **out) {
  *out = calloc(1, bytes ? bytes : 1);
  return *out ? 0 : fail(self, "cpu backend: out of host memory for a %zu-byte buffer", bytes);
}

static void cpu_release(void *self, void *p) {
  (void)self;
  free(p);
}

static int cpu_upload(void *self, float *x, int *labels, const float *hx, const int *hlabels, int rows, int in,
                      int classes) {
  for (int r = 0; r < rows; r++)
    if (hlabels[r] < 0 || hlabels[r] >= classes)
      return fail(self, "batch row %d has label %d, outside [0, %d)", r, hlabels[r], classes);
  memcpy(x, hx, sizeof(float) * (size_t)rows * (size_t)in);
  memcpy(labels, hlabels, sizeof(int) * (size_t)rows);
  return 0;
}

static int cpu_view_f32(void *self, const shardrt_view *v, float *scratch, const float **out) {
  if (check_view(self, v, "param")) return -1;
  if (v->dtype == SHARDRT_F32) {
    *out = v->data;
    return 0;
  }
  ex_view_to_f32(v, scratch);
  *out = scratch;
  return 0;
}

static int cpu_view_add_f32(void *self, const shardrt_view *v, const float *src) {
  if (check_view(self, v, "grad")) return -1;
  ex_view_add_f32(v, src);
  return 0;
}

static int cpu_zero(void *self, float *p, int64_t n) {
  (void)self;
  memset(p, 0, sizeof(float) * (size_t)n);
  return 0;
}

static int cpu_linear_fwd(void *self, const float *x, const float *W, const float *b, float *y, int nb, int ni,
                          int no) {
  (void)self;
  mlp_linear_fwd(x, W, b, y, nb, ni, no);
  return 0;
}

static int cpu_linear_bwd(void *self, const float *x, const float *W, const float *dy, float *dx, float *dW,
                          float *db, int nb, int ni, int no) {
  (void)self;
  mlp_linear_bwd(x, W, dy, dx, dW, db, nb, ni, no);
  return 0;
}

static int cpu_relu_fwd(void *self, float *y, int64_t n) {
  (void)self;
  mlp_relu_fwd(y, n);
  return 0;
}

static int cpu_relu_bwd(void *self, const float *y, float *dy, int64_t n) {
  (void)self;
  mlp_relu_bwd(y, dy, n);
  return 0;
}

static int cpu_xent(void *self, const float *logits, const int *labels, float *dlogits, int nb, int nc, float scale,
                    double *loss_sum) {
  (void)self;
  *loss_sum += mlp_xent(logits, labels, dlogits, nb, nc, scale);
  return 0;
}

static const char *cpu_error(const void *self) { return ((const cpu_backend *)self)->err; }

static void cpu_destroy(void *self) { free(self); }

static const mlp_backend_i cpu_iface = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_upload,
    .view_f32 = cpu_view_f32,
    .view_add_f32 = cpu_view_add_f32,
    .zero = cpu_zero,
    .linear_fwd = cpu_linear_fwd,
    .linear_bwd = cpu_linear_bwd,
    .relu_fwd = cpu_relu_fwd,
    .relu_bwd = cpu_relu_bwd,
    .xent = cpu_xent,
    .error = cpu_error,
    .destroy = cpu_destroy,
};

int mlp_backend_cpu_create(mlp_backend *out, char *err, size_t errlen) {
  out->i = NULL;
  out->self = NULL;
  cpu_backend *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, errlen, "out of host memory for the cpu backend");
    return -1;
  }
  out->i = &cpu_iface;
  out->self = c;
  return 0;
}

void mlp_backend_destroy(mlp_backend *b) {
  if (!b || !b->i) return;
  b->i->destroy(b->self);
  b->i = NULL;
  b->self = NULL;
}
