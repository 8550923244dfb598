/* SPDX-License-Identifier: Apache-2.0 */
/* SHARD_GRAD_OP / ZeRO-2: params whole through forward and backward;
 * gradients reduce-scattered into shards; each rank updates its shard and
 * the params are all-gathered in place after the update. It differs from
 * zero1 in one choice only: how gradients are reduced. */
#include "src/strategy/strategy.h"

static shardrt_status after_update(shardrt_ctx *ctx, shardrt__unit *u) {
  shardrt__invalidate_full(u);
  return shardrt__allgather_params(ctx, u);
}

const shardrt__strategy_i shardrt__strategy_zero2 = {
    .name = "zero2",
    .gather = shardrt__gather_whole,
    .release = shardrt__release_after_backward,
    .reduce = shardrt__reduce_shards,
    .after_update = after_update,
};
