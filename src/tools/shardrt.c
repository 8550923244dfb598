/* SPDX-License-Identifier: Apache-2.0 */
/* `shardrt SUBCOMMAND [ARGS]`: dispatch to the functions in commands.def. */
#include <stdio.h>
#include <string.h>

#include "src/config/config_internal.h"
#include "src/tools/tool.h"

typedef struct tool_cmd {
  const char *name;
  shardrt_tool_fn fn;
  const char *summary;
} tool_cmd;

static const tool_cmd cmds[] = {
#define SHARDRT_TOOL_CMD(name, fn, summary) {#name, fn, summary},
#include "src/tools/commands.def"
#undef SHARDRT_TOOL_CMD
};
#define N_CMDS ((int)(sizeof cmds / sizeof cmds[0]))

void shardrt_tool_usage(FILE *out) {
  fprintf(out, "usage: shardrt COMMAND [ARGS]\n\ncommands:\n");
  for (int i = 0; i < N_CMDS; i++) fprintf(out, "  %-16s %s\n", cmds[i].name, cmds[i].summary);
  fprintf(out, "\n`shardrt COMMAND --help` describes one command; docs/config.md lists the config keys and flags.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    shardrt_tool_usage(stderr);
    return 2;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) name = "help";
  if (strcmp(name, "--version") == 0) {
    printf("shardrt %s\n", SHARDRT_VERSION_STRING);
    return 0;
  }
  for (int i = 0; i < N_CMDS; i++)
    if (strcmp(cmds[i].name, name) == 0) return cmds[i].fn(argc - 1, argv + 1);
  const char *names[N_CMDS];
  for (int i = 0; i < N_CMDS; i++) names[i] = cmds[i].name;
  const char *best = shardrt__closest(name, names, N_CMDS);
  if (best) fprintf(stderr, "shardrt: error: unknown command '%s'; did you mean '%s'?\n", name, best);
  else fprintf(stderr, "shardrt: error: unknown command '%s' (see `shardrt help`)\n", name);
  return 2;
}
