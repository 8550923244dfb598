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

#include "src/core/ctx.h"

static const char *const op_names[SHARDRT__SYNC_COUNT_] = {
    [SHARDRT__SYNC_ALL_GATHER] = "all_gather",     [SHARDRT__SYNC_REDUCE_SCATTER] = "reduce_scatter",
    [SHARDRT__SYNC_ALL_REDUCE] = "all_reduce",     [SHARDRT__SYNC_STEP] = "shardrt_step",
    [SHARDRT__SYNC_SAVE] = "checkpoint save",      [SHARDRT__SYNC_LOAD] = "checkpoint load",
    [SHARDRT__SYNC_USER_ALLREDUCE] = "shardrt_allreduce_sum_f64",
};
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

/* Completes a request within the context's timeout (0: no limit). */
static shardrt_status finish(shardrt_ctx *ctx, MPI_Request *r, const int64_t *mine) {
  double t0 = shardrt__now();
  for (;;) {
    int done = 0;
    if (MPI_Test(r, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      return shardrt__error(SHARDRT_ERR_COMM, "collective check: MPI_Test failed");
    if (done) return SHARDRT_OK;
    if (ctx->coll_timeout_s > 0 && shardrt__now() - t0 > ctx->coll_timeout_s) {
      char what[256];
      describe(what, sizeof what, ctx, mine);
      ctx->comm_broken = true;
      return shardrt__error(SHARDRT_ERR_TIMEOUT,
                            "rank %d waited %.0f s at collective #%lld (%s) for the other ranks: at least one never "
                            "arrived (it stopped, or waits in a collective the others do not issue). The context is "
                            "unusable; exit the program",
                            ctx->rank, ctx->coll_timeout_s, (long long)mine[F_SEQ], what);
    }
  }
}

shardrt_status shardrt__sync_check(shardrt_ctx *ctx, shardrt__sync_op op, const shardrt__unit *u, int64_t count,
                                   int dt, int group) {
  if (!ctx->check_collectives || ctx->world == 1) return SHARDRT_OK;
  if (ctx->comm_broken)
    return shardrt__error(SHARDRT_ERR_COMM, "the context's communication failed earlier (see the first error)");
  int64_t mine[F_N] = {ctx->sync_seq++, op, u ? (int64_t)(u - ctx->units) : -1, count, dt, group};
  int64_t *all = malloc(sizeof mine * (size_t)ctx->world);
  if (!all) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "collective check: %d records", ctx->world);
  MPI_Request r;
  shardrt_status rc = SHARDRT_OK;
  if (MPI_Iallgather(mine, F_N, MPI_INT64_T, all, F_N, MPI_INT64_T, ctx->mpi_world, &r) != MPI_SUCCESS)
    rc = shardrt__error(SHARDRT_ERR_COMM, "collective check: MPI_Iallgather failed");
  if (rc == SHARDRT_OK) rc = finish(ctx, &r, mine);
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
