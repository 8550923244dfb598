/* SPDX-License-Identifier: Apache-2.0 */
#include "src/core/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/ctx.h"
#include "src/core/error.h"

struct shardrt__trace {
  FILE *f;
  int rank;
  double t_origin;
  bool first;
};

shardrt_status shardrt__trace_name(char *buf, size_t cap, const char *path, int rank, int world) {
  const char *r = strstr(path, "%r");
  int n;
  if (r) {
    n = snprintf(buf, cap, "%.*s%d%s", (int)(r - path), path, rank, r + 2);
  } else if (world > 1) {
    /* Before the extension of the last path component, if it has one. */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) dot = path + strlen(path);
    n = snprintf(buf, cap, "%.*s.rank%d%s", (int)(dot - path), path, rank, dot);
  } else {
    n = snprintf(buf, cap, "%s", path);
  }
  if (n < 0 || (size_t)n >= cap)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "trace file name '%s' is too long (at most %zu bytes)", path,
                          cap - 16);
  return SHARDRT_OK;
}

shardrt_status shardrt__trace_open(shardrt__trace **out, const char *path, int rank, int world) {
  char name[4096];
  SHARDRT__CHECK(shardrt__trace_name(name, sizeof name, path, rank, world));
  if (!strstr(path, "%r") && world > 1 && rank == 0)
    fprintf(stderr,
            "shardrt: warning: trace '%s' has no %%r and %d ranks write traces: each rank writes its own file, "
            "named with its rank ('%s', ...)\n",
            path, world, name);
  shardrt__trace *t = calloc(1, sizeof *t);
  if (!t) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "trace allocation failed");
  t->f = fopen(name, "w");
  if (!t->f) {
    free(t);
    return shardrt__error(SHARDRT_ERR_IO, "cannot open trace file '%s' for writing", name);
  }
  t->rank = rank;
  t->first = true;
  t->t_origin = shardrt__now();
  fprintf(t->f, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"rank\":%d,\"world_size\":%d,\"clock_origin_s\":%.6f},",
          rank, world, t->t_origin);
  fprintf(t->f, "\"traceEvents\":[\n");
  fprintf(t->f, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%d,\"args\":{\"name\":\"rank %d\"}}", rank, rank);
  static const char *const tracks[] = {"compute", "comm", "wait", "step", "units"};
  for (int i = 0; i < 5; i++)
    fprintf(t->f, ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"%s\"}}", rank,
            i, tracks[i]);
  t->first = false;
  *out = t;
  return SHARDRT_OK;
}

static int track(const char *cat) {
  if (strcmp(cat, "comm") == 0) return 1;
  if (strcmp(cat, "wait") == 0) return 2;
  if (strcmp(cat, "step") == 0) return 3;
  /* Unit spans nest (the root unit encloses the blocks): a track of their own. */
  if (strcmp(cat, "forward") == 0 || strcmp(cat, "backward") == 0) return 4;
  return 0;
}

void shardrt__trace_span(shardrt__trace *t, const char *cat, const char *name, double t0, double t1, int64_t bytes) {
  if (!t) return;
  fprintf(t->f, ",\n{\"ph\":\"X\",\"cat\":\"%s\",\"name\":\"%s\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f", cat,
          name, t->rank, track(cat), (t0 - t->t_origin) * 1e6, (t1 - t0) * 1e6);
  if (bytes > 0) fprintf(t->f, ",\"args\":{\"bytes\":%lld}", (long long)bytes);
  fputc('}', t->f);
}

shardrt_status shardrt__trace_close(shardrt__trace *t) {
  if (!t) return SHARDRT_OK;
  fprintf(t->f, "\n]}\n");
  int bad = ferror(t->f);
  bad |= fclose(t->f);
  free(t);
  return bad ? shardrt__error(SHARDRT_ERR_IO, "writing the trace file failed") : SHARDRT_OK;
}
