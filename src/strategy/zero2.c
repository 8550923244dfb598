/* SPDX-License-Identifier: Apache-2.0 */
/* SHARD_GRAD_OP / ZeRO-2: params whole through forward and backward;
 * gradients reduce-scattered into shards; each rank updates its shard and
 * the params are all-gathered in place after the update. */
#include "src/strategy/strategy.h"

static shardrt_status gather(shardrt_ctx *ctx, shardrt__unit *u) { return shardrt__full_from_param(ctx, u); }

static shardrt_status release(shardrt_ctx *ctx, shardrt__unit *u, bool after_backward) {
  if (after_backward) shardrt__full_free(ctx, u);
  return SHARDRT_OK;
}

static shardrt_status after_update(shardrt_ctx *ctx, shardrt__unit *u) {
  u->full_valid = u->full_alias;
  return shardrt__allgather_params(ctx, u);
}

const shardrt__strategy_i shardrt__strategy_zero2 = {
    .name = "zero2",
    .gather = gather,
    .release = release,
    .reduce = shardrt__reduce_shards,
    .after_update = after_update,
};
