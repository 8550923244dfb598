/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/ckpt/ckpt_internal.h"
#include <limits.h>

#include "src/core/ctx.h"
#include "src/core/sync.h"
#include "src/core/error.h"

#define MSG_LEN 1024

/* The checkpoint code's own collectives run on the context's world
 * communicator whatever the comm backend, each after a synchronisation
 * point and within SHARDRT_COLL_TIMEOUT_S (src/core/sync.h). */
static shardrt_status run(shardrt_ctx *ctx, int e, MPI_Request *r, const char *what) {
  if (e != MPI_SUCCESS) return shardrt__error(SHARDRT_ERR_COMM, "checkpoint: %s failed to start (MPI error %d)", what, e);
  return shardrt__mpi_complete(ctx, r, what);
}

shardrt_status shardrt__ck_agree(shardrt_ctx *ctx, shardrt_status rc) {
  int rank = shardrt_rank(ctx), world = shardrt_world_size(ctx);
  /* The lowest failing rank wins: encode it so that max() picks it. */
  int64_t v = rc != SHARDRT_OK ? (int64_t)(world - rank) : 0;
  /* The local error text survives the collectives below. */
  char mine[MSG_LEN];
  snprintf(mine, sizeof mine, "%s", rc != SHARDRT_OK ? shardrt_last_error() : "");
  MPI_Request r;
  shardrt_status crc = shardrt__sync_point(ctx, SHARDRT__PT_CKPT);
  if (crc == SHARDRT_OK)
    crc = run(ctx, MPI_Iallreduce(MPI_IN_PLACE, &v, 1, MPI_INT64_T, MPI_MAX, ctx->mpi_world, &r), &r,
              "a checkpoint agreement (status all-reduce)");
  if (crc != SHARDRT_OK) return shardrt__error_wrap(crc, "checkpoint: agreeing on a status across ranks");
  if (v == 0) return SHARDRT_OK;
  int root = world - (int)v;
  static _Thread_local struct {
    int64_t rc;
    char msg[MSG_LEN];
  } m; /* static: after a timeout MPI may still write into it */
  memset(&m, 0, sizeof m);
  if (rank == root) {
    m.rc = rc;
    snprintf(m.msg, sizeof m.msg, "%s", mine);
  }
  crc = run(ctx, MPI_Ibcast(&m, (int)sizeof m, MPI_BYTE, root, ctx->mpi_world, &r), &r,
            "a checkpoint agreement (error broadcast)");
  if (crc != SHARDRT_OK) return crc;
  if (rank == root) return shardrt__error(rc, "%s", mine);
  return shardrt__error((shardrt_status)m.rc, "rank %d: %s", root, m.msg);
}

shardrt_status shardrt__ck_bcast_str(shardrt_ctx *ctx, char *buf, size_t len) {
  if (len > (size_t)INT_MAX) return shardrt__error(SHARDRT_ERR_INTERNAL, "checkpoint broadcast of %zu bytes", len);
  SHARDRT__CHECK(shardrt__sync_point(ctx, SHARDRT__PT_CKPT));
  MPI_Request r;
  return run(ctx, MPI_Ibcast(buf, (int)len, MPI_BYTE, 0, ctx->mpi_world, &r), &r, "a checkpoint broadcast");
}

shardrt_status shardrt__ck_allgather(shardrt_ctx *ctx, const void *send, void *recv, size_t bytes) {
  if (bytes > (size_t)INT_MAX) return shardrt__error(SHARDRT_ERR_INTERNAL, "checkpoint all-gather of %zu bytes", bytes);
  SHARDRT__CHECK(shardrt__sync_point(ctx, SHARDRT__PT_CKPT));
  MPI_Request r;
  return run(ctx, MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, ctx->mpi_world, &r), &r,
             "a checkpoint all-gather");
}

void shardrt__ck_shape_str(int ndim, const int64_t *shape, char *buf, size_t len) {
  size_t at = 0;
  at += (size_t)snprintf(buf, len, "[");
  for (int d = 0; d < ndim && at < len; d++)
    at += (size_t)snprintf(buf + at, len - at, d ? ", %lld" : "%lld", (long long)shape[d]);
  if (at < len) snprintf(buf + at, len - at, "]");
}

shardrt_status shardrt__ck_describe(shardrt_ctx *ctx, shardrt__ck_meta *m, char **plan_json) {
  memset(m, 0, sizeof *m);
  *plan_json = NULL;
  const shardrt_plan *plan = shardrt_get_plan(ctx);
  m->world_size = shardrt_world_size(ctx);
  snprintf(m->strategy, sizeof m->strategy, "%s", shardrt_strategy_name(plan->strategy));
  int need = shardrt_plan_format(plan, false, NULL, 0);
  if (need > 0) {
    *plan_json = malloc((size_t)need + 1);
    if (!*plan_json) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "checkpoint: plan text (%d bytes)", need);
    shardrt_plan_format(plan, false, *plan_json, (size_t)need + 1);
  }
  m->plan_json = *plan_json;
  shardrt__train_state_get(ctx, &m->ts);
  m->nunits = shardrt_num_units(ctx);
  m->nparams = shardrt_num_params(ctx);
  m->units = calloc((size_t)m->nunits + 1, sizeof *m->units);
  m->params = calloc((size_t)m->nparams + 1, sizeof *m->params);
  if (!m->units || !m->params) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "checkpoint: model description");
  for (int u = 0; u < m->nunits; u++) {
    shardrt_unit_info ui;
    SHARDRT__CHECK(shardrt_unit_info_get(ctx, u, &ui));
    m->units[u].name = (char *)ui.name; /* owned by the context */
    m->units[u].numel = ui.numel;
  }
  for (int i = 0; i < m->nparams; i++) {
    shardrt_param_info pi;
    SHARDRT__CHECK(shardrt_param_info_get(ctx, i, &pi));
    shardrt__ck_param *p = &m->params[i];
    p->name = (char *)pi.name;
    p->unit = pi.unit;
    p->ndim = pi.ndim;
    memcpy(p->shape, pi.shape, sizeof p->shape);
    p->numel = pi.numel;
    p->offset = pi.offset;
  }
  return SHARDRT_OK;
}

void shardrt__ck_describe_free(shardrt__ck_meta *m, char *plan_json) {
  if (m->units)
    for (int u = 0; u < m->nunits; u++) free(m->units[u].pieces);
  free(m->units);
  free(m->params);
  free(m->files);
  free(plan_json);
  memset(m, 0, sizeof *m);
}

int64_t shardrt__ck_max_unit_numel(const shardrt_ctx *ctx) {
  int64_t max_numel = 0;
  for (int u = 0; u < shardrt_num_units(ctx); u++) {
    shardrt_unit_info ui;
    if (shardrt_unit_info_get(ctx, u, &ui) == SHARDRT_OK && ui.numel > max_numel) max_numel = ui.numel;
  }
  return max_numel;
}
