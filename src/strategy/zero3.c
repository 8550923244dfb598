/* SPDX-License-Identifier: Apache-2.0 */
/* FULL_SHARD / ZeRO-3: each rank stores only its shard. Params are
 * all-gathered before forward, freed after it, gathered again for backward;
 * gradients are reduce-scattered; each rank updates its own shard. */
#include "src/strategy/strategy.h"

static shardrt_status gather(shardrt_ctx *ctx, shardrt__unit *u) { return shardrt__full_gather_shards(ctx, u); }

static shardrt_status release(shardrt_ctx *ctx, shardrt__unit *u, bool after_backward) {
  shardrt__full_free(ctx, u);
  return SHARDRT_OK;
}

/* A copy gathered before the update (prefetched, or kept by the reuse
 * distance) holds the old values: drop it. */
static shardrt_status after_update(shardrt_ctx *ctx, shardrt__unit *u) { return shardrt__full_drop(ctx, u); }

const shardrt__strategy_i shardrt__strategy_zero3 = {
    .name = "zero3",
    .gather = gather,
    .release = release,
    .reduce = shardrt__reduce_shards,
    .after_update = after_update,
};
