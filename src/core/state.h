/* SPDX-License-Identifier: Apache-2.0 */
/* What checkpointing and model loading see of a finalized context: the
 * optimizer-relevant buffers of each unit as ranges of the unit's flat
 * coordinate space [0, numel) (padding excluded), read and written as host
 * fp32 (exact for bf16/fp16 contents), plus the scalar training state.
 *
 * Roles:
 *   PARAM   the optimizer's copy of the parameters: the fp32 master when the
 *           plan keeps one, else the stored flat parameter;
 *   EXP_AVG / EXP_AVG_SQ   AdamW moments (SGD: EXP_AVG is the momentum
 *           buffer, EXP_AVG_SQ absent);
 * Each rank owns the range [begin, end) of a role (its optimizer partition
 * when the plan shards the optimizer, else the whole unit); ranks of
 * different replica groups own equal ranges (hybrid). */
#ifndef SHARDRT_STATE_H
#define SHARDRT_STATE_H

#include "shardrt/runtime.h"

typedef enum shardrt__role {
  SHARDRT__ROLE_PARAM = 0,
  SHARDRT__ROLE_EXP_AVG,
  SHARDRT__ROLE_EXP_AVG_SQ,
  SHARDRT__ROLE_COUNT_
} shardrt__role;

/* Is the role present (EXP_AVG_SQ is absent for SGD, EXP_AVG for SGD without momentum)? */
bool shardrt__state_has(const shardrt_ctx *ctx, shardrt__role role);
/* dtype the role is stored in (what a sharded checkpoint should keep). */
shardrt_dtype shardrt__state_dtype(const shardrt_ctx *ctx, shardrt__role role);
/* This rank's owned range of the unit's flat coordinates (clipped to numel). */
void shardrt__state_range(const shardrt_ctx *ctx, int unit, int64_t *begin, int64_t *end);
/* Copy elements [begin, begin+n) (inside the owned range) to / from host fp32. */
shardrt_status shardrt__state_read(shardrt_ctx *ctx, int unit, shardrt__role role, int64_t begin,
                                   int64_t n, float *out);
shardrt_status shardrt__state_write(shardrt_ctx *ctx, int unit, shardrt__role role, int64_t begin,
                                    int64_t n, const float *in);
/* Collective: after PARAM roles were written, re-derive every working copy
 * (cast master -> params, all-gather replicated params). */
shardrt_status shardrt__state_refresh(shardrt_ctx *ctx);

/* Collective: gathers the full unit's parameters (unpadded, host fp32, from
 * the optimizer's copy) onto `root` only; other ranks pass out = NULL. Rank
 * root's extra memory is one unit. */
shardrt_status shardrt__unit_gather_to_root(shardrt_ctx *ctx, int unit, int root, float *out);
/* Collective: root holds the full unit (host fp32); every rank receives only
 * the parts it owns (its shard, or the whole unit when unsharded) and stores
 * them into PARAM. Non-root ranks pass in = NULL. */
shardrt_status shardrt__unit_scatter_from_root(shardrt_ctx *ctx, int unit, int root, const float *in);

/* Scalar training state saved with a checkpoint. */
typedef struct shardrt__train_state {
  int64_t step;          /* optimizer steps taken */
  double loss_scale;     /* fp16 dynamic scale */
  int64_t good_steps;    /* steps since the last overflow */
  int64_t hysteresis_left;
} shardrt__train_state;
void shardrt__train_state_get(const shardrt_ctx *ctx, shardrt__train_state *out);
void shardrt__train_state_set(shardrt_ctx *ctx, const shardrt__train_state *in);

/* The context's communication backend and device (for the checkpoint code's
 * own collectives: broadcast of metadata, barriers). */
struct shardrt__comm *shardrt__ctx_comm(shardrt_ctx *ctx);
struct shardrt__device *shardrt__ctx_device(shardrt_ctx *ctx);

#endif
