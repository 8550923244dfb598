/* SPDX-License-Identifier: Apache-2.0 */
/* Offline consolidation (shardrt_merge_checkpoint) over synthetic
 * checkpoints written at several world sizes. With `--fixture DIR` it only
 * writes a checkpoint and its merges into DIR, for check_safetensors.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ck_synth.h"
#include "ckpt_test_util.h"
#include "shardrt/ckpt.h"
#include "src/ckpt/durable.h"
#include "src/ckpt/safetensors.h"

static char tmp[4096];

static int setup(void **state) {
  (void)state;
  return ck_tmpdir(tmp, sizeof tmp, "merge") ? 0 : -1;
}
static int teardown(void **state) {
  (void)state;
  ck_rm_rf(tmp);
  return 0;
}

/* Checks tensor `name` of f holds role `role` of synthetic parameter p. */
static void expect_tensor(shardrt__st_file *f, const char *name, int p, int role, shardrt_dtype dt) {
  int i = shardrt__st_find(f, name);
  if (i < 0) fail_msg("merged file lacks '%s'", name);
  assert_int_equal(f->t[i].dtype, dt);
  assert_int_equal(f->t[i].ndim, ck_synth_params[p].ndim);
  for (int d = 0; d < f->t[i].ndim; d++) assert_int_equal(f->t[i].shape[d], ck_synth_params[p].shape[d]);
  int64_t n = ck_synth_numel(p);
  unsigned char raw[256];
  float v[64];
  assert_true(n <= 64);
  assert_int_equal(shardrt__st_read_raw(f, i, 0, (size_t)n * shardrt_dtype_size(dt), raw), SHARDRT_OK);
  shardrt_convert(v, SHARDRT_F32, raw, dt, (size_t)n);
  for (int64_t k = 0; k < n; k++) {
    float want = ck_exact_value(ck_synth_params[p].unit * 3 + role, ck_synth_params[p].offset + k);
    if (v[k] != want) fail_msg("%s[%lld] = %g, expected %g", name, (long long)k, (double)v[k], (double)want);
  }
  char scratch[64];
  assert_int_equal(shardrt__st_stream(f, i, scratch, sizeof scratch, NULL, NULL), SHARDRT_OK); /* checksum */
}

static void merge_and_check(int world, bool full_model, shardrt_dtype dt, bool optimizer) {
  char dir[4200], out[4300];
  snprintf(dir, sizeof dir, "%s/w%d_%d_%d_%d", tmp, world, full_model, (int)dt, optimizer);
  assert_int_equal(shardrt__mkdir_p(dir), SHARDRT_OK);
  assert_int_equal(ck_synth_write(dir, world, full_model, "blob", 4), 0);
  snprintf(out, sizeof out, "%s.safetensors", dir);
  shardrt_merge_stats st;
  shardrt_status rc = shardrt_merge_checkpoint(dir, out, dt, optimizer, &st);
  if (rc != SHARDRT_OK) fail_msg("merge: %s", shardrt_last_error());
  assert_int_equal(st.num_tensors, CK_SYNTH_NPARAMS * (optimizer ? 3 : 1));
  assert_int_equal(st.model_bytes, (35 + 48) * 4);
  assert_int_equal((long)st.bytes_written, ck_file_size(out));
  shardrt__st_file f;
  assert_int_equal(shardrt__st_open(&f, out), SHARDRT_OK);
  assert_int_equal(f.n, st.num_tensors);
  for (int p = 0; p < CK_SYNTH_NPARAMS; p++) {
    expect_tensor(&f, ck_synth_params[p].name, p, 0, dt);
    if (optimizer) {
      char name[128];
      snprintf(name, sizeof name, "%s.exp_avg", ck_synth_params[p].name);
      expect_tensor(&f, name, p, 1, dt);
      snprintf(name, sizeof name, "%s.exp_avg_sq", ck_synth_params[p].name);
      expect_tensor(&f, name, p, 2, dt);
    }
  }
  shardrt__st_close(&f);
}

static void test_merge_world_sizes(void **state) {
  (void)state;
  for (int world = 1; world <= 5; world += 2) merge_and_check(world, false, SHARDRT_F32, false);
  merge_and_check(2, false, SHARDRT_F32, true);
  merge_and_check(4, false, SHARDRT_BF16, true);
  merge_and_check(3, false, SHARDRT_F16, false);
}

static void test_merge_full_model(void **state) {
  (void)state;
  merge_and_check(2, true, SHARDRT_F32, true);
  merge_and_check(1, true, SHARDRT_BF16, false);
}

static void test_merge_errors(void **state) {
  (void)state;
  char dir[4200], out[4300], path[4400];
  snprintf(dir, sizeof dir, "%s/bad", tmp);
  snprintf(out, sizeof out, "%s/bad.safetensors", tmp);
  assert_int_equal(shardrt__mkdir_p(dir), SHARDRT_OK);
  assert_int_equal(shardrt_merge_checkpoint(dir, out, SHARDRT_F32, false, NULL), SHARDRT_ERR_NOT_FOUND);
  assert_int_equal(ck_synth_write(dir, 2, false, NULL, 0), 0);
  assert_int_equal(shardrt_merge_checkpoint(dir, out, (shardrt_dtype)7, false, NULL), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_merge_checkpoint(dir, "", SHARDRT_F32, false, NULL), SHARDRT_ERR_INVALID_ARGUMENT);
  /* A damaged byte in a rank file's data: a clear error and no output file. */
  snprintf(path, sizeof path, "%s/rank_00001.safetensors", dir);
  assert_int_equal(ck_flip_byte(path, -2), 0);
  assert_int_equal(shardrt_merge_checkpoint(dir, out, SHARDRT_F32, true, NULL), SHARDRT_ERR_CORRUPT);
  assert_non_null(strstr(shardrt_last_error(), "rank_00001"));
  assert_int_equal(ck_file_size(out), -1);
  /* Truncated: caught before any data is read. */
  assert_int_equal(truncate(path, ck_file_size(path) - 1), 0);
  assert_int_equal(shardrt_merge_checkpoint(dir, out, SHARDRT_F32, false, NULL), SHARDRT_ERR_CORRUPT);
  assert_non_null(strstr(shardrt_last_error(), "rank_00001"));
}

static int fixture(const char *dir) {
  char ck[4200], out[4300];
  snprintf(ck, sizeof ck, "%s/ck", dir);
  if (shardrt__mkdir_p(ck) != SHARDRT_OK || ck_synth_write(ck, 3, false, NULL, 0) != 0) return 1;
  snprintf(out, sizeof out, "%s/merged_fp32.safetensors", dir);
  if (shardrt_merge_checkpoint(ck, out, SHARDRT_F32, true, NULL) != SHARDRT_OK) return 1;
  snprintf(out, sizeof out, "%s/merged_fp16.safetensors", dir);
  if (shardrt_merge_checkpoint(ck, out, SHARDRT_F16, false, NULL) != SHARDRT_OK) return 1;
  snprintf(out, sizeof out, "%s/merged_bf16.safetensors", dir);
  if (shardrt_merge_checkpoint(ck, out, SHARDRT_BF16, false, NULL) != SHARDRT_OK) return 1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--fixture") == 0) {
    int rc = fixture(argv[2]);
    if (rc) fprintf(stderr, "fixture: %s\n", shardrt_last_error());
    return rc;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_merge_world_sizes),
      cmocka_unit_test(test_merge_full_model),
      cmocka_unit_test(test_merge_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
