/* SPDX-License-Identifier: Apache-2.0 */
/* Pieces shared by checkpoint save and load over a live context: agreeing on
 * a status across ranks, and describing the context's model as checkpoint
 * metadata. */
#ifndef SHARDRT_CKPT_INTERNAL_H
#define SHARDRT_CKPT_INTERNAL_H

#include "shardrt/ckpt.h"
#include "src/ckpt/meta.h"
#include "src/core/state.h"

/* Collective: every rank passes its own status; every rank returns the
 * first failing rank's status, with that rank's message (prefixed by its
 * rank) as the last error. */
shardrt_status shardrt__ck_agree(shardrt_ctx *ctx, shardrt_status rc);
/* Elements of the largest unit (unpadded): the size of a one-unit buffer. */
int64_t shardrt__ck_max_unit_numel(const shardrt_ctx *ctx);
/* Collective: broadcasts rank 0's NUL-terminated string (len bytes buffer). */
shardrt_status shardrt__ck_bcast_str(shardrt_ctx *ctx, char *buf, size_t len);

/* Fills world size, strategy, plan JSON (malloc'ed into *plan_json), train
 * state, units (names, numel) and params of m from the context. */
shardrt_status shardrt__ck_describe(shardrt_ctx *ctx, shardrt__ck_meta *m, char **plan_json);
/* Frees what ck_describe allocated (m's arrays; not read-side fields). */
void shardrt__ck_describe_free(shardrt__ck_meta *m, char *plan_json);

/* "[3, 4]" */
void shardrt__ck_shape_str(int ndim, const int64_t *shape, char *buf, size_t len);

/* Collective: gathers the parameters unit by unit to rank 0 and streams
 * them into a safetensors file at path in dtype. *bytes (rank 0) gets the
 * file size. */
shardrt_status shardrt__ck_save_full(shardrt_ctx *ctx, const char *path, shardrt_dtype dtype, uint64_t *bytes,
                                     const shardrt_weight_map *map);

#endif
