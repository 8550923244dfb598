/* SPDX-License-Identifier: Apache-2.0 */
/* What the comm figures mean (src/core/coll.c): comm_time_s is each
 * collective's time from its issue to its completion, exposed_comm_s all
 * time the calling thread stood blocked on communication, issue calls
 * included; both equal the sums of the trace's spans ("comm" per collective,
 * "wait" for issue calls and waits). And SHARDRT_COLL_SINGLE_RANK=1 sends
 * one-rank collectives through the backend with the results unchanged. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../mpi_test_ctx.h"
#include "../mpi_test_main.h"
#include "mini_model.h"
#include "src/core/ctx.h"

#define COUNT ((size_t)1 << 20) /* 4 MiB of fp32 per rank: past the eager limit */

typedef struct span {
  char cat[16], name[40];
  double t0, t1; /* seconds */
} span;

/* Reads the "X" events of one of our trace files (one event per line). */
static int read_spans(const char *path, span *out, int cap) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[512];
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    if (!strstr(line, "\"ph\":\"X\"")) continue;
    assert_true(n < cap);
    span *s = &out[n++];
    const char *c = strstr(line, "\"cat\":\""), *m = strstr(line, "\"name\":\""), *ts = strstr(line, "\"ts\":"),
               *du = strstr(line, "\"dur\":");
    assert_true(c && m && ts && du);
    assert_int_equal(sscanf(c + 7, "%15[^\"]", s->cat), 1);
    assert_int_equal(sscanf(m + 8, "%39[^\"]", s->name), 1);
    double t = atof(ts + 5), d = atof(du + 6);
    s->t0 = t * 1e-6;
    s->t1 = (t + d) * 1e-6;
  }
  fclose(f);
  return n;
}

static void sleep_s(double s) {
  struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* A folder for one trace per rank (made by rank 0, known to all). */
typedef struct trace_dir {
  char dir[32], pattern[64], mine[64];
} trace_dir;

static void trace_dir_make(trace_dir *t) {
  snprintf(t->dir, sizeof t->dir, "/tmp/shardrt_timing_XXXXXX");
  if (g_rank == 0) assert_non_null(mkdtemp(t->dir));
  MPI_Bcast(t->dir, (int)sizeof t->dir, MPI_CHAR, 0, MPI_COMM_WORLD);
  snprintf(t->pattern, sizeof t->pattern, "%s/trace_%%r.json", t->dir);
  snprintf(t->mine, sizeof t->mine, "%s/trace_%d.json", t->dir, g_rank);
}

static void trace_dir_remove(trace_dir *t) {
  unlink(t->mine);
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) rmdir(t->dir);
}

/* comm_time_s per kind equals the sum of the "comm" spans of that kind, and
 * exposed_comm_s that of the "wait" spans (issue calls and waits). The
 * trace prints microseconds with 3 decimals: each time is rounded to 0.5 ns,
 * each span's length to 1 ns, so a sum of m spans to m ns. */
static void figures_equal_span_sums(const shardrt_comm_stats *cs, const span *sp, int n) {
  double comm[SHARDRT_COLL_COUNT_] = {0}, blocked = 0;
  int ncomm = 0, nwait = 0;
  for (int i = 0; i < n; i++) {
    if (strcmp(sp[i].cat, "comm") == 0) {
      ncomm++;
      for (int k = 0; k < SHARDRT_COLL_COUNT_; k++)
        if (strcmp(sp[i].name, shardrt_coll_kind_name((shardrt_coll_kind)k)) == 0) comm[k] += sp[i].t1 - sp[i].t0;
    } else if (strcmp(sp[i].cat, "wait") == 0) {
      nwait++;
      blocked += sp[i].t1 - sp[i].t0;
    }
  }
  for (int k = 0; k < SHARDRT_COLL_COUNT_; k++)
    if (fabs(comm[k] - cs->time_s[k]) > 2e-9 * ncomm)
      fail_msg("%s: comm_time %.9f s, trace comm spans %.9f s", shardrt_coll_kind_name((shardrt_coll_kind)k),
               cs->time_s[k], comm[k]);
  if (fabs(blocked - cs->exposed_s) > 2e-9 * nwait)
    fail_msg("exposed %.9f s, trace wait spans (issue calls + waits) %.9f s", cs->exposed_s, blocked);
}

static void figures_are_the_trace_sums(void **state) {
  (void)state;
  if (g_world < 2) skip();
  trace_dir td;
  trace_dir_make(&td);
  shardrt_ctx *ctx = shardrt_test_cpu_mpi_ctx();
  assert_int_equal(shardrt_trace_start(ctx, td.pattern), SHARDRT_OK);
  float *send = calloc(COUNT, sizeof(float)), *recv = calloc(COUNT * (size_t)g_world, sizeof(float));
  assert_true(send && recv);
  shardrt__req *req = NULL;
  /* An all-gather overlapped with 30 ms of "compute", an all-reduce waited
   * at once, a reduce-scatter overlapped with a shorter compute. */
  assert_int_equal(shardrt__all_gather(ctx, NULL, SHARDRT__GROUP_WORLD, send, recv, COUNT, SHARDRT_F32, &req),
                   SHARDRT_OK);
  sleep_s(0.03);
  assert_int_equal(shardrt__wait(ctx, &req, SHARDRT_COLL_ALL_GATHER), SHARDRT_OK);
  assert_int_equal(shardrt__all_reduce(ctx, NULL, SHARDRT__GROUP_WORLD, send, COUNT, SHARDRT_F32, &req), SHARDRT_OK);
  assert_int_equal(shardrt__wait(ctx, &req, SHARDRT_COLL_ALL_REDUCE), SHARDRT_OK);
  assert_int_equal(shardrt__reduce_scatter(ctx, NULL, SHARDRT__GROUP_WORLD, recv, send, COUNT, SHARDRT_F32, &req),
                   SHARDRT_OK);
  sleep_s(0.005);
  assert_int_equal(shardrt__wait(ctx, &req, SHARDRT_COLL_REDUCE_SCATTER), SHARDRT_OK);
  shardrt_comm_stats cs;
  shardrt_comm_stats_get(ctx, &cs);
  assert_int_equal(shardrt_trace_stop(ctx), SHARDRT_OK);

  static span sp[256];
  int n = read_spans(td.mine, sp, 256);
  int issues = 0, ncomm = 0, nwait = 0;
  const span *ag = NULL, *ag_issue = NULL, *ag_wait = NULL;
  for (int i = 0; i < n; i++) {
    if (strcmp(sp[i].cat, "comm") == 0) {
      ncomm++;
      if (strcmp(sp[i].name, "all_gather") == 0) ag = &sp[i];
    } else if (strcmp(sp[i].cat, "wait") == 0) {
      nwait++;
      if (strncmp(sp[i].name, "issue ", 6) == 0) issues++;
      if (strcmp(sp[i].name, "issue all_gather") == 0) ag_issue = &sp[i];
      if (strcmp(sp[i].name, "all_gather") == 0) ag_wait = &sp[i];
    }
  }
  assert_int_equal(ncomm, 3);
  assert_int_equal(issues, 3); /* every issue call is blocked time */
  assert_int_equal(nwait, 6);
  for (int k = 0; k < SHARDRT_COLL_COUNT_; k++) assert_int_equal(cs.calls[k], k == SHARDRT_COLL_BROADCAST ? 0 : 1);
  figures_equal_span_sums(&cs, sp, n);
  /* The all-gather's span runs from its issue call's start to no later
   * than its wait's return, and encloses the 30 ms of compute; blocked time
   * is part of it. */
  assert_true(ag && ag_issue && ag_wait);
  assert_true(fabs(ag->t0 - ag_issue->t0) < 2e-9);
  assert_true(ag->t1 <= ag_wait->t1 + 2e-9);
  assert_true(ag->t1 >= ag_issue->t1 - 2e-9);
  double total = 0;
  for (int k = 0; k < SHARDRT_COLL_COUNT_; k++) total += cs.time_s[k];
  assert_true(cs.exposed_s <= total + 1e-8);
  shardrt_ctx_destroy(ctx);
  free(send);
  free(recv);
  trace_dir_remove(&td);
}

/* HYBRID_SHARD's replica all-reduce (the second stage, after the shard
 * group's reduce-scatter) is issued during backward and waited on only in
 * the step, where the gradients are read (src/strategy/common.c); the step's
 * comm figures still equal the trace's sums. */
static void hybrid_replica_stage_waits_in_step(void **state) {
  (void)state;
  if (g_world < 2) skip();
  trace_dir td;
  trace_dir_make(&td);
  shardrt_plan p = mini_base_plan(SHARDRT_FLAVOR_FSDP, SHARDRT_HYBRID_SHARD, g_world);
  mini_cfg c;
  mini_cfg_default(&c);
  c.steps = 2; /* the second, traced, step runs with the recorded order (prefetch on) */
  c.trace_last_step = td.pattern;
  mini_run r;
  assert_int_equal(mini_train(&c, &p, NULL, &r), SHARDRT_OK);
  /* one replica all-reduce per unit; a reduce-scatter too once the shard
   * group has more than one rank (world 4: groups of 2) */
  assert_int_equal(r.comm.calls[SHARDRT_COLL_ALL_REDUCE], r.nunits);
  assert_int_equal(r.comm.calls[SHARDRT_COLL_REDUCE_SCATTER], g_world >= 4 ? r.nunits : 0);

  static span sp[1024];
  int n = read_spans(td.mine, sp, 1024);
  const span *step = NULL;
  double last_backward_start = 0, first_issue = 1e300;
  for (int i = 0; i < n; i++) {
    if (strcmp(sp[i].cat, "step") == 0) step = &sp[i];
    if (strcmp(sp[i].cat, "backward") == 0 && sp[i].t0 > last_backward_start) last_backward_start = sp[i].t0;
  }
  assert_non_null(step);
  int issued_before_step = 0, waits = 0;
  for (int i = 0; i < n; i++) {
    if (strcmp(sp[i].cat, "wait") != 0) continue;
    if (strcmp(sp[i].name, "issue all_reduce") == 0) {
      if (sp[i].t1 <= step->t0) issued_before_step++;
      if (sp[i].t0 < first_issue) first_issue = sp[i].t0;
    }
    if (strcmp(sp[i].name, "all_reduce") == 0) {
      waits++;
      /* waited where the gradients are needed: inside the step's span */
      if (!(sp[i].t0 >= step->t0 - 2e-9 && sp[i].t1 <= step->t1 + 2e-9))
        fail_msg("replica all-reduce waited at %.6f s, outside the step [%.6f, %.6f]", sp[i].t0, step->t0,
                 step->t1);
    }
  }
  assert_int_equal(waits, r.nunits);
  /* Every unit's but the last's is issued at the next unit's end_backward,
   * before the step (the last unit's in it), and the first of them before
   * the last unit's backward begins: under the backward still to come. */
  assert_true(issued_before_step >= r.nunits - 1);
  assert_true(first_issue < last_backward_start);
  figures_equal_span_sums(&r.comm, sp, n);
  mini_run_free(&r);
  trace_dir_remove(&td);
}

static void single_rank_switch(void **state) {
  (void)state;
  if (g_world != 1) skip();
  float send[64], recv[64], buf[64];
  for (int i = 0; i < 64; i++) send[i] = buf[i] = (float)i * 0.5f + 1.0f;
  shardrt__req *req = NULL;
  shardrt_comm_stats cs;

  unsetenv("SHARDRT_COLL_SINGLE_RANK");
  shardrt_ctx *ctx = shardrt_test_cpu_mpi_ctx();
  memset(recv, 0, sizeof recv);
  assert_int_equal(shardrt__all_gather(ctx, NULL, SHARDRT__GROUP_WORLD, send, recv, 64, SHARDRT_F32, &req), SHARDRT_OK);
  assert_null(req); /* skipped: a copy */
  assert_memory_equal(recv, send, sizeof send);
  shardrt_comm_stats_get(ctx, &cs);
  assert_int_equal(cs.calls[SHARDRT_COLL_ALL_GATHER], 0);
  shardrt_ctx_destroy(ctx);

  setenv("SHARDRT_COLL_SINGLE_RANK", "1", 1);
  ctx = shardrt_test_cpu_mpi_ctx();
  memset(recv, 0, sizeof recv);
  assert_int_equal(shardrt__all_gather(ctx, NULL, SHARDRT__GROUP_WORLD, send, recv, 64, SHARDRT_F32, &req), SHARDRT_OK);
  assert_int_equal(shardrt__wait(ctx, &req, SHARDRT_COLL_ALL_GATHER), SHARDRT_OK);
  assert_memory_equal(recv, send, sizeof send);
  memset(recv, 0, sizeof recv);
  assert_int_equal(shardrt__reduce_scatter(ctx, NULL, SHARDRT__GROUP_WORLD, send, recv, 64, SHARDRT_F32, &req),
                   SHARDRT_OK);
  assert_int_equal(shardrt__wait(ctx, &req, SHARDRT_COLL_REDUCE_SCATTER), SHARDRT_OK);
  assert_memory_equal(recv, send, sizeof send);
  assert_int_equal(shardrt__all_reduce(ctx, NULL, SHARDRT__GROUP_WORLD, buf, 64, SHARDRT_F32, &req), SHARDRT_OK);
  assert_int_equal(shardrt__wait(ctx, &req, SHARDRT_COLL_ALL_REDUCE), SHARDRT_OK);
  assert_memory_equal(buf, send, sizeof send);
  shardrt_comm_stats_get(ctx, &cs);
  for (int k = 0; k < 3; k++) assert_int_equal(cs.calls[k], 1);
  shardrt_ctx_destroy(ctx);

  setenv("SHARDRT_COLL_SINGLE_RANK", "yes", 1);
  ctx = shardrt_test_cpu_mpi_ctx();
  assert_int_equal(shardrt__all_gather(ctx, NULL, SHARDRT__GROUP_WORLD, send, recv, 64, SHARDRT_F32, &req),
                   SHARDRT_ERR_CONFIG);
  assert_non_null(strstr(shardrt_last_error(), "SHARDRT_COLL_SINGLE_RANK=yes"));
  shardrt_ctx_destroy(ctx);
  unsetenv("SHARDRT_COLL_SINGLE_RANK");
}

/* A whole FULL_SHARD training at world 1 through the backend: every loss
 * and weight bit-identical to the run that skips the collectives (a
 * one-rank gather, reduce-scatter and all-reduce move the same bytes). */
static void single_rank_switch_keeps_results(void **state) {
  (void)state;
  if (g_world != 1) skip();
  shardrt_plan p = mini_base_plan(SHARDRT_FLAVOR_FSDP, SHARDRT_FULL_SHARD, 1);
  mini_cfg c;
  mini_cfg_default(&c);
  c.steps = 4;
  mini_run skip_run, through;
  unsetenv("SHARDRT_COLL_SINGLE_RANK");
  assert_int_equal(mini_train(&c, &p, NULL, &skip_run), SHARDRT_OK);
  setenv("SHARDRT_COLL_SINGLE_RANK", "1", 1);
  assert_int_equal(mini_train(&c, &p, NULL, &through), SHARDRT_OK);
  unsetenv("SHARDRT_COLL_SINGLE_RANK");
  assert_int_equal(skip_run.comm.calls[SHARDRT_COLL_ALL_GATHER] + skip_run.comm.calls[SHARDRT_COLL_REDUCE_SCATTER], 0);
  assert_true(through.comm.calls[SHARDRT_COLL_ALL_GATHER] > 0);
  assert_true(through.comm.calls[SHARDRT_COLL_REDUCE_SCATTER] > 0);
  assert_memory_equal(skip_run.loss, through.loss, sizeof(double) * (size_t)c.steps);
  assert_int_equal(skip_run.nweights, through.nweights);
  assert_memory_equal(skip_run.weights, through.weights, sizeof(float) * (size_t)skip_run.nweights);
  mini_run_free(&skip_run);
  mini_run_free(&through);
}

int main(void) {
  shardrt_test_mpi_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(figures_are_the_trace_sums),
      cmocka_unit_test(hybrid_replica_stage_waits_in_step),
      cmocka_unit_test(single_rank_switch),
      cmocka_unit_test(single_rank_switch_keeps_results),
  };
  SHARDRT_TEST_MPI_RUN("comm_timing", tests);
}
