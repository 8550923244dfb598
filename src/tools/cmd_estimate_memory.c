/* SPDX-License-Identifier: Apache-2.0 */
/* `shardrt estimate-memory`: per-rank bytes by category for every strategy
 * side by side, from a parameter count, a world size, the precision plan
 * and offload — the same rules the runtime allocates by (shardrt_plan_resolve
 * decides the dtypes), without padding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardrt.h"
#include "src/tools/tool.h"

typedef struct est {
  double params, grads, master, optim, gathered, device, host;
} est;

static int usage(FILE *f) {
  fprintf(f,
          "usage: shardrt estimate-memory --num_params N [--world_size W] [--num_machines M]\n"
          "         [--config_file F] [--mixed_precision no|fp16|bf16] [--param_dtype fp32|bf16|fp16]\n"
          "         [--flavor fsdp|deepspeed] [--optimizer adamw|sgd] [--largest_unit N]\n"
          "         [--offload_param_device none|cpu|nvme] [--offload_optimizer_device none|cpu|nvme]\n"
          "         [--format table|json]\n"
          "Per-rank bytes for params, grads, master copy, optimizer state and the peak of gathered\n"
          "full-unit buffers, for every strategy (ZeRO-0..3, hybrid over num_machines groups).\n");
  return f == stderr ? 2 : 0;
}

static est estimate(const shardrt_plan *p, double n, int world, double largest, bool adam) {
  est e = {0};
  int g = p->hybrid ? p->shard_group_size : world;
  double nsh = n / g;
  size_t cdt = shardrt_dtype_size(p->compute_dtype), odt = shardrt_dtype_size(p->optimizer_dtype);
  size_t pdt = p->master_weights ? cdt : shardrt_dtype_size(p->flat_param_dtype);
  e.params = (double)pdt * (p->shard_params ? nsh : n);
  e.grads = (double)pdt * (p->shard_grads ? nsh : n);
  e.master = p->master_weights ? (double)odt * (p->shard_optimizer ? nsh : n) : 0;
  e.optim = (adam ? 2.0 : 1.0) * (double)odt * (p->shard_optimizer ? nsh : n);
  /* Sharded params: one gathered unit (plus one prefetched) at compute dtype. */
  e.gathered = p->shard_params ? 2.0 * largest * (double)cdt : (pdt != cdt ? (double)cdt * n : 0);
  e.host = (p->offload_params != SHARDRT_OFFLOAD_NONE ? e.params : 0) +
           (p->offload_optimizer != SHARDRT_OFFLOAD_NONE ? e.grads + e.master + e.optim : 0);
  e.device = e.params + e.grads + e.master + e.optim + e.gathered - e.host;
  return e;
}

static const char *human(double b, char *buf, size_t len) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) b /= 1024, i++;
  snprintf(buf, len, "%.2f %s", b, u[i]);
  return buf;
}

int shardrt_cmd_estimate_memory(int argc, char **argv) {
  shardrt_plan base;
  if (shardrt_plan_from_args(&argc, argv, &base) != SHARDRT_OK) {
    fprintf(stderr, "shardrt estimate-memory: error: %s\n", shardrt_last_error());
    return 2;
  }
  double n = 0, largest = 0;
  int world = base.num_processes > 0 ? base.num_processes : 8;
  bool json = false, adam = true, flavor_set = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
    if (!v) {
      fprintf(stderr, "shardrt estimate-memory: error: unknown argument or missing value: '%s'\n", a);
      return usage(stderr);
    }
    char *end = NULL;
    if (!strcmp(a, "--num_params")) n = strtod(v, &end);
    else if (!strcmp(a, "--largest_unit")) largest = strtod(v, &end);
    else if (!strcmp(a, "--world_size")) world = (int)strtol(v, &end, 10);
    else if (!strcmp(a, "--format")) {
      if (strcmp(v, "json") && strcmp(v, "table")) {
        fprintf(stderr, "shardrt estimate-memory: error: --format '%s' (allowed: table, json)\n", v);
        return 2;
      }
      json = !strcmp(v, "json");
    } else if (!strcmp(a, "--optimizer")) {
      if (strcmp(v, "adamw") && strcmp(v, "sgd")) {
        fprintf(stderr, "shardrt estimate-memory: error: --optimizer '%s' (allowed: adamw, sgd)\n", v);
        return 2;
      }
      adam = !strcmp(v, "adamw");
    } else if (!strcmp(a, "--flavor")) {
      if (strcmp(v, "fsdp") && strcmp(v, "deepspeed")) {
        fprintf(stderr, "shardrt estimate-memory: error: --flavor '%s' (allowed: fsdp, deepspeed)\n", v);
        return 2;
      }
      base.flavor = strcmp(v, "fsdp") ? SHARDRT_FLAVOR_DEEPSPEED : SHARDRT_FLAVOR_FSDP;
      flavor_set = true;
    } else {
      fprintf(stderr, "shardrt estimate-memory: error: unknown argument '%s'\n", a);
      return usage(stderr);
    }
    if (end && *end) {
      fprintf(stderr, "shardrt estimate-memory: error: %s '%s' is not a number\n", a, v);
      return 2;
    }
    i++;
  }
  (void)flavor_set;
  if (!(n >= 1) || world < 1) {
    fprintf(stderr, "shardrt estimate-memory: error: --num_params must be >= 1 and --world_size >= 1\n");
    return usage(stderr);
  }
  if (largest <= 0) largest = n;
  base.num_processes = world;
  est e[SHARDRT_STRATEGY_COUNT_];
  bool ok[SHARDRT_STRATEGY_COUNT_];
  for (int s = 0; s < SHARDRT_STRATEGY_COUNT_; s++) {
    shardrt_plan p = base;
    p.strategy = (shardrt_strategy)s;
    p.shard_group_size = 0;
    ok[s] = shardrt_plan_resolve(&p, world) == SHARDRT_OK;
    if (ok[s]) e[s] = estimate(&p, n, world, largest, adam);
  }
  const char *rows[] = {"params", "grads", "master", "optimizer", "gathered_peak", "total_device", "total_host"};
  if (json) {
    printf("{\"num_params\": %.0f, \"world_size\": %d, \"strategies\": {", n, world);
    for (int s = 0; s < SHARDRT_STRATEGY_COUNT_; s++) {
      if (!ok[s]) continue;
      double *v = &e[s].params;
      printf("%s\n  \"%s\": {", s ? "," : "", shardrt_strategy_name((shardrt_strategy)s));
      for (int r = 0; r < 7; r++) printf("%s\"%s\": %.0f", r ? ", " : "", rows[r], v[r]);
      printf("}");
    }
    printf("\n}}\n");
    return 0;
  }
  printf("per-rank memory for %.0f parameters, world size %d (%s flavour, mixed precision %s, load dtype %s)\n", n,
         world, base.flavor == SHARDRT_FLAVOR_DEEPSPEED ? "deepspeed" : "fsdp",
         shardrt_mixed_precision_name(base.mixed_precision), shardrt_dtype_name(base.load_dtype));
  printf("%-15s", "");
  for (int s = 0; s < SHARDRT_STRATEGY_COUNT_; s++)
    if (ok[s]) printf(" %19s", shardrt_strategy_name((shardrt_strategy)s));
  printf("\n");
  for (int r = 0; r < 7; r++) {
    printf("%-15s", rows[r]);
    for (int s = 0; s < SHARDRT_STRATEGY_COUNT_; s++) {
      char b[32];
      if (ok[s]) printf(" %19s", human((&e[s].params)[r], b, sizeof b));
    }
    printf("\n");
  }
  return 0;
}
