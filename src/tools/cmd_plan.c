/* SPDX-License-Identifier: Apache-2.0 */
/* `shardrt plan`: load a config with overrides, resolve it, print the plan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardrt.h"
#include "src/config/config_internal.h"
#include "src/tools/tool.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: shardrt plan --config_file FILE [OVERRIDES] [--format json|table] [--world_size N]\n"
          "  Resolves the plan the config (and accelerate-launch style overrides such as\n"
          "  --fsdp_sharding_strategy or --zero_stage) gives at world size N (default: the\n"
          "  config's num_processes) and prints it. Values a DeepSpeed JSON leaves \"auto\"\n"
          "  that depend on the program print as such.\n");
}

int shardrt_cmd_plan(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return usage(stdout), 0;
  shardrt_plan plan;
  if (shardrt_plan_from_args(&argc, argv, &plan) != SHARDRT_OK) {
    fprintf(stderr, "shardrt plan: error: %s\n", shardrt_last_error());
    return 1;
  }
  bool table = false;
  long world = 0;
  bool world_given = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = NULL;
    if (strncmp(a, "--format", 8) == 0 && (a[8] == '=' || a[8] == '\0')) {
      v = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v || (strcmp(v, "json") != 0 && strcmp(v, "table") != 0)) {
        fprintf(stderr, "shardrt plan: error: --format needs json or table (got '%s')\n", v ? v : "nothing");
        return 2;
      }
      table = strcmp(v, "table") == 0;
    } else if (strncmp(a, "--world_size", 12) == 0 && (a[12] == '=' || a[12] == '\0')) {
      v = a[12] == '=' ? a + 13 : (i + 1 < argc ? argv[++i] : NULL);
      char *end = NULL;
      world = v ? strtol(v, &end, 10) : 0;
      if (!v || !*v || *end || world < 1 || world > (1 << 20)) {
        fprintf(stderr, "shardrt plan: error: --world_size needs an integer >= 1 (got '%s')\n", v ? v : "nothing");
        return 2;
      }
      world_given = true;
    } else {
      fprintf(stderr, "shardrt plan: error: unknown argument '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!world_given && plan.num_processes > 0) world = plan.num_processes;
  if (shardrt_plan_resolve(&plan, (int)world) != SHARDRT_OK) {
    fprintf(stderr, "shardrt plan: error: %s\n", shardrt_last_error());
    return 1;
  }
  int need = shardrt_plan_format(&plan, table, NULL, 0);
  if (need < 0) {
    fprintf(stderr, "shardrt plan: error: could not format the plan\n");
    return 1;
  }
  char *buf = malloc((size_t)need + 1);
  if (!buf) {
    fprintf(stderr, "shardrt plan: error: out of memory\n");
    return 1;
  }
  shardrt_plan_format(&plan, table, buf, (size_t)need + 1);
  fputs(buf, stdout);
  if (need == 0 || buf[need - 1] != '\n') fputc('\n', stdout);
  free(buf);
  return 0;
}
