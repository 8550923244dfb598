/* SPDX-License-Identifier: Apache-2.0 */
/* `shardrt help [COMMAND]` */
#include <stdio.h>
#include <string.h>

#include "src/tools/tool.h"

void shardrt_tool_usage(FILE *out);

int shardrt_cmd_help(int argc, char **argv) {
  if (argc > 1) {
    /* `shardrt help plan` is `shardrt plan --help`. */
    char help[] = "--help";
    char *sub[] = {argv[1], help, NULL};
#define SHARDRT_TOOL_CMD(name, fn, summary) \
  if (strcmp(#name, argv[1]) == 0) return fn(2, sub);
#include "src/tools/commands.def"
#undef SHARDRT_TOOL_CMD
    fprintf(stderr, "shardrt help: error: unknown command '%s'\n", argv[1]);
    shardrt_tool_usage(stderr);
    return 2;
  }
  shardrt_tool_usage(stdout);
  return 0;
}
