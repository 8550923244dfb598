/* SPDX-License-Identifier: Apache-2.0 */
/* Mechanics shared by the strategy modules. */
#include "src/strategy/strategy.h"

shardrt_status shardrt__full_from_param(shardrt_ctx *ctx, shardrt__unit *u) {
  if (u->full_alias || u->full_valid) return SHARDRT_OK;
  if (!u->full.p)
    SHARDRT__CHECK(shardrt__buf_alloc(ctx, &u->full, SHARDRT__MEM_GATHERED, SHARDRT__LOC_DEVICE,
                                      ctx->plan.compute_dtype, u->padded));
  return shardrt__buf_cast(ctx, &u->full, 0, &u->param, 0, u->padded);
}

shardrt_status shardrt__full_gather_shards(shardrt_ctx *ctx, shardrt__unit *u) {
  if (u->full_valid || u->gather_req) return SHARDRT_OK;
  if (!u->full.p)
    SHARDRT__CHECK(shardrt__buf_alloc(ctx, &u->full, SHARDRT__MEM_GATHERED, SHARDRT__LOC_DEVICE,
                                      ctx->plan.compute_dtype, u->padded));
  /* Cast the own shard first so the gather moves compute-dtype bytes. */
  SHARDRT__CHECK(shardrt__buf_cast(ctx, &u->full, u->shard_off, &u->param, 0, u->shard_n));
  return shardrt__all_gather(ctx, u, SHARDRT__GROUP_SHARD, shardrt__at(&u->full, u->shard_off), u->full.p,
                             (size_t)u->shard_n, u->full.dt, &u->gather_req);
}

shardrt_status shardrt__gather_whole(shardrt_ctx *ctx, shardrt__unit *u) { return shardrt__full_from_param(ctx, u); }

shardrt_status shardrt__release_after_backward(shardrt_ctx *ctx, shardrt__unit *u, bool after_backward) {
  if (after_backward) shardrt__full_free(ctx, u);
  return SHARDRT_OK;
}

void shardrt__invalidate_full(shardrt__unit *u) { u->full_valid = u->full_alias; }

shardrt_status shardrt__full_drop(shardrt_ctx *ctx, shardrt__unit *u) {
  shardrt_status rc = shardrt__wait(ctx, &u->gather_req, SHARDRT_COLL_ALL_GATHER);
  if (u->phase == SHARDRT__IDLE) shardrt__full_free(ctx, u);
  else u->full_valid = u->full_alias;
  return rc;
}

void shardrt__full_free(shardrt_ctx *ctx, shardrt__unit *u) {
  if (!u->full_alias) shardrt__buf_free(ctx, &u->full);
  u->full_valid = u->full_alias;
}

/* A reduction that could not start leaves nothing pending: its buffers go. */
static shardrt_status abandon(shardrt_ctx *ctx, shardrt__unit *u, shardrt_status rc) {
  if (u->red.p != u->grad.p) shardrt__buf_free(ctx, &u->red);
  u->red.p = NULL;
  shardrt__buf_free(ctx, &u->red_out);
  u->reduce_req = NULL;
  return rc;
}

shardrt_status shardrt__reduce_all(shardrt_ctx *ctx, shardrt__unit *u, shardrt__buf *src) {
  u->red = *src; /* takes ownership (or the alias of u->grad) */
  shardrt_status rc =
      shardrt__all_reduce(ctx, u, SHARDRT__GROUP_WORLD, u->red.p, (size_t)u->padded, u->red.dt, &u->reduce_req);
  return rc == SHARDRT_OK ? rc : abandon(ctx, u, rc);
}

shardrt_status shardrt__reduce_shards(shardrt_ctx *ctx, shardrt__unit *u, shardrt__buf *src) {
  u->red = *src;
  shardrt_status rc = shardrt__buf_alloc(ctx, &u->red_out, SHARDRT__MEM_STAGING, SHARDRT__LOC_DEVICE, u->red.dt,
                                         u->shard_n);
  if (rc == SHARDRT_OK)
    rc = shardrt__reduce_scatter(ctx, u, SHARDRT__GROUP_SHARD, u->red.p, u->red_out.p, (size_t)u->shard_n, u->red.dt,
                                 &u->reduce_req);
  return rc == SHARDRT_OK ? rc : abandon(ctx, u, rc);
}

/* Stage 1 of a reduction: waits the shard group's reduce-scatter (or the
 * world all-reduce). Under hybrid sharding it then issues stage 2, the
 * replica all-reduce of the reduced shard, and returns with it in flight:
 * the cross-replica (usually cross-host) sum runs under the backward still
 * to come and is waited on only by shardrt__finish_reduce. The issue point
 * is the same call on every rank (the next unit's end_backward, or the
 * step), so the replica group sees its all-reduces in one order. */
shardrt_status shardrt__advance_reduce(shardrt_ctx *ctx, shardrt__unit *u) {
  if (!u->red.p) return SHARDRT_OK;
  bool sharded = u->red_out.p != NULL;
  shardrt_status rc =
      shardrt__wait(ctx, &u->reduce_req, sharded ? SHARDRT_COLL_REDUCE_SCATTER : SHARDRT_COLL_ALL_REDUCE);
  bool in_place = u->red.p == u->grad.p;
  if (rc == SHARDRT_OK && sharded && ctx->comm.size[SHARDRT__GROUP_REPLICA] > 1) {
    /* Hybrid: the shard group's sum, summed again across replicas. */
    rc = shardrt__all_reduce(ctx, u, SHARDRT__GROUP_REPLICA, u->red_out.p, (size_t)u->shard_n, u->red_out.dt,
                             &u->replica_req);
    if (rc == SHARDRT_OK) {
      if (!in_place) shardrt__buf_free(ctx, &u->red);
      u->red.p = NULL;
      u->replica_stage = true;
      return SHARDRT_OK;
    }
  }
  if (rc == SHARDRT_OK && !in_place)
    rc = sharded ? shardrt__buf_add(ctx, &u->grad, 0, &u->red_out, 0, u->shard_n)
                 : shardrt__buf_add(ctx, &u->grad, 0, &u->red, 0, u->padded);
  shardrt__buf_free(ctx, &u->red_out);
  if (!in_place) shardrt__buf_free(ctx, &u->red);
  u->red.p = NULL;
  return rc;
}

shardrt_status shardrt__finish_reduce(shardrt_ctx *ctx, shardrt__unit *u) {
  SHARDRT__CHECK(shardrt__advance_reduce(ctx, u));
  if (!u->replica_stage) return SHARDRT_OK;
  shardrt_status rc = shardrt__wait(ctx, &u->replica_req, SHARDRT_COLL_ALL_REDUCE);
  /* After a timeout the backend may still write into red_out: keep it (the
   * context is broken and frees nothing of a unit's buffers). */
  if (rc != SHARDRT_OK && ctx->comm_broken) return rc;
  if (rc == SHARDRT_OK) rc = shardrt__buf_add(ctx, &u->grad, 0, &u->red_out, 0, u->shard_n);
  shardrt__buf_free(ctx, &u->red_out);
  u->replica_stage = false;
  return rc;
}

shardrt_status shardrt__allgather_params(shardrt_ctx *ctx, shardrt__unit *u) {
  shardrt__req *req = NULL;
  if (u->param.loc != SHARDRT__LOC_DEVICE && ctx->dev.is_cuda) {
    /* Offloaded whole params (FSDP offload with SHARD_GRAD_OP / ZeRO-1):
     * collectives take device buffers, so gather through one. */
    shardrt__buf tmp;
    shardrt_status rc = shardrt__buf_alloc(ctx, &tmp, SHARDRT__MEM_STAGING, SHARDRT__LOC_DEVICE, u->param.dt,
                                           u->padded);
    if (rc == SHARDRT_OK) rc = shardrt__buf_cast(ctx, &tmp, u->shard_off, &u->param, u->shard_off, u->shard_n);
    if (rc == SHARDRT_OK)
      rc = shardrt__all_gather(ctx, u, SHARDRT__GROUP_SHARD, shardrt__at(&tmp, u->shard_off), tmp.p, (size_t)u->shard_n,
                               tmp.dt, &req);
    if (rc == SHARDRT_OK) rc = shardrt__wait(ctx, &req, SHARDRT_COLL_ALL_GATHER);
    if (rc == SHARDRT_OK) rc = shardrt__buf_cast(ctx, &u->param, 0, &tmp, 0, u->padded);
    shardrt__buf_free(ctx, &tmp);
    return rc;
  }
  SHARDRT__CHECK(shardrt__all_gather(ctx, u, SHARDRT__GROUP_SHARD, shardrt__at(&u->param, u->shard_off), u->param.p,
                                     (size_t)u->shard_n, u->param.dt, &req));
  return shardrt__wait(ctx, &req, SHARDRT_COLL_ALL_GATHER);
}

const shardrt__strategy_i *shardrt__strategy_for_stage(int stage) {
  switch (stage) {
    case 0: return &shardrt__strategy_replicate;
    case 1: return &shardrt__strategy_zero1;
    case 2: return &shardrt__strategy_zero2;
    default: return &shardrt__strategy_zero3;
  }
}
