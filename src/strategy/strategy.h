/* SPDX-License-Identifier: Apache-2.0 */
/* A strategy module decides, for one unit, how its full parameters become
 * available, how its gradients are reduced, and what follows an optimizer
 * update. The lifecycle code (src/core/lifecycle.c) calls these hooks; the
 * shared mechanics (casts, gathers, optimizer kernels) live in
 * src/strategy/common.c so each module states only its choices.
 *
 *   replicate  NO_SHARD / ZeRO-0: params, grads, optimizer replicated;
 *              grads all-reduced; every rank updates everything.
 *   zero1      optimizer state sharded: grads all-reduced, each rank updates
 *              its partition, params all-gathered after the update.
 *   zero2      SHARD_GRAD_OP / ZeRO-2: grads reduce-scattered into shards,
 *              each rank updates its partition, params all-gathered after.
 *   zero3      FULL_SHARD / ZeRO-3: params all-gathered before use and freed
 *              after, grads reduce-scattered, each rank updates its shard.
 * Hybrid variants are zero2/zero3 whose SHARD group is one machine, with a
 * replica all-reduce of the reduced shard across groups. */
#ifndef SHARDRT_STRATEGY_H
#define SHARDRT_STRATEGY_H

#include "src/core/ctx.h"

typedef struct shardrt__strategy_i {
  const char *name;
  /* Start making u->full valid (may leave a request in u->gather_req). */
  shardrt_status (*gather)(shardrt_ctx *ctx, shardrt__unit *u);
  /* After the unit's last use in a pass: free what the module does not keep. */
  shardrt_status (*release)(shardrt_ctx *ctx, shardrt__unit *u, bool after_backward);
  /* Reduce the gradient buffer `src` (reduce dtype, padded full) into u->grad.
   * May leave a request in u->reduce_req, finished by shardrt__finish_reduce. */
  shardrt_status (*reduce)(shardrt_ctx *ctx, shardrt__unit *u, shardrt__buf *src);
  /* After the optimizer updated the partition: refresh replicated params. */
  shardrt_status (*after_update)(shardrt_ctx *ctx, shardrt__unit *u);
} shardrt__strategy_i;

extern const shardrt__strategy_i shardrt__strategy_replicate;
extern const shardrt__strategy_i shardrt__strategy_zero1;
extern const shardrt__strategy_i shardrt__strategy_zero2;
extern const shardrt__strategy_i shardrt__strategy_zero3;

/* The module for a plan's zero stage. */
const shardrt__strategy_i *shardrt__strategy_for_stage(int stage);

/* ---- shared mechanics (common.c) ---- */
/* u->full <- cast(u->param) (whole unit; params not sharded). */
shardrt_status shardrt__full_from_param(shardrt_ctx *ctx, shardrt__unit *u);
/* u->full <- all-gather(cast(own shard)) over the shard group (async). */
shardrt_status shardrt__full_gather_shards(shardrt_ctx *ctx, shardrt__unit *u);
/* Frees u->full unless it aliases the stored params. */
void shardrt__full_free(shardrt_ctx *ctx, shardrt__unit *u);
/* The stored params changed: completes a gather (prefetch) still writing
 * into u->full, then drops the stale copy (kept allocated while the unit is
 * in use, when the caller re-gathers it). */
shardrt_status shardrt__full_drop(shardrt_ctx *ctx, shardrt__unit *u);
/* all-reduce src over WORLD, then u->grad += src. */
shardrt_status shardrt__reduce_all(shardrt_ctx *ctx, shardrt__unit *u, shardrt__buf *src);
/* reduce-scatter src over SHARD (+ replica all-reduce), u->grad += shard. */
shardrt_status shardrt__reduce_shards(shardrt_ctx *ctx, shardrt__unit *u, shardrt__buf *src);
/* Completes the first stage of an in-flight reduction. Without a replica
 * stage that completes it (u->grad += result); under hybrid sharding it
 * issues the replica all-reduce and leaves it in flight (u->replica_stage). */
shardrt_status shardrt__advance_reduce(shardrt_ctx *ctx, shardrt__unit *u);
/* Completes an in-flight reduction, both stages, into u->grad. Called before
 * anything reads u->grad (the step) and before the unit reduces again (its
 * replica stage owns u->red_out). */
shardrt_status shardrt__finish_reduce(shardrt_ctx *ctx, shardrt__unit *u);
/* Hooks of the modules that keep whole params (replicate, zero1, zero2):
 * a compute-dtype copy (or the stored params themselves) made before
 * forward and kept through backward. */
shardrt_status shardrt__gather_whole(shardrt_ctx *ctx, shardrt__unit *u);
shardrt_status shardrt__release_after_backward(shardrt_ctx *ctx, shardrt__unit *u, bool after_backward);
/* After an update of whole stored params: the compute copy is stale. */
void shardrt__invalidate_full(shardrt__unit *u);
/* All-gathers the updated partitions of the (full) stored params in place. */
shardrt_status shardrt__allgather_params(shardrt_ctx *ctx, shardrt__unit *u);

#endif
