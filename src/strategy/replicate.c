/* SPDX-License-Identifier: Apache-2.0 */
/* NO_SHARD / ZeRO-0: every rank holds and updates everything; gradients are
 * all-reduced. Full params are the stored params (or a compute-dtype cast
 * of them, kept from forward through backward). */
#include "src/strategy/strategy.h"

static shardrt_status gather(shardrt_ctx *ctx, shardrt__unit *u) { return shardrt__full_from_param(ctx, u); }

static shardrt_status release(shardrt_ctx *ctx, shardrt__unit *u, bool after_backward) {
  if (after_backward) shardrt__full_free(ctx, u);
  return SHARDRT_OK;
}

static shardrt_status after_update(shardrt_ctx *ctx, shardrt__unit *u) {
  /* The stored params changed: a compute-dtype copy must be re-made. */
  u->full_valid = u->full_alias;
  return SHARDRT_OK;
}

const shardrt__strategy_i shardrt__strategy_replicate = {
    .name = "replicate",
    .gather = gather,
    .release = release,
    .reduce = shardrt__reduce_all,
    .after_update = after_update,
};
