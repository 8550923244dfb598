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
#include <math.h>

#include "src/ckpt/safetensors.h"
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

/* Optional deliverable 8: SHARDRT_CHECK_FINITE=1 rejects NaN/Inf weights
 * with the tensor's name, in both loading modes. */
static void write_weights_with_nan(shardrt_ctx *ctx, const char *path, int bad_param, int64_t bad_elem) {
  int np = shardrt_num_params(ctx);
  shardrt__st_tensor t[32];
  assert_true(np <= 32);
  for (int i = 0; i < np; i++) {
    shardrt_param_info pi;
    CHECK(shardrt_param_info_get(ctx, i, &pi));
    t[i] = (shardrt__st_tensor){.name = (char *)pi.name, .dtype = SHARDRT_F32, .ndim = pi.ndim};
    memcpy(t[i].shape, pi.shape, sizeof pi.shape);
  }
  shardrt__st_writer w;
  CHECK(shardrt__stw_begin(&w, path, t, np, NULL, 0));
  for (int i = 0; i < np; i++) {
    shardrt_param_info pi;
    CHECK(shardrt_param_info_get(ctx, i, &pi));
    for (int64_t k = 0; k < pi.numel; k++) {
      float v = i == bad_param && k == bad_elem ? NAN : 0.5f;
      CHECK(shardrt__stw_write(&w, &v, sizeof v));
    }
  }
  CHECK(shardrt__stw_finish(&w));
}

static void test_check_finite(void **state) {
  (void)state;
  for (int ram = 0; ram < 2; ram++) {
    shardrt_plan plan = ck_plan(SHARDRT_FULL_SHARD, SHARDRT_SHARDED_STATE_DICT);
    plan.cpu_ram_efficient_loading = ram;
    plan.sync_module_states = ram;
    ck_spec spec = ck_spec_small();
    shardrt_ctx *ctx;
    CHECK(ck_model_create(&plan, NULL, &spec, NULL, &ctx));
    char path[4300];
    snprintf(path, sizeof path, "%s/nan.safetensors", g_tmp);
    if (g_rank == 0) write_weights_with_nan(ctx, path, 3, 4);
    MPI_Barrier(MPI_COMM_WORLD);
    shardrt_param_info pi;
    CHECK(shardrt_param_info_get(ctx, 3, &pi));
    CHECK(shardrt_load_weights(ctx, path)); /* off by default: NaN is a value */
    setenv("SHARDRT_CHECK_FINITE", "1", 1);
    assert_int_equal(shardrt_load_weights(ctx, path), SHARDRT_ERR_CORRUPT);
    unsetenv("SHARDRT_CHECK_FINITE");
    if (!strstr(shardrt_last_error(), pi.name) || !strstr(shardrt_last_error(), "NaN at element 4"))
      fail_msg("the error does not name the tensor and element: %s", shardrt_last_error());
    shardrt_ctx_destroy(ctx);
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_stale_file_and_fallback), cmocka_unit_test(test_check_finite)};
  return ck_mpi_run("identity", tests, 1);
}
