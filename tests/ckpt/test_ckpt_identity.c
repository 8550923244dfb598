/* SPDX-License-Identifier: Apache-2.0 */
/* Checkpoint identity and fall-back through the runtime (issue #14, item 2
 * and deliverable 4): a same-size rank file from an earlier step put into
 * the newest checkpoint is an error naming it when that checkpoint is
 * loaded; resuming from the save root then falls back to the older one with
 * a warning, also when the damage is only found in the tensor data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ck_model.h"
#include "ck_mpi_util.h"
#include "src/config/config_internal.h"

static int g_rank, g_world;

#define CHECK(call)                                                                                          \
  do {                                                                                                       \
    shardrt_status rc__ = (call);                                                                            \
    if (rc__ != SHARDRT_OK) fail_msg("%s: %s: %s", #call, shardrt_status_str(rc__), shardrt_last_error()); \
  } while (0)

static char g_warn[2048];
static void catch_warn(const char *msg, void *user) {
  (void)user;
  snprintf(g_warn, sizeof g_warn, "%s", msg);
}

/* Loads `path`; returns the status and the step the user blob recorded. */
static shardrt_status load(const char *path, int64_t *step) {
  shardrt_plan plan = ck_plan(SHARDRT_FULL_SHARD, SHARDRT_SHARDED_STATE_DICT);
  ck_spec spec = ck_spec_small();
  shardrt_ctx *ctx;
  CHECK(ck_model_create(&plan, NULL, &spec, NULL, &ctx));
  size_t len = 0;
  *step = -1;
  shardrt_status rc = shardrt_load_checkpoint(ctx, path, step, sizeof *step, &len);
  shardrt_ctx_destroy(ctx);
  return rc;
}

static void test_stale_file_and_fallback(void **state) {
  (void)state;
  shardrt_plan plan = ck_plan(SHARDRT_FULL_SHARD, SHARDRT_SHARDED_STATE_DICT);
  ck_spec spec = ck_spec_small();
  shardrt_ctx *ctx;
  CHECK(ck_model_create(&plan, NULL, &spec, NULL, &ctx));
  char root[4200], s1[4300], s2[4300], a[4400], b[4400];
  snprintf(root, sizeof root, "%s/run", g_tmp);
  for (int64_t step = 1; step <= 2; step++) {
    CHECK(ck_train(ctx, (int)step - 1, (int)step, NULL));
    CHECK(shardrt_ckpt_maybe_save(ctx, root, step, 1, &step, sizeof step, NULL));
  }
  shardrt_ctx_destroy(ctx);
  snprintf(s1, sizeof s1, "%s/step_1", root);
  snprintf(s2, sizeof s2, "%s/step_2", root);
  int victim = g_world - 1;
  snprintf(a, sizeof a, "%s/rank_%05d.safetensors", s1, victim);
  snprintf(b, sizeof b, "%s/rank_%05d.safetensors", s2, victim);
  char keep[4500];
  snprintf(keep, sizeof keep, "%s.good", b);
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) {
    assert_int_equal(ck_file_size(a), ck_file_size(b)); /* the case that loaded silently */
    assert_int_equal(rename(b, keep), 0);
    assert_int_equal(ck_copy_file(a, b), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  int64_t step;
  shardrt_status rc = load(s2, &step);
  assert_int_equal(rc, SHARDRT_ERR_CORRUPT);
  if (!strstr(shardrt_last_error(), b) || !strstr(shardrt_last_error(), "stale"))
    fail_msg("the error does not name the stale file: %s", shardrt_last_error());
  /* From the save root: the older checkpoint, with a warning naming why. */
  shardrt__warn_set_sink(catch_warn, NULL);
  shardrt__warn_reset();
  g_warn[0] = '\0';
  CHECK(load(root, &step));
  assert_int_equal(step, 1);
  if (g_rank == 0 && !strstr(g_warn, b)) fail_msg("warning does not name the file: '%s'", g_warn);
  setenv("SHARDRT_CKPT_FALLBACK", "0", 1);
  assert_int_equal(load(root, &step), SHARDRT_ERR_CORRUPT);
  unsetenv("SHARDRT_CKPT_FALLBACK");

  /* Damage only in the data: the header is sound, a tensor checksum fails
   * while loading; the root load still falls back. */
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) {
    assert_int_equal(rename(keep, b), 0);
    assert_int_equal(ck_flip_byte(b, -1), 0);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  g_warn[0] = '\0';
  shardrt__warn_reset();
  CHECK(load(root, &step));
  assert_int_equal(step, 1);
  if (g_rank == 0 && !strstr(g_warn, "checksum mismatch")) fail_msg("warning does not say why: '%s'", g_warn);
  setenv("SHARDRT_CKPT_FALLBACK", "0", 1);
  assert_int_equal(load(root, &step), SHARDRT_ERR_CORRUPT);
  unsetenv("SHARDRT_CKPT_FALLBACK");
  shardrt__warn_set_sink(NULL, NULL);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_stale_file_and_fallback)};
  return ck_mpi_run("identity", tests, 1);
}
