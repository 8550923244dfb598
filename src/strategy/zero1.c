/* SPDX-License-Identifier: Apache-2.0 */
/* ZeRO-1: optimizer state (and master copy) sharded. Gradients are
 * all-reduced and kept whole; each rank updates its partition of the
 * params, which are then all-gathered in place. */
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

const shardrt__strategy_i shardrt__strategy_zero1 = {
    .name = "zero1",
    .gather = gather,
    .release = release,
    .reduce = shardrt__reduce_all,
    .after_update = after_update,
};
