/* SPDX-License-Identifier: Apache-2.0 */
/* Collective consistency checks. Every rank must issue the same collectives
 * in the same order; a program that begins units in another order on one
 * rank, skips one, or steps while another rank still computes makes MPI
 * and NCCL pair unrelated operations: a hang, or (units of equal size)
 * silently mixed parameters. With SHARDRT_DEBUG=collectives each rank
 * shows the others what it is about to do before every collective and
 * synchronisation point, and a difference becomes an error that names what
 * each rank was doing — the idea of PyTorch's TORCH_DISTRIBUTED_DEBUG=DETAIL.
 * It costs one small all-gather per collective: a debugging mode.
 *
 * SHARDRT_COLL_TIMEOUT_S bounds how long a check (and the mpi backend's
 * wait) blocks, so that a rank that never arrives gives an error instead of
 * a hang. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <unistd.h>

#include "src/core/ctx.h"
#include "src/core/sync.h"

#define SYNC_TAG 0x5c7 /* the check's point-to-point messages on the context's world communicator */

static const char *const op_names[SHARDRT__SYNC_COUNT_] = {
    [SHARDRT__SYNC_ALL_GATHER] = "all_gather",     [SHARDRT__SYNC_REDUCE_SCATTER] = "reduce_scatter",
    [SHARDRT__SYNC_ALL_REDUCE] = "all_reduce",     [SHARDRT__SYNC_STEP] = "shardrt_step",
    [SHARDRT__SYNC_SAVE] = "checkpoint save",      [SHARDRT__SYNC_LOAD] = "checkpoint load",
    [SHARDRT__SYNC_USER_ALLREDUCE] = "shardrt_allreduce_sum_f64",
};
static const char *const point_names[SHARDRT__PT_END_ - SHARDRT__PT_GRAD_NORM] = {
    "grad_norm", "program", "state", "ckpt", "setup"};
static const char *const point_desc[SHARDRT__PT_END_ - SHARDRT__PT_GRAD_NORM] = {
    "the gradient-norm all-reduce of shardrt_step", "shardrt_allreduce_sum_f64",
    "a parameter scatter/gather/broadcast", "a checkpoint agreement", "an agreement of context setup or finalize"};
static const char *const group_names[SHARDRT__GROUP_COUNT_] = {"world", "shard group", "replica group"};

shardrt_status shardrt__sync_setup(shardrt_ctx *ctx) {
  const char *dbg = getenv("SHARDRT_DEBUG");
  if (dbg && *dbg) {
    if (strcasecmp(dbg, "collectives") == 0) ctx->check_collectives = true;
    else if (strcasecmp(dbg, "off") != 0)
      return shardrt__error(SHARDRT_ERR_CONFIG, "SHARDRT_DEBUG=%s is unknown (allowed: off, collectives)", dbg);
  }
  const char *t = getenv("SHARDRT_COLL_TIMEOUT_S");
  if (t && *t) {
    char *end = NULL;
    errno = 0;
    double v = strtod(t, &end);
    if (errno || *end || !(v >= 0) || v > 1e7)
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "SHARDRT_COLL_TIMEOUT_S=%s is not a number of seconds in [0, 1e7] (0: no limit)", t);
    ctx->coll_timeout_s = v;
  }
  return SHARDRT_OK;
}

/* One rank's record. Every field is an int64 so records compare as arrays. */
enum { F_SEQ, F_OP, F_UNIT, F_COUNT, F_DTYPE, F_GROUP, F_N };

static int describe(char *out, size_t cap, const shardrt_ctx *ctx, const int64_t *f) {
  int op = (int)f[F_OP];
  if (op >= SHARDRT__PT_GRAD_NORM && op < SHARDRT__PT_END_) return snprintf(out, cap, "%s", point_desc[op - SHARDRT__PT_GRAD_NORM]);
  const char *name = op >= 0 && op < SHARDRT__SYNC_COUNT_ ? op_names[op] : "?";
  if (op > SHARDRT__SYNC_ALL_REDUCE) {
    if (op == SHARDRT__SYNC_USER_ALLREDUCE) return snprintf(out, cap, "%s of %lld values", name, (long long)f[F_COUNT]);
    return snprintf(out, cap, "%s", name);
  }
  int unit = (int)f[F_UNIT];
  const char *uname = unit >= 0 && unit < ctx->nunits ? ctx->units[unit].name : "?";
  int g = (int)f[F_GROUP];
  return snprintf(out, cap, "%s of unit %d '%s' (%lld x %s, %s)", name, unit, uname, (long long)f[F_COUNT],
                  shardrt_dtype_name((shardrt_dtype)f[F_DTYPE]),
                  g >= 0 && g < SHARDRT__GROUP_COUNT_ ? group_names[g] : "?");
}

static double timeout_of(const shardrt_ctx *ctx) { return ctx->coll_timeout_s; }

/* Whether the last synchronisation point ran the cross-rank check (so a
 * timeout after it means a rank stopped between the check and the
 * collective). Per thread, like the error text. */
static _Thread_local bool g_checked;

shardrt_status shardrt__mpi_complete(shardrt_ctx *ctx, MPI_Request *r, const char *what) {
  double t0 = shardrt__now();
  double limit = timeout_of(ctx);
  for (;;) {
    int done = 0;
    int e = limit > 0 ? MPI_Test(r, &done, MPI_STATUS_IGNORE) : MPI_Wait(r, MPI_STATUS_IGNORE);
    if (e != MPI_SUCCESS) return shardrt__error(SHARDRT_ERR_COMM, "%s: MPI failed (error %d)", what, e);
    if (done || limit <= 0) return SHARDRT_OK;
    if (shardrt__now() - t0 > limit) {
      ctx->comm_broken = true;
      return shardrt__error(SHARDRT_ERR_TIMEOUT,
                            "rank %d waited %g s (SHARDRT_COLL_TIMEOUT_S) in %s for the other ranks: at least one never "
                            "arrived (it stopped, or waits in a collective the others do not issue). %s The context is "
                            "unusable; exit the program",
                            ctx->rank, limit, what,
                            g_checked ? "Every rank passed the SHARDRT_DEBUG=collectives check before it, so the "
                                        "missing rank stopped between that check and this collective."
                            : ctx->check_collectives
                                ? "(SHARDRT_DEBUG=collectives does not check setup agreements: the missing rank "
                                  "stopped in or before this call.)"
                                : "Run with SHARDRT_DEBUG=collectives to name the rank that did not arrive.");
    }
  }
}

/* Test hook (src/core/sync.h): SHARDRT_TEST_STALL=<point>:<rank>. */
static shardrt_status test_stall(shardrt_ctx *ctx, int op) {
  const char *s = getenv("SHARDRT_TEST_STALL");
  if (!s || !*s || op < SHARDRT__PT_GRAD_NORM || op >= SHARDRT__PT_END_) return SHARDRT_OK;
  const char *name = point_names[op - SHARDRT__PT_GRAD_NORM];
  size_t n = strlen(name);
  if (strncmp(s, name, n) != 0 || s[n] != ':' || atoi(s + n + 1) != ctx->rank) return SHARDRT_OK;
  double nap = 3 * timeout_of(ctx) + 1;
  usleep((useconds_t)(nap * 1e6));
  ctx->comm_broken = true;
  return shardrt__error(SHARDRT_ERR_TIMEOUT, "rank %d stalled at %s (test hook SHARDRT_TEST_STALL)", ctx->rank, name);
}

/* The exchange of records: every rank sends its record to every other and
 * receives theirs, point to point, so that after a timeout each rank knows
 * exactly which ranks did arrive (an all-gather would only say "not all"). */
static shardrt_status exchange(shardrt_ctx *ctx, const int64_t *mine, int64_t *all) {
  int w = ctx->world;
  MPI_Request *rq = malloc(sizeof *rq * 2 * (size_t)w);
  if (!rq) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "collective check: %d requests", 2 * w);
  int nr = 0;
  shardrt_status rc = SHARDRT_OK;
  memcpy(all + (size_t)ctx->rank * F_N, mine, sizeof(int64_t) * F_N);
  for (int q = 0; q < w && rc == SHARDRT_OK; q++) {
    if (q == ctx->rank) continue;
    if (MPI_Irecv(all + (size_t)q * F_N, F_N, MPI_INT64_T, q, SYNC_TAG, ctx->mpi_world, &rq[nr]) != MPI_SUCCESS ||
        MPI_Isend(all + (size_t)ctx->rank * F_N, F_N, MPI_INT64_T, q, SYNC_TAG, ctx->mpi_world, &rq[w + nr]) !=
            MPI_SUCCESS) /* sent from `all`, which outlives a timeout */
      rc = shardrt__error(SHARDRT_ERR_COMM, "collective check: posting messages to rank %d failed", q);
    else nr++;
  }
  if (rc != SHARDRT_OK) {
    ctx->comm_broken = true; /* posted requests stay with MPI */
    return rc;
  }
  /* Receives rq[0..nr) from the ranks in order, sends rq[w..w+nr). */
  double t0 = shardrt__now(), limit = timeout_of(ctx);
  int *arrived = calloc((size_t)w, sizeof *arrived);
  if (!arrived) {
    ctx->comm_broken = true;
    return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "collective check");
  }
  for (;;) {
    int done_all = 1;
    for (int k = 0, q = 0; k < nr; k++, q++) {
      if (q == ctx->rank) q++;
      if (arrived[q]) continue;
      int flag = 0;
      if (MPI_Test(&rq[k], &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        rc = shardrt__error(SHARDRT_ERR_COMM, "collective check: MPI_Test failed");
        break;
      }
      if (flag) arrived[q] = 1;
      else done_all = 0;
    }
    if (rc != SHARDRT_OK) break;
    if (done_all) {
      if (MPI_Waitall(nr, rq + w, MPI_STATUSES_IGNORE) != MPI_SUCCESS) /* eager sends: already complete */
        rc = shardrt__error(SHARDRT_ERR_COMM, "collective check: MPI_Waitall failed");
      break;
    }
    if (limit > 0 && shardrt__now() - t0 > limit) {
      char what[256], missing[512];
      describe(what, sizeof what, ctx, mine);
      int len = 0, nmiss = 0;
      missing[0] = '\0';
      for (int q = 0; q < w && len < (int)sizeof missing - 16; q++)
        if (q != ctx->rank && !arrived[q]) len += snprintf(missing + len, sizeof missing - (size_t)len, "%s%d", nmiss++ ? ", " : "", q);
      ctx->comm_broken = true;
      rc = shardrt__error(SHARDRT_ERR_TIMEOUT,
                          "rank%s %s never arrived at collective #%lld (%s) of the SHARDRT_DEBUG=collectives check: "
                          "rank %d waited %g s (SHARDRT_COLL_TIMEOUT_S). The missing rank stopped, or waits in a collective the others "
                          "do not issue. The context is unusable; exit the program",
                          nmiss > 1 ? "s" : "", missing, (long long)mine[F_SEQ], what, ctx->rank, limit);
      break;
    }
  }
  free(arrived);
  free(rq); /* after a timeout the pending receives stay with MPI; `all` is kept alive by the caller */
  return rc;
}

static shardrt_status check(shardrt_ctx *ctx, int op, const shardrt__unit *u, int64_t count, int dt, int group) {
  if (!ctx->check_collectives || ctx->world == 1) return SHARDRT_OK;
  if (ctx->comm_broken)
    return shardrt__error(SHARDRT_ERR_COMM, "the context's communication failed earlier (see the first error)");
  int64_t mine[F_N] = {ctx->sync_seq++, op, u ? (int64_t)(u - ctx->units) : -1, count, dt, group};
  int64_t *all = malloc(sizeof mine * (size_t)ctx->world);
  if (!all) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "collective check: %d records", ctx->world);
  shardrt_status rc = exchange(ctx, mine, all);
  if (rc != SHARDRT_OK) {
    if (!ctx->comm_broken) free(all); /* else MPI may still write into it */
    return rc;
  }
  int differ = 0;
  for (int q = 1; q < ctx->world; q++) differ |= memcmp(all, all + q * F_N, sizeof mine) != 0;
  if (differ) {
    char msg[1536];
    int len = snprintf(msg, sizeof msg, "ranks issue different collectives at check #%lld:", (long long)mine[F_SEQ]);
    for (int q = 0; q < ctx->world && len < (int)sizeof msg - 2; q++) {
      len += snprintf(msg + len, sizeof msg - (size_t)len, " rank %d: ", q);
      if (len < (int)sizeof msg - 2) len += describe(msg + len, sizeof msg - (size_t)len, ctx, all + q * F_N);
      if (len < (int)sizeof msg - 2) len += snprintf(msg + len, sizeof msg - (size_t)len, ";");
    }
    rc = shardrt__error(SHARDRT_ERR_MISMATCH,
                        "%s every rank must begin and end the same units in the same order and step together", msg);
  }
  free(all);
  return rc;
}

shardrt_status shardrt__sync_check(shardrt_ctx *ctx, shardrt__sync_op op, const shardrt__unit *u, int64_t count,
                                   int dt, int group) {
  return check(ctx, (int)op, u, count, dt, group);
}

shardrt_status shardrt__sync_point(shardrt_ctx *ctx, shardrt__sync_pt pt) {
  g_checked = false;
  if (ctx->comm_broken)
    return shardrt__error(SHARDRT_ERR_COMM, "the context's communication failed earlier (see the first error)");
  SHARDRT__CHECK(test_stall(ctx, (int)pt));
  /* Setup agreements are not checked: every rank is in the same call there,
   * and the check numbers (#N in messages) start with the first unit
   * collective. They still time out. */
  if (ctx->world == 1 || pt == SHARDRT__PT_SETUP) return SHARDRT_OK;
  g_checked = ctx->check_collectives;
  return check(ctx, (int)pt, NULL, 0, 0, 0);
}

shardrt_status shardrt__allreduce_timed(shardrt_ctx *ctx, shardrt__sync_pt pt, const void *send, void *recv, int n,
                                        MPI_Datatype dt, MPI_Op op, MPI_Comm comm, const char *what) {
  SHARDRT__CHECK(shardrt__sync_point(ctx, pt));
  MPI_Request r;
  if (MPI_Iallreduce(send, recv, n, dt, op, comm, &r) != MPI_SUCCESS)
    return shardrt__error(SHARDRT_ERR_COMM, "%s: MPI_Iallreduce failed", what);
  return shardrt__mpi_complete(ctx, &r, what);
}

shardrt_status shardrt__allgather_timed(shardrt_ctx *ctx, shardrt__sync_pt pt, const void *send, void *recv, int n,
                                        MPI_Datatype dt, MPI_Comm comm, const char *what) {
  SHARDRT__CHECK(shardrt__sync_point(ctx, pt));
  MPI_Request r;
  if (MPI_Iallgather(send, n, dt, recv, n, dt, comm, &r) != MPI_SUCCESS)
    return shardrt__error(SHARDRT_ERR_COMM, "%s: MPI_Iallgather failed", what);
  return shardrt__mpi_complete(ctx, &r, what);
}
