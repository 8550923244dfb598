/* SPDX-License-Identifier: Apache-2.0 */
/* Collectives as the runtime issues them: byte accounting per kind (the full
 * buffer of each call, nccl-tests' S), timing and tracing around the comm
 * backend.
 *
 * What the step log's figures mean, on both paths:
 *   comm_time_s (time_s[kind]) - per collective, from its start to its
 *     completion, overlapped with compute or not;
 *   exposed_comm_s (exposed_s) - all time the compute path stood blocked on
 *     communication.
 * On the CPU the compute path is the calling thread: a collective starts
 * when its issue call is entered and completes when the backend completed
 * it (comm_i.completed_at), else when the runtime first sees it complete
 * (the mpi backend's progress thread flags it; the runtime looks at every
 * collective call and wait), else at its wait's return; blocked time
 * is the issue calls plus the waits. The trace shows exactly these spans:
 * one "comm" span per collective (issue to completion) and "wait" spans for
 * the issue calls and the waits, so the log's totals are the spans' sums
 * (tests/unit/test_comm_timing.c). On a GPU the host only enqueues work, so
 * the backend measures with CUDA events (comm_i.device_times): a collective
 * runs from the moment its inputs are ready on the comm stream to its
 * completion event, and the compute stream is blocked from reaching its wait
 * until that event; the trace there shows the host's enqueue calls.
 *
 * SHARDRT_COLL_SINGLE_RANK=1 sends collectives of one-rank groups through
 * the backend instead of skipping them, so one GPU exercises the comm
 * stream, its events, prefetch and reductions (results are unchanged: a
 * one-rank gather, reduction or sum is a copy). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/core/ctx.h"
#include "src/core/trace.h"

typedef struct shardrt__coll_rec {
  const shardrt__req *req;
  shardrt_coll_kind kind;
  int64_t bytes;
  double t_issue; /* the issue call was entered */
  double t_done;  /* first seen complete; 0: not yet */
} shardrt__coll_rec;

static const char *const issue_names[SHARDRT_COLL_COUNT_] = {"issue all_gather", "issue reduce_scatter",
                                                             "issue all_reduce", "issue broadcast"};

double shardrt__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool device_timed(const shardrt_ctx *ctx) { return ctx->comm.i && ctx->comm.i->device_times; }

/* Marks the collectives in flight that the backend has completed, with the
 * backend's own completion time when it keeps one (completed_at), else the
 * time of this look. Only a progress thread completes requests behind the
 * runtime's back (the mpi backend flags them; reading the flag never enters
 * MPI); elsewhere completion is seen at the wait. */
static void observe(shardrt_ctx *ctx) {
  if (!ctx->ninflight || !ctx->comm.i) return;
  double (*at)(void *, const shardrt__req *) = ctx->comm.i->completed_at;
  bool flagged = !at && ctx->comm.i->name && strcmp(ctx->comm.i->name, "mpi") == 0;
  if (!at && !flagged) return;
  double now = 0;
  for (int i = 0; i < ctx->ninflight; i++) {
    shardrt__coll_rec *r = &ctx->inflight[i];
    if (r->t_done > 0) continue;
    if (at) {
      r->t_done = at(ctx->comm.self, r->req);
    } else if (shardrt__comm_mpi_req_done(r->req)) {
      if (now == 0) now = shardrt__now();
      r->t_done = now;
    }
  }
}

static void span_done(shardrt_ctx *ctx, shardrt_coll_kind k, int64_t bytes, double t0, double t1) {
  ctx->cstats.time_s[k] += t1 - t0;
  shardrt__trace_span(ctx->trace, "comm", shardrt_coll_kind_name(k), t0, t1, bytes);
}

/* After an issue call that returned OK. A request in flight gets a record;
 * one that could not be recorded (out of memory) is timed as if it had
 * completed in its issue call, which understates it but loses nothing else. */
static shardrt_status issued(shardrt_ctx *ctx, shardrt_coll_kind k, size_t bytes, double t0, shardrt__req *req) {
  double t1 = shardrt__now();
  ctx->cstats.calls[k]++;
  ctx->cstats.bytes[k] += bytes;
  if (device_timed(ctx)) {
    shardrt__trace_span(ctx->trace, "comm", shardrt_coll_kind_name(k), t0, t1, (int64_t)bytes);
    return SHARDRT_OK;
  }
  ctx->cstats.exposed_s += t1 - t0;
  shardrt__trace_span(ctx->trace, "wait", issue_names[k], t0, t1, 0);
  observe(ctx);
  if (!req) { /* completed inside the call */
    span_done(ctx, k, (int64_t)bytes, t0, t1);
    return SHARDRT_OK;
  }
  if (ctx->ninflight == ctx->cap_inflight) {
    int cap = ctx->cap_inflight ? 2 * ctx->cap_inflight : 16;
    shardrt__coll_rec *grown = realloc(ctx->inflight, (size_t)cap * sizeof *grown);
    if (!grown) {
      span_done(ctx, k, (int64_t)bytes, t0, t1);
      return SHARDRT_OK;
    }
    ctx->inflight = grown;
    ctx->cap_inflight = cap;
  }
  ctx->inflight[ctx->ninflight++] = (shardrt__coll_rec){.req = req, .kind = k, .bytes = (int64_t)bytes, .t_issue = t0};
  return SHARDRT_OK;
}

/* Off unless SHARDRT_COLL_SINGLE_RANK=1; read once per context. */
static shardrt_status single_rank_through_backend(shardrt_ctx *ctx, bool *on) {
  if (!ctx->coll_single_rank) {
    const char *v = getenv("SHARDRT_COLL_SINGLE_RANK");
    if (!v || !*v || strcmp(v, "0") == 0) ctx->coll_single_rank = 1;
    else if (strcmp(v, "1") == 0) ctx->coll_single_rank = 2;
    else
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "SHARDRT_COLL_SINGLE_RANK=%s is not 0 or 1 (1: collectives of one-rank groups go "
                            "through the comm backend instead of being skipped)",
                            v);
  }
  *on = ctx->coll_single_rank == 2;
  return SHARDRT_OK;
}

static shardrt_status skip_single(shardrt_ctx *ctx, shardrt__group g, bool *skip) {
  *skip = false;
  if (ctx->comm.size[g] != 1) return SHARDRT_OK;
  bool through = false;
  SHARDRT__CHECK(single_rank_through_backend(ctx, &through));
  *skip = !through;
  return SHARDRT_OK;
}

shardrt_status shardrt__all_gather(shardrt_ctx *ctx, const shardrt__unit *u, shardrt__group g, const void *send,
                                   void *recv, size_t count, shardrt_dtype dt, shardrt__req **req) {
  *req = NULL;
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_ALL_GATHER, u, (int64_t)count, dt, g));
  bool skip = false;
  SHARDRT__CHECK(skip_single(ctx, g, &skip));
  if (skip) {
    if (send != recv) return ctx->dev.i->copy(ctx->dev.self, recv, send, count * shardrt_dtype_size(dt), SHARDRT__D2D);
    return SHARDRT_OK;
  }
  double t0 = shardrt__now();
  SHARDRT__CHECK(ctx->comm.i->all_gather(ctx->comm.self, g, send, recv, count, dt, req));
  if (ctx->group_cross[g]) ctx->cstats.cross_host_bytes[g] += count * shardrt_dtype_size(dt) * (size_t)ctx->comm.size[g];
  return issued(ctx, SHARDRT_COLL_ALL_GATHER, count * shardrt_dtype_size(dt) * (size_t)ctx->comm.size[g], t0, *req);
}

shardrt_status shardrt__reduce_scatter(shardrt_ctx *ctx, const shardrt__unit *u, shardrt__group g, const void *send,
                                       void *recv, size_t count, shardrt_dtype dt, shardrt__req **req) {
  *req = NULL;
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_REDUCE_SCATTER, u, (int64_t)count, dt, g));
  bool skip = false;
  SHARDRT__CHECK(skip_single(ctx, g, &skip));
  if (skip) return ctx->dev.i->copy(ctx->dev.self, recv, send, count * shardrt_dtype_size(dt), SHARDRT__D2D);
  double t0 = shardrt__now();
  SHARDRT__CHECK(ctx->comm.i->reduce_scatter(ctx->comm.self, g, send, recv, count, dt, req));
  if (ctx->group_cross[g]) ctx->cstats.cross_host_bytes[g] += count * shardrt_dtype_size(dt) * (size_t)ctx->comm.size[g];
  return issued(ctx, SHARDRT_COLL_REDUCE_SCATTER, count * shardrt_dtype_size(dt) * (size_t)ctx->comm.size[g], t0,
                *req);
}

shardrt_status shardrt__all_reduce(shardrt_ctx *ctx, const shardrt__unit *u, shardrt__group g, void *buf,
                                   size_t count, shardrt_dtype dt, shardrt__req **req) {
  *req = NULL;
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_ALL_REDUCE, u, (int64_t)count, dt, g));
  bool skip = false;
  SHARDRT__CHECK(skip_single(ctx, g, &skip));
  if (skip) return SHARDRT_OK;
  double t0 = shardrt__now();
  SHARDRT__CHECK(ctx->comm.i->all_reduce(ctx->comm.self, g, buf, count, dt, req));
  if (ctx->group_cross[g]) ctx->cstats.cross_host_bytes[g] += count * shardrt_dtype_size(dt);
  return issued(ctx, SHARDRT_COLL_ALL_REDUCE, count * shardrt_dtype_size(dt), t0, *req);
}

shardrt_status shardrt__wait(shardrt_ctx *ctx, shardrt__req **req, shardrt_coll_kind kind) {
  if (!*req) return SHARDRT_OK;
  int at = -1;
  for (int i = ctx->ninflight - 1; i >= 0; i--)
    if (ctx->inflight[i].req == *req) {
      at = i;
      break;
    }
  observe(ctx);
  double t0 = shardrt__now();
  shardrt_status rc = ctx->comm.i->wait(ctx->comm.self, *req);
  *req = NULL;
  if (rc == SHARDRT_ERR_TIMEOUT) ctx->comm_broken = true;
  double t1 = shardrt__now();
  shardrt__trace_span(ctx->trace, "wait", shardrt_coll_kind_name(kind), t0, t1, 0);
  if (!device_timed(ctx)) {
    ctx->cstats.exposed_s += t1 - t0;
    if (at >= 0) {
      const shardrt__coll_rec *r = &ctx->inflight[at];
      span_done(ctx, r->kind, r->bytes, r->t_issue, r->t_done > 0 ? r->t_done : t1);
    } else {
      ctx->cstats.time_s[kind] += t1 - t0; /* issued before a record could be kept */
    }
  }
  /* The request is gone (or, after a timeout, left to the backend): its
   * address may come back for another one. */
  if (at >= 0) ctx->inflight[at] = ctx->inflight[--ctx->ninflight];
  return rc;
}

const char *shardrt_coll_kind_name(shardrt_coll_kind k) {
  static const char *const n[] = {"all_gather", "reduce_scatter", "all_reduce", "broadcast"};
  return (k >= 0 && k < SHARDRT_COLL_COUNT_) ? n[k] : "?";
}

/* The backend's device timings, all of them resolved (the step has synced
 * the streams by the time a program reads its figures, so this rarely waits). */
static bool device_totals(const shardrt_ctx *ctx, double t[SHARDRT_COLL_COUNT_], double *exposed) {
  memset(t, 0, sizeof(double) * SHARDRT_COLL_COUNT_);
  *exposed = 0;
  if (!device_timed(ctx)) return false;
  if (ctx->comm.i->device_times(ctx->comm.self, true, t, exposed) != SHARDRT_OK) {
    shardrt__error_clear(); /* a broken backend's figures are what they were */
    return false;
  }
  return true;
}

void shardrt_comm_stats_get(const shardrt_ctx *ctx, shardrt_comm_stats *out) {
  *out = ctx->cstats;
  double t[SHARDRT_COLL_COUNT_], exposed;
  if (!device_totals(ctx, t, &exposed)) return;
  for (int k = 0; k < SHARDRT_COLL_COUNT_; k++) out->time_s[k] += t[k] - ctx->dev_base_time_s[k];
  out->exposed_s += exposed - ctx->dev_base_exposed_s;
}

void shardrt_comm_stats_reset(shardrt_ctx *ctx) {
  memset(&ctx->cstats, 0, sizeof ctx->cstats);
  double t[SHARDRT_COLL_COUNT_], exposed;
  if (!device_totals(ctx, t, &exposed)) return;
  memcpy(ctx->dev_base_time_s, t, sizeof t);
  ctx->dev_base_exposed_s = exposed;
}
