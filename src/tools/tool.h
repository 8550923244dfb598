/* SPDX-License-Identifier: Apache-2.0 */
/* The `shardrt` command: one function per subcommand, listed in commands.def. */
#ifndef SHARDRT_TOOL_H
#define SHARDRT_TOOL_H

typedef int (*shardrt_tool_fn)(int argc, char **argv); /* argv[0] = subcommand name */

#define SHARDRT_TOOL_CMD(name, fn, summary) int fn(int argc, char **argv);
#include "src/tools/commands.def"
#undef SHARDRT_TOOL_CMD

#endif
