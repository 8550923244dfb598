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
          "usage: shardrt plan --config_file FILE [OVERRIDES] [--json | --format json|table] [--world_size N]\n"
          "  Resolves the plan the config (and accelerate-launch style overrides such as\n"
          "  --fsdp_sharding_strategy or --zero_stage) gives at world size N (default: the\n"
          "  config's num_processes) and prints it. Values a DeepSpeed JSON leaves \"auto\"\n"
          "  that depend on the program print as such. After the plan come the keys the\n"
          "  config wrote that libshardrt accepts but does not act on, and the warnings\n"
          "  (in JSON: \"ignored\" and \"warnings\" lists).\n");
}

#define MAX_WARNINGS 64

typedef struct warnings {
  char msg[MAX_WARNINGS][SHARDRT__NOTE_MAX * 2];
  int n;
} warnings;

/* Warnings go to stderr as usual and are kept for the JSON output. */
static void keep_warning(const char *msg, void *user) {
  warnings *w = user;
  fprintf(stderr, "shardrt: warning: %s\n", msg);
  if (w->n < MAX_WARNINGS) snprintf(w->msg[w->n++], sizeof w->msg[0], "%s", msg);
}

static void json_string(const char *s) {
  fputc('"', stdout);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned char)*s);
    else fputc(*s, stdout);
  }
  fputc('"', stdout);
}

static void json_list(const char *name, int n, const char *(*get)(int, const void *), const void *user) {
  printf(",\n  \"%s\": [", name);
  for (int i = 0; i < n; i++) {
    printf("%s\n    ", i ? "," : "");
    json_string(get(i, user));
  }
  printf("%s]", n ? "\n  " : "");
}
static const char *get_note(int i, const void *u) { (void)u; return shardrt__notes_get(i); }
static const char *get_warning(int i, const void *u) { return ((const warnings *)u)->msg[i]; }

int shardrt_cmd_plan(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return usage(stdout), 0;
  shardrt_plan plan;
  static warnings warned;
  warned.n = 0;
  shardrt__notes_reset();
  shardrt__warn_reset();
  shardrt__warn_set_sink(keep_warning, &warned);
  shardrt_status loaded = shardrt_plan_from_args(&argc, argv, &plan);
  shardrt__warn_set_sink(NULL, NULL);
  if (loaded != SHARDRT_OK) {
    fprintf(stderr, "shardrt plan: error: %s\n", shardrt_last_error());
    return 1;
  }
  bool table = false;
  long world = 0;
  bool world_given = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = NULL;
    if (strcmp(a, "--json") == 0) {
      table = false;
    } else if (strncmp(a, "--format", 8) == 0 && (a[8] == '=' || a[8] == '\0')) {
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
  int nnotes = shardrt__notes_count();
  if (table) {
    fputs(buf, stdout);
    if (need == 0 || buf[need - 1] != '\n') fputc('\n', stdout);
    printf("\nignored (accepted, not acted on): %s\n", nnotes ? "" : "none");
    for (int i = 0; i < nnotes; i++) printf("  %s\n", shardrt__notes_get(i));
  } else {
    /* the plan object, then the two lists inside it */
    char *close = strrchr(buf, '}');
    if (close) *close = '\0';
    size_t l = strlen(buf);
    while (l && (buf[l - 1] == '\n' || buf[l - 1] == ' ')) buf[--l] = '\0';
    fputs(buf, stdout);
    json_list("ignored", nnotes, get_note, NULL);
    json_list("warnings", warned.n, get_warning, &warned);
    fputs("\n}\n", stdout);
  }
  free(buf);
  return 0;
}
