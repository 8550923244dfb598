/* SPDX-License-Identifier: Apache-2.0 */
/* ZeRO-1: optimizer state (and master copy) sharded. Gradients are
 * all-reduced and kept whole; each rank updates its partition of the
 * params, which are then all-gathered in place. */
#include "src/strategy/strategy.h"

static shardrt_status after_update(shardrt_ctx *ctx, shardrt__unit *u) {
  shardrt__invalidate_full(u);
  return shardrt__allgather_params(ctx, u);
}

const shardrt__strategy_i shardrt__strategy_zero1 = {
    .name = "zero1",
    .gather = shardrt__gather_whole,
    .release = shardrt__release_after_backward,
    .reduce = shardrt__reduce_all,
    .after_update = after_update,
};
