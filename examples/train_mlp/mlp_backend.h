/* SPDX-License-Identifier: Apache-2.0 */
/* Where train_mlp computes: a small table of operations over fp32 buffers
 * that live on the host (cpu backend, the functions of mlp.h) or on the GPU
 * (cuda backend: cuBLAS and a few kernels, everything on the runtime's
 * stream). The trainer allocates its activations through the backend and
 * never dereferences them, so one training loop serves both.
 *
 * Shapes and semantics of the math are those of mlp.h. Every operation
 * returns 0, or -1 with a message naming the failed step in error(). */
#ifndef MLP_BACKEND_H
#define MLP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "shardrt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlp_backend_i {
  const char *name; /* "cpu" | "cuda" */
  /* A zero-filled buffer of `bytes` in the backend's memory. */
  int (*alloc)(void *self, size_t bytes, void **out);
  void (*release)(void *self, void *p); /* NULL-safe */
  /* Copies a host batch (x: rows x in, labels: rows) into backend buffers
   * after checking every label is in [0, classes). The host arrays may be
   * reused as soon as this returns. */
  int (*upload)(void *self, float *x, int *labels, const float *hx, const int *hlabels, int rows, int in,
                int classes);
  /* The fp32 values of a param view: the view's own memory when it already
   * holds fp32, else `scratch` (>= v->numel floats) filled by a cast. */
  int (*view_f32)(void *self, const shardrt_view *v, float *scratch, const float **out);
  /* Grad view += src (v->numel fp32 values), rounded to the view's dtype. */
  int (*view_add_f32)(void *self, const shardrt_view *v, const float *src);
  int (*zero)(void *self, float *p, int64_t n);
  int (*linear_fwd)(void *self, const float *x, const float *W, const float *b, float *y, int nb, int ni, int no);
  int (*linear_bwd)(void *self, const float *x, const float *W, const float *dy, float *dx, float *dW, float *db,
                    int nb, int ni, int no);
  int (*relu_fwd)(void *self, float *y, int64_t n);
  int (*relu_bwd)(void *self, const float *y, float *dy, int64_t n);
  /* dlogits as mlp_xent; *loss_sum += the summed cross-entropy of the rows.
   * The cuda backend waits for its stream here: once per micro-batch. */
  int (*xent)(void *self, const float *logits, const int *labels, float *dlogits, int nb, int nc, float scale,
              double *loss_sum);
  const char *(*error)(const void *self);
  void (*destroy)(void *self);
} mlp_backend_i;

typedef struct mlp_backend {
  const mlp_backend_i *i;
  void *self;
} mlp_backend;

/* Both return 0, or -1 with the reason in err. */
int mlp_backend_cpu_create(mlp_backend *out, char *err, size_t errlen);
/* stream: the cudaStream_t every kernel and cuBLAS call runs on (the
 * runtime's shardrt_cuda_stream(ctx)). Defined only in CUDA builds
 * (EX_HAVE_CUDA). */
int mlp_backend_cuda_create(mlp_backend *out, void *stream, char *err, size_t errlen);
/* NULL-safe; leaves *b empty. */
void mlp_backend_destroy(mlp_backend *b);

#ifdef __cplusplus
}
#endif
#endif
