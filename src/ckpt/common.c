/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/ckpt/ckpt_internal.h"
#include "src/comm/comm.h"
#include "src/core/error.h"

#define MSG_LEN 1024

shardrt_status shardrt__ck_agree(shardrt_ctx *ctx, shardrt_status rc) {
  shardrt__comm *c = shardrt__ctx_comm(ctx);
  int rank = shardrt_rank(ctx), world = shardrt_world_size(ctx);
  /* The lowest failing rank wins: encode it so that max() picks it. */
  int64_t v[2] = {rc != SHARDRT_OK ? (int64_t)(world - rank) : 0, 0};
  shardrt_status crc = c->i->allreduce_host_max_i64(c->self, v, 1);
  if (crc != SHARDRT_OK) return shardrt__error_wrap(crc, "checkpoint: agreeing on a status across ranks");
  if (v[0] == 0) return SHARDRT_OK;
  int root = world - (int)v[0];
  struct {
    int64_t rc;
    char msg[MSG_LEN];
  } m;
  memset(&m, 0, sizeof m);
  if (rank == root) {
    m.rc = rc;
    snprintf(m.msg, sizeof m.msg, "%s", shardrt_last_error());
  }
  crc = c->i->bcast_host(c->self, &m, sizeof m, root);
  if (crc != SHARDRT_OK) return crc;
  if (rank == root) return rc;
  return shardrt__error((shardrt_status)m.rc, "rank %d: %s", root, m.msg);
}

shardrt_status shardrt__ck_bcast_str(shardrt_ctx *ctx, char *buf, size_t len) {
  shardrt__comm *c = shardrt__ctx_comm(ctx);
  return c->i->bcast_host(c->self, buf, len, 0);
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
