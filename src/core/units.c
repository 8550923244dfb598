/* SPDX-License-Identifier: Apache-2.0 */
/* Units: which modules' parameters are gathered, reduced and updated
 * together (the wrap policy), their flat layout, and their buffers. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/ctx.h"
#include "src/core/shard.h"
#include "src/strategy/strategy.h"

shardrt_status shardrt__check_unit(const shardrt_ctx *ctx, int unit, const char *fn) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "%s: ctx is NULL", fn);
  if (!ctx->finalized) return shardrt__error(SHARDRT_ERR_STATE, "%s: call shardrt_finalize first", fn);
  if (unit < 0 || unit >= ctx->nunits)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "%s: unit %d is out of range (0..%d)", fn, unit,
                          ctx->nunits - 1);
  return SHARDRT_OK;
}

/* The registered module that is the nearest dotted prefix of `name`. */
static int parent_of(const shardrt_ctx *ctx, int mi) {
  const char *name = ctx->modules[mi].name;
  int best = -1;
  size_t best_len = 0;
  for (int j = 0; j < ctx->nmodules; j++) {
    if (j == mi) continue;
    size_t l = strlen(ctx->modules[j].name);
    if (l > best_len && strncmp(name, ctx->modules[j].name, l) == 0 && name[l] == '.') {
      best = j;
      best_len = l;
    }
  }
  return best;
}

static int64_t module_numel(const shardrt_ctx *ctx, int mi) {
  int64_t n = 0;
  for (int i = 0; i < ctx->nparams; i++)
    if (ctx->params[i].module == mi) n += ctx->params[i].numel;
  return n;
}

/* Marks the wrap roots: wrapped[m] = true when module m starts a unit. */
static shardrt_status choose_wrapped(shardrt_ctx *ctx, const int *parent, bool *wrapped) {
  const shardrt_plan *p = &ctx->plan;
  if (p->flavor == SHARDRT_FLAVOR_DEEPSPEED && p->wrap_policy == SHARDRT_WRAP_NO_WRAP) {
    /* DeepSpeed partitions per module, transparently: each top-level module is a unit. */
    for (int m = 0; m < ctx->nmodules; m++) wrapped[m] = parent[m] < 0;
    return SHARDRT_OK;
  }
  if (p->wrap_policy == SHARDRT_WRAP_TRANSFORMER_BASED) {
    /* No names in the config: the program's block classes, as accelerate
     * falls back to the model's _no_split_modules
     * (FullyShardedDataParallelPlugin.set_auto_wrap_policy). */
    bool declared = p->num_wrap_classes == 0;
    int ncls = declared ? ctx->nblock_classes : p->num_wrap_classes;
    if (ncls == 0)
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "TRANSFORMER_BASED_WRAP: no class to wrap: the config names none "
                            "(fsdp_transformer_layer_cls_to_wrap) and the program declared no block classes "
                            "(shardrt_set_block_classes)");
    for (int c = 0; c < ncls; c++) {
      const char *want = declared ? ctx->block_classes[c] : p->wrap_classes[c];
      bool found = false;
      for (int m = 0; m < ctx->nmodules; m++)
        if (strcmp(ctx->modules[m].cls, want) == 0) wrapped[m] = found = true;
      if (!found) {
        char classes[1024] = "";
        for (int m = 0; m < ctx->nmodules; m++) {
          bool seen = false;
          for (int k = 0; k < m && !seen; k++) seen = strcmp(ctx->modules[k].cls, ctx->modules[m].cls) == 0;
          if (!seen && strlen(classes) + strlen(ctx->modules[m].cls) + 3 < sizeof classes) {
            if (classes[0]) strcat(classes, ", ");
            strcat(classes, ctx->modules[m].cls);
          }
        }
        return shardrt__error(SHARDRT_ERR_CONFIG,
                              "%s: could not find the transformer layer class '%s' "
                              "in the model (its classes are: %s; names are case-sensitive)",
                              declared ? "shardrt_set_block_classes" : "fsdp_transformer_layer_cls_to_wrap", want,
                              classes);
      }
    }
  } else if (p->wrap_policy == SHARDRT_WRAP_SIZE_BASED) {
    /* Bottom-up like torch's size_based_auto_wrap_policy: a module whose
     * not-yet-wrapped subtree holds >= min_num_params becomes a unit. */
    int64_t *rest = calloc((size_t)ctx->nmodules, sizeof *rest);
    int *depth = calloc((size_t)ctx->nmodules, sizeof *depth);
    if (!rest || !depth) {
      free(rest);
      free(depth);
      return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "wrap policy scratch");
    }
    int maxd = 0;
    for (int m = 0; m < ctx->nmodules; m++) {
      rest[m] = module_numel(ctx, m);
      for (int a = parent[m]; a >= 0; a = parent[a]) depth[m]++;
      if (depth[m] > maxd) maxd = depth[m];
    }
    /* Deepest first, whatever the registration order: children's leftovers
     * reach their parent before the parent decides. */
    for (int d = maxd; d >= 1; d--)
      for (int m = 0; m < ctx->nmodules; m++) {
        if (depth[m] != d) continue;
        if (rest[m] >= p->min_num_params) wrapped[m] = true;
        else rest[parent[m]] += rest[m];
      }
    free(depth);
    free(rest);
  }
  return SHARDRT_OK;
}

static shardrt_status add_unit(shardrt_ctx *ctx, const char *name, bool ignored) {
  shardrt__unit *nu = realloc(ctx->units, sizeof *nu * (size_t)(ctx->nunits + 1));
  if (!nu) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "unit table");
  ctx->units = nu;
  shardrt__unit *u = &nu[ctx->nunits++];
  memset(u, 0, sizeof *u);
  u->name = strdup(name);
  u->fwd_pos = -1;
  u->ignored = ignored;
  if (!u->name) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "unit name");
  return SHARDRT_OK;
}

shardrt_status shardrt__build_units(shardrt_ctx *ctx) {
  shardrt_status rc = SHARDRT_OK;
  int *parent = malloc(sizeof(int) * (size_t)ctx->nmodules);
  bool *wrapped = calloc((size_t)ctx->nmodules, sizeof(bool));
  int *unit_of = malloc(sizeof(int) * (size_t)ctx->nmodules);
  regex_t ignore;
  bool have_ignore = false;
  if (!parent || !wrapped || !unit_of) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "unit building scratch");
    goto out;
  }
  for (int m = 0; m < ctx->nmodules; m++) parent[m] = parent_of(ctx, m);
  SHARDRT__CHECK_GOTO(choose_wrapped(ctx, parent, wrapped), rc, out);
  if (ctx->plan.ignored_modules[0]) {
    char pat[sizeof ctx->plan.ignored_modules + 8];
    snprintf(pat, sizeof pat, "^(%s)$", ctx->plan.ignored_modules);
    if (regcomp(&ignore, pat, REG_EXTENDED | REG_NOSUB) != 0) {
      rc = shardrt__error(SHARDRT_ERR_CONFIG, "fsdp_ignored_modules: '%s' is not a valid regular expression",
                          ctx->plan.ignored_modules);
      goto out;
    }
    have_ignore = true;
  }
  /* Unit of each module: its nearest wrapped ancestor-or-self, else root.
   * Ignored modules (and their descendants) form one replicated unit. A
   * wrapped module's unit is made when first needed, so a child registered
   * before its parent finds it too. */
  int root = -1, ignored = -1;
  for (int m = 0; m < ctx->nmodules; m++) unit_of[m] = -1;
  for (int m = 0; m < ctx->nmodules; m++) {
    bool is_ignored = false;
    for (int x = m; x >= 0 && !is_ignored; x = parent[x])
      is_ignored = have_ignore && regexec(&ignore, ctx->modules[x].name, 0, NULL, 0) == 0;
    int a = m;
    while (a >= 0 && !wrapped[a]) a = parent[a];
    int *slot = is_ignored ? &ignored : a >= 0 ? &unit_of[a] : &root;
    if (*slot < 0) {
      SHARDRT__CHECK_GOTO(add_unit(ctx, is_ignored ? "ignored" : a >= 0 ? ctx->modules[a].name : "root", is_ignored),
                          rc, out);
      *slot = ctx->nunits - 1;
    }
    ctx->modules[m].unit = *slot;
  }
  for (int m = 0; m < ctx->nmodules; m++) unit_of[m] = ctx->modules[m].unit;
  /* Parameters in registration order within each unit. */
  for (int i = 0; i < ctx->nparams; i++) {
    shardrt__param *p = &ctx->params[i];
    shardrt__unit *u = &ctx->units[unit_of[p->module]];
    int *np = realloc(u->params, sizeof(int) * (size_t)(u->nparams + 1));
    if (!np) {
      rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "unit parameter list");
      goto out;
    }
    u->params = np;
    u->params[u->nparams++] = i;
    p->unit = unit_of[p->module];
    p->offset = u->numel;
    u->numel += p->numel;
  }
  /* Drop units without parameters (modules that hold none) by compaction. */
  int w = 0;
  for (int k = 0; k < ctx->nunits; k++) {
    if (ctx->units[k].nparams == 0) {
      free(ctx->units[k].name);
      continue;
    }
    for (int j = 0; j < ctx->units[k].nparams; j++) ctx->params[ctx->units[k].params[j]].unit = w;
    for (int m = 0; m < ctx->nmodules; m++)
      if (ctx->modules[m].unit == k) ctx->modules[m].unit = w;
    ctx->units[w++] = ctx->units[k];
  }
  ctx->nunits = w;
  /* Strategy and layout per unit. */
  const shardrt_plan *p = &ctx->plan;
  int g = ctx->plan.shard_group_size, r = ctx->rank % g;
  for (int k = 0; k < ctx->nunits; k++) {
    shardrt__unit *u = &ctx->units[k];
    const shardrt__strategy_i *s = shardrt__strategy_for_stage(p->zero_stage);
    if (u->ignored) s = &shardrt__strategy_replicate;
    /* DeepSpeed keeps small parameters gathered (stage3_param_persistence_threshold). */
    else if (s == &shardrt__strategy_zero3 && p->flavor == SHARDRT_FLAVOR_DEEPSPEED &&
             u->numel < p->param_persistence_threshold)
      s = &shardrt__strategy_zero2;
    u->strat = s;
    u->shard_params = s == &shardrt__strategy_zero3;
    u->shard_grads = s == &shardrt__strategy_zero2 || s == &shardrt__strategy_zero3;
    u->shard_optim = s != &shardrt__strategy_replicate;
    shardrt__shard sh = shardrt__shard_of(u->numel, g, r, SHARDRT__ALIGN_ELEMS);
    u->padded = sh.padded;
    u->shard_n = sh.size;
    u->shard_off = sh.offset;
    u->opt_off = u->shard_optim ? u->shard_off : 0;
    u->opt_n = u->shard_optim ? u->shard_n : u->padded;
  }
out:
  if (have_ignore) regfree(&ignore);
  free(parent);
  free(wrapped);
  free(unit_of);
  return rc;
}

static shardrt__loc offload_loc(shardrt_offload o) {
  return o == SHARDRT_OFFLOAD_NVME ? SHARDRT__LOC_NVME : o == SHARDRT_OFFLOAD_CPU ? SHARDRT__LOC_HOST
                                                                                 : SHARDRT__LOC_DEVICE;
}

shardrt_status shardrt__alloc_unit_state(shardrt_ctx *ctx, shardrt__unit *u) {
  const shardrt_plan *p = &ctx->plan;
  shardrt_dtype pdt = p->master_weights ? p->compute_dtype : p->flat_param_dtype;
  shardrt__loc ploc = offload_loc(p->offload_params), oloc = offload_loc(p->offload_optimizer);
  /* An offloaded optimizer without its own copy updates the params in place:
   * then both live together (FSDP's all-or-nothing offload). */
  if (!p->master_weights && oloc != SHARDRT__LOC_DEVICE && ploc == SHARDRT__LOC_DEVICE) ploc = oloc;
  SHARDRT__CHECK(shardrt__buf_alloc(ctx, &u->param, SHARDRT__MEM_PARAMS, ploc, pdt,
                                    u->shard_params ? u->shard_n : u->padded));
  if (p->master_weights)
    SHARDRT__CHECK(shardrt__buf_alloc(ctx, &u->master, SHARDRT__MEM_MASTER, oloc, p->optimizer_dtype, u->opt_n));
  SHARDRT__CHECK(shardrt__buf_alloc(ctx, &u->grad, SHARDRT__MEM_GRADS, oloc, pdt,
                                    u->shard_grads ? u->shard_n : u->padded));
  bool adam = ctx->opt.kind == SHARDRT_OPTIM_ADAMW;
  if (adam || ctx->opt.momentum > 0)
    SHARDRT__CHECK(shardrt__buf_alloc(ctx, &u->m, SHARDRT__MEM_OPTIM, oloc, p->optimizer_dtype, u->opt_n));
  if (adam) SHARDRT__CHECK(shardrt__buf_alloc(ctx, &u->v, SHARDRT__MEM_OPTIM, oloc, p->optimizer_dtype, u->opt_n));
  shardrt__buf *all[] = {&u->param, &u->master, &u->grad, &u->m, &u->v};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) SHARDRT__CHECK(shardrt__buf_zero(ctx, all[i]));
  /* The program's param view can be the stored params themselves. */
  u->full_alias = !u->shard_params && pdt == p->compute_dtype && ploc == SHARDRT__LOC_DEVICE;
  if (u->full_alias) u->full = u->param;
  return SHARDRT_OK;
}
