/* SPDX-License-Identifier: Apache-2.0 */
/* Chrome trace-event writer (one file per rank, one JSON array of "X"
 * complete events). Every function is a no-op on a NULL trace. */
#ifndef SHARDRT_TRACE_H
#define SHARDRT_TRACE_H

#include "shardrt/types.h"

typedef struct shardrt__trace shardrt__trace;

/* "%r" in path becomes the rank. Without "%r" at world > 1 the rank is put
 * into the name anyway (before the extension: trace.json -> trace.rank1.json,
 * rank 0 included) so ranks never write into one file; rank 0 says so on
 * stderr. The timestamps are shardrt__now() microseconds less one origin per
 * trace, recorded as otherData.clock_origin_s, so traces of ranks on one
 * host line up after shifting (tools/merge_traces.py). */
shardrt_status shardrt__trace_open(shardrt__trace **out, const char *path, int rank, int world);
/* The file name rank `rank` of `world` writes for `path` (see above). */
shardrt_status shardrt__trace_name(char *buf, size_t cap, const char *path, int rank, int world);
/* cat: "compute" (program spans) | "forward" | "backward" (unit spans) |
 * "comm" | "wait" | "step"; bytes <= 0 omits the field. */
void shardrt__trace_span(shardrt__trace *t, const char *cat, const char *name, double t0, double t1, int64_t bytes);
shardrt_status shardrt__trace_close(shardrt__trace *t);

#endif
