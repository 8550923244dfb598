/* SPDX-License-Identifier: Apache-2.0 */
/* Chrome trace-event writer (one file per rank, one JSON array of "X"
 * complete events). Every function is a no-op on a NULL trace. */
#ifndef SHARDRT_TRACE_H
#define SHARDRT_TRACE_H

#include "shardrt/types.h"

typedef struct shardrt__trace shardrt__trace;

shardrt_status shardrt__trace_open(shardrt__trace **out, const char *path, int rank);
/* cat: "compute" (program spans) | "forward" | "backward" (unit spans) |
 * "comm" | "wait" | "step"; bytes <= 0 omits the field. */
void shardrt__trace_span(shardrt__trace *t, const char *cat, const char *name, double t0, double t1, int64_t bytes);
shardrt_status shardrt__trace_close(shardrt__trace *t);

#endif
