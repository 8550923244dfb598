/* SPDX-License-Identifier: Apache-2.0 */
/* The model registry: modules and parameters as the program declares them,
 * and finalize(), which checks that every rank declared the same model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/ctx.h"
#include "src/core/sync.h"

static shardrt_status grow(void **arr, int *cap, int need, size_t elem) {
  if (need <= *cap) return SHARDRT_OK;
  int ncap = *cap ? *cap * 2 : 16;
  while (ncap < need) ncap *= 2;
  void *p = realloc(*arr, (size_t)ncap * elem);
  if (!p) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "registry growth to %d entries failed", ncap);
  *arr = p;
  *cap = ncap;
  return SHARDRT_OK;
}

static bool valid_name(const char *s) {
  if (!s || !*s || strlen(s) >= 256) return false;
  for (const char *c = s; *c; c++)
    if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) return false;
  return true;
}

shardrt_status shardrt_add_module(shardrt_ctx *ctx, const char *name, const char *cls, int *module_id) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_add_module: ctx is NULL");
  if (ctx->finalized) return shardrt__error(SHARDRT_ERR_STATE, "shardrt_add_module('%s') after shardrt_finalize", name ? name : "");
  if (!valid_name(name) || !valid_name(cls))
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "module name '%s' / class '%s': names must be 1-255 printable characters without quotes "
                          "or backslashes",
                          name ? name : "(null)", cls ? cls : "(null)");
  for (int i = 0; i < ctx->nmodules; i++)
    if (strcmp(ctx->modules[i].name, name) == 0)
      return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "module '%s' is registered twice", name);
  SHARDRT__CHECK(grow((void **)&ctx->modules, &ctx->cap_modules, ctx->nmodules + 1, sizeof *ctx->modules));
  shardrt__module *m = &ctx->modules[ctx->nmodules];
  m->name = strdup(name);
  m->cls = strdup(cls);
  m->unit = -1;
  if (!m->name || !m->cls) {
    free(m->name);
    free(m->cls);
    return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "module name copy failed");
  }
  if (module_id) *module_id = ctx->nmodules;
  ctx->nmodules++;
  return SHARDRT_OK;
}

shardrt_status shardrt_set_block_classes(shardrt_ctx *ctx, const char *list) {
  if (!ctx || !list) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_set_block_classes: NULL argument");
  if (ctx->finalized) return shardrt__error(SHARDRT_ERR_STATE, "shardrt_set_block_classes after shardrt_finalize");
  char names[SHARDRT_MAX_WRAP_CLASSES][SHARDRT_NAME_MAX];
  int n = 0;
  for (const char *s = list; *s;) {
    while (*s == ' ' || *s == ',') s++;
    if (!*s) break;
    const char *e = s;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > s && t[-1] == ' ') t--;
    size_t len = (size_t)(t - s);
    if (n == SHARDRT_MAX_WRAP_CLASSES || len >= SHARDRT_NAME_MAX)
      return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                            "shardrt_set_block_classes('%.64s'): at most %d names of up to %d bytes", list,
                            SHARDRT_MAX_WRAP_CLASSES, SHARDRT_NAME_MAX - 1);
    memcpy(names[n], s, len);
    names[n][len] = '\0';
    if (!valid_name(names[n]))
      return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                            "shardrt_set_block_classes: '%s' is not a class name (printable, no quotes)", names[n]);
    n++;
    s = e;
  }
  memcpy(ctx->block_classes, names, sizeof names);
  ctx->nblock_classes = n;
  return SHARDRT_OK;
}

shardrt_status shardrt_add_param(shardrt_ctx *ctx, int module_id, const char *name, int ndim, const int64_t *shape,
                                 int *param_id) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_add_param: ctx is NULL");
  if (ctx->finalized) return shardrt__error(SHARDRT_ERR_STATE, "shardrt_add_param('%s') after shardrt_finalize", name ? name : "");
  if (module_id < 0 || module_id >= ctx->nmodules)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_add_param('%s'): module id %d is not registered (0..%d)",
                          name ? name : "", module_id, ctx->nmodules - 1);
  if (!valid_name(name))
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "parameter name '%s' is not a valid name", name ? name : "(null)");
  if (ndim < 1 || ndim > 8 || !shape)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "parameter '%s': ndim %d must be 1..8 with a shape", name, ndim);
  int64_t numel = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 1 || shape[d] > ((int64_t)1 << 40) || numel > ((int64_t)1 << 40) / shape[d])
      return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "parameter '%s': dimension %d is %lld (must be >= 1 and the "
                            "size below 2^40 elements)", name, d, (long long)shape[d]);
    numel *= shape[d];
  }
  char full[600];
  snprintf(full, sizeof full, "%s.%s", ctx->modules[module_id].name, name);
  for (int i = 0; i < ctx->nparams; i++)
    if (strcmp(ctx->params[i].name, full) == 0)
      return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "parameter '%s' is registered twice", full);
  SHARDRT__CHECK(grow((void **)&ctx->params, &ctx->cap_params, ctx->nparams + 1, sizeof *ctx->params));
  shardrt__param *p = &ctx->params[ctx->nparams];
  memset(p, 0, sizeof *p);
  p->name = strdup(full);
  if (!p->name) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "parameter name copy failed");
  p->module = module_id;
  p->ndim = ndim;
  memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
  p->numel = numel;
  p->unit = -1;
  if (param_id) *param_id = ctx->nparams;
  ctx->nparams++;
  return SHARDRT_OK;
}

/* FNV-1a over everything that must agree across ranks. */
static uint64_t fnv(uint64_t h, const void *data, size_t n) {
  const unsigned char *c = data;
  for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
  return h;
}

static shardrt_status check_same_model(shardrt_ctx *ctx) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < ctx->nparams; i++) {
    const shardrt__param *p = &ctx->params[i];
    h = fnv(h, p->name, strlen(p->name) + 1);
    h = fnv(h, &p->ndim, sizeof p->ndim);
    h = fnv(h, p->shape, (size_t)p->ndim * sizeof p->shape[0]);
  }
  for (int i = 0; i < ctx->nmodules; i++) h = fnv(h, ctx->modules[i].cls, strlen(ctx->modules[i].cls) + 1);
  uint64_t *all = malloc(sizeof(uint64_t) * (size_t)ctx->world);
  if (!all) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "finalize: hash buffer");
  shardrt_status arc = shardrt__allgather_timed(ctx, SHARDRT__PT_SETUP, &h, all, 1, MPI_UINT64_T, ctx->mpi_world,
                                               "shardrt_finalize (model check)");
  if (arc != SHARDRT_OK) return arc; /* broken: `all` stays with MPI */
  int bad = -1;
  for (int r = 0; r < ctx->world; r++)
    if (all[r] != all[0]) {
      bad = r;
      break;
    }
  free(all);
  if (bad < 0) return SHARDRT_OK;
  /* Name the first differing parameter: compare counts, then each shape. */
  int lo = 0, hi = 0;
  SHARDRT__CHECK(shardrt__allreduce_timed(ctx, SHARDRT__PT_SETUP, &ctx->nparams, &lo, 1, MPI_INT, MPI_MIN, ctx->mpi_world,
                                          "shardrt_finalize (model check)"));
  SHARDRT__CHECK(shardrt__allreduce_timed(ctx, SHARDRT__PT_SETUP, &ctx->nparams, &hi, 1, MPI_INT, MPI_MAX, ctx->mpi_world,
                                          "shardrt_finalize (model check)"));
  if (lo != hi) /* every rank sees it: none goes on into the per-parameter check */
    return shardrt__error(SHARDRT_ERR_MISMATCH,
                          "ranks registered different models: rank %d has %d parameters, the ranks have between %d "
                          "and %d (every rank must register the same modules and parameters)",
                          ctx->rank, ctx->nparams, lo, hi);
  for (int i = 0; i < ctx->nparams; i++) {
    int64_t mine[9] = {ctx->params[i].ndim};
    memcpy(mine + 1, ctx->params[i].shape, sizeof ctx->params[i].shape);
    int64_t maxv[9], minv[9];
    SHARDRT__CHECK(shardrt__allreduce_timed(ctx, SHARDRT__PT_SETUP, mine, maxv, 9, MPI_INT64_T, MPI_MAX, ctx->mpi_world,
                                            "shardrt_finalize (model check)"));
    SHARDRT__CHECK(shardrt__allreduce_timed(ctx, SHARDRT__PT_SETUP, mine, minv, 9, MPI_INT64_T, MPI_MIN, ctx->mpi_world,
                                            "shardrt_finalize (model check)"));
    if (memcmp(maxv, minv, sizeof maxv) != 0)
      return shardrt__error(SHARDRT_ERR_MISMATCH,
                            "ranks registered different shapes for parameter %d '%s' (rank %d: ndim %lld, first dim "
                            "%lld; another rank differs)",
                            i, ctx->params[i].name, ctx->rank, (long long)mine[0], (long long)mine[1]);
  }
  return shardrt__error(SHARDRT_ERR_MISMATCH,
                        "ranks registered different models (names or module classes differ between rank 0 and rank %d)",
                        bad);
}

shardrt_status shardrt_finalize(shardrt_ctx *ctx) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_finalize: ctx is NULL");
  if (ctx->finalized) return shardrt__error(SHARDRT_ERR_STATE, "shardrt_finalize called twice");
  if (ctx->finalize_failed)
    return shardrt__error(SHARDRT_ERR_STATE, "shardrt_finalize failed before; destroy this context and start again");
  if (ctx->nparams == 0)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_finalize: no parameters were registered");
  SHARDRT__CHECK(check_same_model(ctx));
  shardrt_status rc = shardrt__build_units(ctx);
  for (int i = 0; rc == SHARDRT_OK && i < ctx->nunits; i++) rc = shardrt__alloc_unit_state(ctx, &ctx->units[i]);
  /* Allocation can fail on one rank only: agree before anyone proceeds. */
  int bad = rc != SHARDRT_OK, any = 0;
  shardrt_status arc = shardrt__allreduce_timed(ctx, SHARDRT__PT_SETUP, &bad, &any, 1, MPI_INT, MPI_MAX, ctx->mpi_world,
                                                "shardrt_finalize (agreement)");
  if (arc != SHARDRT_OK) rc = arc;
  else if (any && !bad) rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "finalize failed on another rank");
  if (rc != SHARDRT_OK) {
    ctx->finalize_failed = true;
    return rc;
  }
  ctx->order = malloc(sizeof(int) * (size_t)ctx->nunits);
  if (!ctx->order) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "finalize: order table");
  ctx->finalized = true;
  return SHARDRT_OK;
}

int shardrt_num_params(const shardrt_ctx *ctx) { return ctx->nparams; }
int shardrt_num_units(const shardrt_ctx *ctx) { return ctx->nunits; }
int64_t shardrt_total_numel(const shardrt_ctx *ctx) {
  int64_t n = 0;
  for (int i = 0; i < ctx->nparams; i++) n += ctx->params[i].numel;
  return n;
}

shardrt_status shardrt_find_param(const shardrt_ctx *ctx, const char *full_name, int *param_id) {
  for (int i = 0; full_name && i < ctx->nparams; i++)
    if (strcmp(ctx->params[i].name, full_name) == 0) {
      *param_id = i;
      return SHARDRT_OK;
    }
  return shardrt__error(SHARDRT_ERR_NOT_FOUND, "no parameter named '%s'", full_name ? full_name : "(null)");
}

shardrt_status shardrt_param_info_get(const shardrt_ctx *ctx, int pid, shardrt_param_info *out) {
  if (!ctx || !out || pid < 0 || pid >= ctx->nparams)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "parameter id %d is out of range (0..%d)", pid,
                          ctx ? ctx->nparams - 1 : -1);
  const shardrt__param *p = &ctx->params[pid];
  memset(out, 0, sizeof *out);
  out->name = p->name;
  out->module_id = p->module;
  out->unit = p->unit;
  out->ndim = p->ndim;
  memcpy(out->shape, p->shape, sizeof p->shape);
  out->numel = p->numel;
  out->offset = p->offset;
  return SHARDRT_OK;
}

shardrt_status shardrt_unit_info_get(const shardrt_ctx *ctx, int unit, shardrt_unit_info *out) {
  SHARDRT__CHECK(shardrt__check_unit(ctx, unit, "shardrt_unit_info_get"));
  const shardrt__unit *u = &ctx->units[unit];
  out->name = u->name;
  out->num_params = u->nparams;
  out->numel = u->numel;
  out->padded_numel = u->padded;
  out->shard_numel = u->shard_n;
  out->shard_offset = u->shard_off;
  out->sharded_params = u->shard_params;
  return SHARDRT_OK;
}
