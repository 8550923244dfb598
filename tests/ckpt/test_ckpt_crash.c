/* SPDX-License-Identifier: Apache-2.0 */
/* Injected kills: a child process saves step_2 and _exit()s at the k-th
 * crash point of the save (SHARDRT_TEST_CKPT_EXIT_AT=k), for every k the
 * save passes (mid-tensor-file, before fsync, before rename, before the
 * directory fsync, before meta.json, ...), for sharded and full
 * checkpoints. After each kill the previous checkpoint (step_1) is still the
 * newest complete one and loads with its exact values.
 *
 * The children are this binary re-executed (each its own one-rank MPI
 * world): `--save ROOT STEP FORMAT` and `--verify ROOT STEP`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sys/wait.h>

#include "ck_model.h"
#include "ckpt_test_util.h"
#include "src/ckpt/durable.h"

static char g_tmp[4096];
static char g_self[4096];

/* ---- children ---- */

static int child_save(const char *root, int step, int full) {
  shardrt_plan plan = ck_plan(SHARDRT_FULL_SHARD, full ? SHARDRT_FULL_STATE_DICT : SHARDRT_SHARDED_STATE_DICT);
  ck_spec spec = ck_spec_small();
  shardrt_ctx *ctx;
  shardrt_status rc = ck_model_create(&plan, NULL, &spec, NULL, &ctx);
  if (!rc) rc = ck_train(ctx, 0, step, NULL);
  if (!rc) rc = shardrt_ckpt_maybe_save(ctx, root, step, 1, &step, sizeof step, NULL);
  if (rc) {
    fprintf(stderr, "child save: %s\n", shardrt_last_error());
    return 1;
  }
  printf("points %d\n", shardrt__crash_points_seen());
  fflush(stdout);
  shardrt_ctx_destroy(ctx);
  return 0;
}

/* Loads the newest checkpoint under root and checks it is `step`'s: the
 * user blob says so and the weights equal a fresh run of `step` steps. */
static int child_verify(const char *root, int step) {
  shardrt_plan plan = ck_plan(SHARDRT_FULL_SHARD, SHARDRT_SHARDED_STATE_DICT);
  ck_spec spec = ck_spec_small();
  shardrt_ctx *ctx, *ref;
  int blob = -1;
  size_t len = 0;
  float *w, *wr;
  int64_t n, nr;
  shardrt_status rc = ck_model_create(&plan, NULL, &spec, NULL, &ctx);
  if (!rc) rc = shardrt_load_checkpoint(ctx, root, &blob, sizeof blob, &len);
  if (!rc) rc = ck_weights(ctx, &w, &n);
  if (!rc) rc = ck_model_create(&plan, NULL, &spec, NULL, &ref);
  if (!rc) rc = ck_train(ref, 0, step, NULL);
  if (!rc) rc = ck_weights(ref, &wr, &nr);
  if (rc) {
    fprintf(stderr, "child verify: %s\n", shardrt_last_error());
    return 1;
  }
  if (len != sizeof blob || blob != step || n != nr || memcmp(w, wr, sizeof(float) * (size_t)n) != 0) {
    fprintf(stderr, "child verify: loaded step %d (blob %zu bytes), weights %s step %d's\n", blob, len,
            n == nr && memcmp(w, wr, sizeof(float) * (size_t)n) == 0 ? "equal" : "differ from", step);
    return 1;
  }
  return 0;
}

/* ---- parent ---- */

/* Runs this binary with args; returns the exit code (-1: killed); the first
 * "points N" line of its stdout goes to *points when not NULL. */
static int run_child(const char *const *args, int exit_at, int *points) {
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char v[16];
    snprintf(v, sizeof v, "%d", exit_at);
    setenv("SHARDRT_TEST_CKPT_EXIT_AT", v, 1);
    dup2(pipefd[1], 1);
    close(pipefd[0]);
    close(pipefd[1]);
    char *argv[8] = {g_self};
    for (int i = 0; args[i] && i < 6; i++) argv[i + 1] = (char *)args[i];
    execv(g_self, argv);
    _exit(127);
  }
  close(pipefd[1]);
  char out[256] = {0};
  size_t got = 0;
  ssize_t r;
  while ((r = read(pipefd[0], out + got, sizeof out - 1 - got)) > 0) got += (size_t)r;
  close(pipefd[0]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (points) {
    const char *p = strstr(out, "points ");
    *points = p ? atoi(p + 7) : -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void expect_latest(const char *root, const char *step_dir) {
  char got[4400], want[4400];
  assert_int_equal(shardrt_latest_checkpoint(root, got, sizeof got), SHARDRT_OK);
  snprintf(want, sizeof want, "%s/%s", root, step_dir);
  assert_string_equal(got, want);
}

static void kill_at_every_point(int full) {
  char root[4200];
  snprintf(root, sizeof root, "%s/%s", g_tmp, full ? "full" : "sharded");
  const char *fmt = full ? "1" : "0";
  int points = 0;
  const char *save1[] = {"--save", root, "1", fmt, NULL};
  assert_int_equal(run_child(save1, 0, &points), 0);
  expect_latest(root, "step_1");
  /* sharded: rank file (mid-data, fsync, rename, dir fsync) + meta (before, fsync, rename, dir fsync);
   * full adds the model file's four. */
  assert_int_equal(points, full ? 12 : 8);
  const char *save2[] = {"--save", root, "2", fmt, NULL};
  const char *verify1[] = {"--verify", root, "1", NULL};
  int must_be_incomplete = 0;
  for (int k = 1; k <= points; k++) {
    int code = run_child(save2, k, NULL);
    if (code != SHARDRT__CRASH_EXIT_CODE) fail_msg("save killed at point %d/%d exited with %d", k, points, code);
    char dummy[4400];
    bool step2_complete = shardrt_latest_checkpoint(root, dummy, sizeof dummy) == SHARDRT_OK && strstr(dummy, "step_2");
    /* Until meta.json is renamed into place, step_2 must not count. */
    if (k < points) {
      assert_false(step2_complete);
      expect_latest(root, "step_1");
      must_be_incomplete++;
      assert_int_equal(run_child(verify1, 0, NULL), 0);
    } else {
      /* Killed after meta.json's rename: the checkpoint is complete (only
       * the directory sync was pending), and it must then load as step 2. */
      expect_latest(root, "step_2");
      const char *verify2[] = {"--verify", root, "2", NULL};
      assert_int_equal(run_child(verify2, 0, NULL), 0);
      char dir[4300];
      snprintf(dir, sizeof dir, "%s/step_2", root);
      ck_rm_rf(dir);
    }
  }
  assert_true(must_be_incomplete >= 6);
  /* An uninterrupted save of step_2 becomes the newest. */
  assert_int_equal(run_child(save2, 0, NULL), 0);
  expect_latest(root, "step_2");
  const char *verify2[] = {"--verify", root, "2", NULL};
  assert_int_equal(run_child(verify2, 0, NULL), 0);
}

static void test_kill_sharded_save(void **state) {
  (void)state;
  kill_at_every_point(0);
}

static void test_kill_full_save(void **state) {
  (void)state;
  kill_at_every_point(1);
}

static int setup(void **state) {
  (void)state;
  return ck_tmpdir(g_tmp, sizeof g_tmp, "crash") ? 0 : -1;
}
static int teardown(void **state) {
  (void)state;
  ck_rm_rf(g_tmp);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "--save") == 0) return child_save(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc == 4 && strcmp(argv[1], "--verify") == 0) return child_verify(argv[2], atoi(argv[3]));
  ssize_t n = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
  if (n <= 0) return 1;
  g_self[n] = '\0';
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kill_sharded_save),
      cmocka_unit_test(test_kill_full_save),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
