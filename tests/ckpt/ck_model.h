/* SPDX-License-Identifier: Apache-2.0 */
/* A model built through the public API for the checkpoint tests, trained
 * with synthetic gradients: at step s the gradient of element k of
 * parameter p is 0.5 * w + c(s, p, k), added by rank 0 only (the others add
 * zeros), so the summed gradient - and the whole run - is the same at every
 * world size and strategy. */
#ifndef CK_MODEL_H
#define CK_MODEL_H

#include <mpi.h>

#include "shardrt.h"

/* Plans built in code: TRANSFORMER_BASED wrap on "Block", no persistence
 * threshold, fp32 unless mp says otherwise. */
shardrt_plan ck_plan(shardrt_strategy s, shardrt_state_dict_type sd);

typedef struct ck_spec {
  int blocks;       /* Block modules */
  int64_t rows, cols; /* each block: weight [rows, cols], bias [rows] */
  bool small_extras;  /* add the odd-sized embed / norm / head modules */
} ck_spec;
ck_spec ck_spec_small(void);

/* Creates a context (device cpu) over comm (NULL = world), registers the
 * model, finalizes and sets deterministic initial weights. */
shardrt_status ck_model_create(const shardrt_plan *plan, MPI_Comm *comm, const ck_spec *spec,
                               const shardrt_optim_params *opt, shardrt_ctx **out);
/* Runs steps [s0, s1); norms[s - s0] (may be NULL) gets each grad norm. */
shardrt_status ck_train(shardrt_ctx *ctx, int s0, int s1, double *norms);
/* All parameters concatenated in registration order (collective);
 * *out is malloc'ed. */
shardrt_status ck_weights(shardrt_ctx *ctx, float **out, int64_t *n);

#endif
