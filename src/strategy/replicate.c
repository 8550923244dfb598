/* SPDX-License-Identifier: Apache-2.0 */
/* NO_SHARD / ZeRO-0: every rank holds and updates everything; gradients are
 * all-reduced. Full params are the stored params (or a compute-dtype cast
 * of them, kept from forward through backward). */
#include "src/strategy/strategy.h"

static shardrt_status after_update(shardrt_ctx *ctx, shardrt__unit *u) {
  shardrt__invalidate_full(u);
  return SHARDRT_OK;
}

const shardrt__strategy_i shardrt__strategy_replicate = {
    .name = "replicate",
    .gather = shardrt__gather_whole,
    .release = shardrt__release_after_backward,
    .reduce = shardrt__reduce_all,
    .after_update = after_update,
};
