/* SPDX-License-Identifier: Apache-2.0 */
/* Collectives as the runtime issues them: byte accounting per kind (the full
 * buffer of each call, nccl-tests' S), timing and tracing around the comm
 * backend. */
#include <string.h>
#include <time.h>

#include "src/core/ctx.h"
#include "src/core/trace.h"

double shardrt__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void account(shardrt_ctx *ctx, shardrt_coll_kind k, shardrt__group g, size_t bytes, double t0) {
  ctx->cstats.calls[k]++;
  ctx->cstats.bytes[k] += bytes;
  if (ctx->group_cross[g]) ctx->cstats.cross_host_bytes[g] += bytes;
  double t1 = shardrt__now();
  ctx->cstats.time_s[k] += t1 - t0;
  shardrt__trace_span(ctx->trace, "comm", shardrt_coll_kind_name(k), t0, t1, (int64_t)bytes);
}

shardrt_status shardrt__all_gather(shardrt_ctx *ctx, const shardrt__unit *u, shardrt__group g, const void *send,
                                   void *recv, size_t count, shardrt_dtype dt, shardrt__req **req) {
  *req = NULL;
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_ALL_GATHER, u, (int64_t)count, dt, g));
  if (ctx->comm.size[g] == 1) {
    if (send != recv) return ctx->dev.i->copy(ctx->dev.self, recv, send, count * shardrt_dtype_size(dt), SHARDRT__D2D);
    return SHARDRT_OK;
  }
  double t0 = shardrt__now();
  SHARDRT__CHECK(ctx->comm.i->all_gather(ctx->comm.self, g, send, recv, count, dt, req));
  account(ctx, SHARDRT_COLL_ALL_GATHER, g, count * shardrt_dtype_size(dt) * (size_t)ctx->comm.size[g], t0);
  return SHARDRT_OK;
}

shardrt_status shardrt__reduce_scatter(shardrt_ctx *ctx, const shardrt__unit *u, shardrt__group g, const void *send,
                                       void *recv, size_t count, shardrt_dtype dt, shardrt__req **req) {
  *req = NULL;
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_REDUCE_SCATTER, u, (int64_t)count, dt, g));
  if (ctx->comm.size[g] == 1)
    return ctx->dev.i->copy(ctx->dev.self, recv, send, count * shardrt_dtype_size(dt), SHARDRT__D2D);
  double t0 = shardrt__now();
  SHARDRT__CHECK(ctx->comm.i->reduce_scatter(ctx->comm.self, g, send, recv, count, dt, req));
  account(ctx, SHARDRT_COLL_REDUCE_SCATTER, g, count * shardrt_dtype_size(dt) * (size_t)ctx->comm.size[g], t0);
  return SHARDRT_OK;
}

shardrt_status shardrt__all_reduce(shardrt_ctx *ctx, const shardrt__unit *u, shardrt__group g, void *buf,
                                   size_t count, shardrt_dtype dt, shardrt__req **req) {
  *req = NULL;
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_ALL_REDUCE, u, (int64_t)count, dt, g));
  if (ctx->comm.size[g] == 1) return SHARDRT_OK;
  double t0 = shardrt__now();
  SHARDRT__CHECK(ctx->comm.i->all_reduce(ctx->comm.self, g, buf, count, dt, req));
  account(ctx, SHARDRT_COLL_ALL_REDUCE, g, count * shardrt_dtype_size(dt), t0);
  return SHARDRT_OK;
}

shardrt_status shardrt__wait(shardrt_ctx *ctx, shardrt__req **req, shardrt_coll_kind kind) {
  if (!*req) return SHARDRT_OK;
  double t0 = shardrt__now();
  shardrt_status rc = ctx->comm.i->wait(ctx->comm.self, *req);
  *req = NULL;
  if (rc == SHARDRT_ERR_TIMEOUT) ctx->comm_broken = true;
  double t1 = shardrt__now();
  ctx->cstats.exposed_s += t1 - t0;
  ctx->cstats.time_s[kind] += t1 - t0;
  shardrt__trace_span(ctx->trace, "wait", shardrt_coll_kind_name(kind), t0, t1, 0);
  return rc;
}

const char *shardrt_coll_kind_name(shardrt_coll_kind k) {
  static const char *const n[] = {"all_gather", "reduce_scatter", "all_reduce", "broadcast"};
  return (k >= 0 && k < SHARDRT_COLL_COUNT_) ? n[k] : "?";
}

void shardrt_comm_stats_get(const shardrt_ctx *ctx, shardrt_comm_stats *out) { *out = ctx->cstats; }
void shardrt_comm_stats_reset(shardrt_ctx *ctx) { memset(&ctx->cstats, 0, sizeof ctx->cstats); }
