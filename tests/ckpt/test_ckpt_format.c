/* SPDX-License-Identifier: Apache-2.0 */
/* File-level checkpoint machinery without a runtime context: CRC32C, the
 * safetensors writer/reader and its damage detection, durable writes,
 * meta.json and the choice of the newest complete checkpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>

#include "ck_synth.h"
#include "ckpt_test_util.h"
#include "shardrt/ckpt.h"
#include "src/ckpt/crc32c.h"
#include "src/core/error.h"
#include "src/ckpt/durable.h"
#include "src/ckpt/meta.h"
#include "src/ckpt/safetensors.h"

static char tmp[4096];

static int setup(void **state) {
  (void)state;
  return ck_tmpdir(tmp, sizeof tmp, "fmt") ? 0 : -1;
}
static int teardown(void **state) {
  (void)state;
  ck_rm_rf(tmp);
  return 0;
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  if (d) closedir(d);
  return n;
}

static void test_crc32c_vectors(void **state) {
  (void)state;
  assert_int_equal(shardrt__crc32c(0, "123456789", 9), 0xe3069283u); /* the CRC-32C check value */
  unsigned char zeros[32] = {0}, ones[32];
  memset(ones, 0xff, sizeof ones);
  assert_int_equal(shardrt__crc32c(0, zeros, 32), 0x8a9136aau); /* RFC 3720 B.4 */
  assert_int_equal(shardrt__crc32c(0, ones, 32), 0x62a8ab43u);
  assert_int_equal(shardrt__crc32c(0, "", 0), 0u);
  unsigned char buf[1031];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 131 + 7);
  for (size_t n = 0; n < sizeof buf; n += 37) {
    uint32_t whole = shardrt__crc32c(0, buf, n);
    assert_int_equal(whole, shardrt__crc32c_portable(0, buf, n));
    size_t cut = n / 3;
    assert_int_equal(whole, shardrt__crc32c(shardrt__crc32c(0, buf, cut), buf + cut, n - cut));
  }
}

static shardrt_status write_three(const char *path, const char *odd_name) {
  shardrt__st_tensor t[4] = {
      {.name = "a.weight", .dtype = SHARDRT_F32, .ndim = 2, .shape = {2, 3}},
      {.name = (char *)odd_name, .dtype = SHARDRT_BF16, .ndim = 1, .shape = {5}},
      {.name = "empty", .dtype = SHARDRT_F16, .ndim = 2, .shape = {0, 4}},
      {.name = "c", .dtype = SHARDRT_F16, .ndim = 0},
  };
  const char *meta[] = {"format", "pt", "note", "quote\" and \\ back"};
  shardrt__st_writer w;
  SHARDRT__CHECK(shardrt__stw_begin(&w, path, t, 4, meta, 2));
  unsigned char data[6 * 4 + 5 * 2 + 2];
  float a[6];
  for (int i = 0; i < 6; i++) a[i] = ck_exact_value(0, i);
  memcpy(data, a, 24);
  for (int i = 0; i < 5; i++) {
    uint16_t h = shardrt_f32_to_bf16(ck_exact_value(1, i));
    memcpy(data + 24 + 2 * i, &h, 2);
  }
  uint16_t c = shardrt_f32_to_f16(ck_exact_value(3, 0));
  memcpy(data + 34, &c, 2);
  /* Odd chunk sizes that straddle tensor boundaries. */
  size_t cuts[] = {5, 14, 7, 10};
  size_t at = 0;
  for (size_t k = 0; k < 4; k++) {
    SHARDRT__CHECK(shardrt__stw_write(&w, data + at, cuts[k]));
    at += cuts[k];
  }
  assert_int_equal(at, sizeof data);
  return shardrt__stw_finish(&w);
}

typedef struct collect {
  float v[64];
  size_t n;
  shardrt_dtype dt;
} collect;
static shardrt_status collect_chunk(uint64_t off, const void *data, size_t n, void *arg) {
  collect *c = arg;
  shardrt_convert(c->v + off, SHARDRT_F32, data, c->dt, n);
  c->n += n;
  return SHARDRT_OK;
}

static void test_safetensors_roundtrip(void **state) {
  (void)state;
  char path[4200];
  snprintf(path, sizeof path, "%s/rt.safetensors", tmp);
  const char *odd = "b.\"odd\"\\name\n\xc3\xa9";
  assert_int_equal(write_three(path, odd), SHARDRT_OK);
  assert_int_equal(count_entries(tmp), 1); /* no temporary left behind */
  shardrt__st_file f;
  assert_int_equal(shardrt__st_open(&f, path), SHARDRT_OK);
  assert_true(f.has_header_crc);
  assert_int_equal(f.data_start % 8, 0);
  assert_int_equal(f.n, 4);
  assert_string_equal(shardrt__st_meta(&f, "note"), "quote\" and \\ back");
  assert_string_equal(shardrt__st_meta(&f, "format"), "pt");
  int ia = shardrt__st_find(&f, "a.weight"), ib = shardrt__st_find(&f, odd), ic = shardrt__st_find(&f, "c"),
      ie = shardrt__st_find(&f, "empty");
  assert_true(ia >= 0 && ib >= 0 && ic >= 0 && ie >= 0);
  assert_int_equal(shardrt__st_find(&f, "nope"), -1);
  assert_int_equal(f.t[ia].ndim, 2);
  assert_int_equal(f.t[ia].shape[1], 3);
  assert_int_equal(f.t[ib].dtype, SHARDRT_BF16);
  assert_int_equal(f.t[ic].ndim, 0);
  assert_int_equal(f.t[ie].end - f.t[ie].begin, 0);
  char scratch[8];
  collect c = {.dt = SHARDRT_F32};
  assert_int_equal(shardrt__st_stream(&f, ia, scratch, sizeof scratch, collect_chunk, &c), SHARDRT_OK);
  assert_int_equal(c.n, 6);
  for (int i = 0; i < 6; i++) assert_true(c.v[i] == ck_exact_value(0, i));
  c = (collect){.dt = SHARDRT_BF16};
  assert_int_equal(shardrt__st_stream(&f, ib, scratch, 6, collect_chunk, &c), SHARDRT_OK);
  for (int i = 0; i < 5; i++) assert_true(c.v[i] == ck_exact_value(1, i));
  c = (collect){.dt = SHARDRT_F16};
  assert_int_equal(shardrt__st_stream(&f, ic, scratch, sizeof scratch, collect_chunk, &c), SHARDRT_OK);
  assert_true(c.v[0] == ck_exact_value(3, 0));
  float part[2];
  assert_int_equal(shardrt__st_read_raw(&f, ia, 8, 8, part), SHARDRT_OK);
  assert_true(part[0] == ck_exact_value(0, 2) && part[1] == ck_exact_value(0, 3));
  assert_int_equal(shardrt__st_map(&f), SHARDRT_OK);
  assert_int_equal(shardrt__st_verify_mapped(&f, ib), SHARDRT_OK);
  shardrt__st_close(&f);
  shardrt__st_close(&f); /* idempotent */
}

static void test_safetensors_damage(void **state) {
  (void)state;
  char path[4200], bad[4300];
  snprintf(path, sizeof path, "%s/d.safetensors", tmp);
  assert_int_equal(write_three(path, "b"), SHARDRT_OK);
  shardrt__st_file f;
  char scratch[64];

  /* A flipped data byte: the header still opens, the tensor fails its checksum. */
  snprintf(bad, sizeof bad, "%s/data.safetensors", tmp);
  assert_int_equal(ck_copy_file(path, bad), 0);
  assert_int_equal(ck_flip_byte(bad, -3), 0); /* inside tensor "b" */
  assert_int_equal(shardrt__st_open(&f, bad), SHARDRT_OK);
  assert_int_equal(shardrt__st_stream(&f, shardrt__st_find(&f, "a.weight"), scratch, 64, NULL, NULL), SHARDRT_OK);
  assert_int_equal(shardrt__st_stream(&f, shardrt__st_find(&f, "b"), scratch, 64, NULL, NULL), SHARDRT_ERR_CORRUPT);
  assert_non_null(strstr(shardrt_last_error(), "'b'"));
  assert_non_null(strstr(shardrt_last_error(), "data.safetensors"));
  assert_int_equal(shardrt__st_map(&f), SHARDRT_OK);
  assert_int_equal(shardrt__st_verify_mapped(&f, shardrt__st_find(&f, "b")), SHARDRT_ERR_CORRUPT);
  shardrt__st_close(&f);

  /* A flipped header byte (inside a shape digit): the header checksum catches it. */
  snprintf(bad, sizeof bad, "%s/hdr.safetensors", tmp);
  assert_int_equal(ck_copy_file(path, bad), 0);
  assert_int_equal(ck_flip_byte(bad, 100), 0);
  assert_int_equal(shardrt__st_open(&f, bad), SHARDRT_ERR_CORRUPT);
  assert_non_null(strstr(shardrt_last_error(), "hdr.safetensors"));

  /* Truncated by one byte, and by everything after the length. */
  snprintf(bad, sizeof bad, "%s/trunc.safetensors", tmp);
  assert_int_equal(ck_copy_file(path, bad), 0);
  assert_int_equal(truncate(bad, ck_file_size(path) - 1), 0);
  assert_int_equal(shardrt__st_open(&f, bad), SHARDRT_ERR_CORRUPT);
  assert_non_null(strstr(shardrt_last_error(), "truncated"));
  assert_int_equal(truncate(bad, 12), 0);
  assert_int_equal(shardrt__st_open(&f, bad), SHARDRT_ERR_CORRUPT);
  assert_int_equal(truncate(bad, 3), 0);
  assert_int_equal(shardrt__st_open(&f, bad), SHARDRT_ERR_CORRUPT);

  snprintf(bad, sizeof bad, "%s/missing.safetensors", tmp);
  assert_int_equal(shardrt__st_open(&f, bad), SHARDRT_ERR_NOT_FOUND);
}

static void write_raw(const char *path, const char *json, size_t data_bytes) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  uint64_t n = strlen(json);
  unsigned char len[8];
  for (int k = 0; k < 8; k++) len[k] = (unsigned char)(n >> (8 * k));
  fwrite(len, 1, 8, fp);
  fwrite(json, 1, n, fp);
  for (size_t i = 0; i < data_bytes; i++) fputc((int)(i * 3), fp);
  fclose(fp);
}

static void test_safetensors_foreign(void **state) {
  (void)state;
  char path[4200];
  shardrt__st_file f;
  char scratch[16];
  /* What another writer (e.g. Python safetensors) produces: compact JSON, no checksums. */
  snprintf(path, sizeof path, "%s/foreign.safetensors", tmp);
  write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"__metadata__\":{\"format\":\"pt\"},"
                  "\"y\":{\"dtype\":\"BF16\",\"shape\":[1,3],\"data_offsets\":[8,14]}}", 14);
  assert_int_equal(shardrt__st_open(&f, path), SHARDRT_OK);
  assert_false(f.has_header_crc);
  assert_int_equal(f.n, 2);
  assert_false(f.t[0].has_crc);
  assert_int_equal(shardrt__st_stream(&f, shardrt__st_find(&f, "y"), scratch, 16, NULL, NULL), SHARDRT_OK);
  shardrt__st_close(&f);

  write_raw(path, "{\"x\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
  assert_int_equal(shardrt__st_open(&f, path), SHARDRT_ERR_UNSUPPORTED);
  assert_non_null(strstr(shardrt_last_error(), "'x'"));
  assert_non_null(strstr(shardrt_last_error(), "I64"));

  write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
  assert_int_equal(shardrt__st_open(&f, path), SHARDRT_ERR_CORRUPT); /* overlap */
  write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
  assert_int_equal(shardrt__st_open(&f, path), SHARDRT_ERR_CORRUPT); /* shape vs bytes */
  assert_non_null(strstr(shardrt_last_error(), "'x'"));
  write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8);
  assert_int_equal(shardrt__st_open(&f, path), SHARDRT_ERR_CORRUPT); /* unterminated JSON */
  write_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 9);
  assert_int_equal(shardrt__st_open(&f, path), SHARDRT_ERR_CORRUPT); /* trailing bytes */
  assert_non_null(strstr(shardrt_last_error(), "longer"));
}

static void test_writer_failures_leave_nothing(void **state) {
  (void)state;
  char dir[4200], path[4300];
  snprintf(dir, sizeof dir, "%s/w", tmp);
  assert_int_equal(shardrt__mkdir_p(dir), SHARDRT_OK);
  snprintf(path, sizeof path, "%s/x.safetensors", dir);
  shardrt__st_tensor t = {.name = "x", .dtype = SHARDRT_F32, .ndim = 1, .shape = {4}};
  shardrt__st_writer w;
  float v[4] = {1, 2, 3, 4};
  assert_int_equal(shardrt__stw_begin(&w, path, &t, 1, NULL, 0), SHARDRT_OK);
  assert_int_equal(count_entries(dir), 1);
  assert_int_equal(ck_file_size(path), -1); /* nothing under the final name yet */
  assert_int_equal(shardrt__stw_write(&w, v, 8), SHARDRT_OK);
  assert_int_equal(shardrt__stw_write(&w, v, 12), SHARDRT_ERR_INTERNAL); /* past the declared bytes */
  assert_int_equal(shardrt__stw_finish(&w), SHARDRT_ERR_INTERNAL);      /* 8 of 16 bytes */
  assert_int_equal(count_entries(dir), 0);
  assert_int_equal(shardrt__stw_begin(&w, path, &t, 1, NULL, 0), SHARDRT_OK);
  shardrt__stw_abort(&w);
  shardrt__stw_abort(&w);
  assert_int_equal(count_entries(dir), 0);
  t.shape[0] = -1;
  assert_int_equal(shardrt__stw_begin(&w, path, &t, 1, NULL, 0), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(count_entries(dir), 0);
  snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", tmp);
  t.shape[0] = 4;
  assert_int_equal(shardrt__stw_begin(&w, path, &t, 1, NULL, 0), SHARDRT_ERR_IO);
  assert_int_equal(shardrt__mkdir_p(""), SHARDRT_ERR_INVALID_ARGUMENT);
}

static void test_meta_roundtrip_and_damage(void **state) {
  (void)state;
  char dir[4200], path[4300];
  snprintf(dir, sizeof dir, "%s/ck3", tmp);
  assert_int_equal(shardrt__mkdir_p(dir), SHARDRT_OK);
  unsigned char blob[5] = {0, 1, 0xff, '"', '\\'};
  assert_int_equal(ck_synth_write(dir, 3, false, blob, sizeof blob), 0);
  shardrt__ck_meta m;
  assert_int_equal(shardrt__meta_check_complete(dir, &m), SHARDRT_OK);
  assert_int_equal(m.world_size, 3);
  assert_string_equal(m.strategy, "FULL_SHARD");
  assert_int_equal(m.ts.step, 42);
  assert_true(m.ts.loss_scale == 65536.0);
  assert_int_equal(m.ts.good_steps, 7);
  assert_int_equal(m.ts.hysteresis_left, 2);
  assert_int_equal(m.nunits, 2);
  assert_int_equal(m.units[1].numel, 49);
  assert_int_equal(m.units[1].npieces, 3);
  assert_int_equal(m.units[1].pieces[2].begin, 32);
  assert_int_equal(m.nparams, 5);
  assert_string_equal(m.params[3].name, "h.1.w");
  assert_int_equal(m.params[3].offset, 31);
  assert_int_equal(m.params[3].shape[1], 3);
  assert_true(m.in_shards[2] && m.role_dtype[1] == SHARDRT_BF16 && m.role_dtype[2] == SHARDRT_F16);
  assert_int_equal(m.user_len, 5);
  assert_memory_equal(m.user, blob, 5);
  assert_int_equal(m.nfiles, 3);
  shardrt__meta_free(&m);

  /* A rank file shorter than recorded makes the checkpoint incomplete. */
  snprintf(path, sizeof path, "%s/rank_00001.safetensors", dir);
  long sz = ck_file_size(path);
  assert_int_equal(truncate(path, sz - 4), 0);
  assert_int_equal(shardrt__meta_check_complete(dir, &m), SHARDRT_ERR_CORRUPT);
  assert_non_null(strstr(shardrt_last_error(), "rank_00001"));
  assert_int_equal(unlink(path), 0);
  assert_int_equal(shardrt__meta_check_complete(dir, &m), SHARDRT_ERR_CORRUPT);
  assert_non_null(strstr(shardrt_last_error(), "missing"));

  /* meta.json itself damaged or missing. */
  snprintf(path, sizeof path, "%s/meta.json", dir);
  assert_int_equal(ck_flip_byte(path, 60), 0);
  assert_int_equal(shardrt__meta_read(dir, &m), SHARDRT_ERR_CORRUPT);
  assert_non_null(strstr(shardrt_last_error(), "checksum"));
  assert_int_equal(unlink(path), 0);
  assert_int_equal(shardrt__meta_read(dir, &m), SHARDRT_ERR_NOT_FOUND);
  assert_non_null(strstr(shardrt_last_error(), "incomplete"));
}

static void make_ck(const char *root, int step, int world) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/step_%d", root, step);
  assert_int_equal(shardrt__mkdir_p(dir), SHARDRT_OK);
  assert_int_equal(ck_synth_write(dir, world, false, NULL, 0), 0);
}

static void test_latest_checkpoint(void **state) {
  (void)state;
  char root[4200], dir[4300], got[4400];
  snprintf(root, sizeof root, "%s/run", tmp);
  assert_int_equal(shardrt__mkdir_p(root), SHARDRT_OK);
  assert_int_equal(shardrt_latest_checkpoint(root, got, sizeof got), SHARDRT_ERR_NOT_FOUND);
  make_ck(root, 1, 2);
  make_ck(root, 3, 1);
  make_ck(root, 10, 2);
  make_ck(root, 7, 2);
  snprintf(dir, sizeof dir, "%s/step_10/meta.json", root); /* a save that never committed */
  assert_int_equal(unlink(dir), 0);
  snprintf(dir, sizeof dir, "%s/step_7/rank_00000.safetensors", root); /* a torn file */
  assert_int_equal(truncate(dir, 16), 0);
  snprintf(dir, sizeof dir, "%s/step_x", root); /* not a step directory */
  assert_int_equal(shardrt__mkdir_p(dir), SHARDRT_OK);
  assert_int_equal(shardrt_latest_checkpoint(root, got, sizeof got), SHARDRT_OK);
  snprintf(dir, sizeof dir, "%s/step_3", root);
  assert_string_equal(got, dir);
  char small[8];
  assert_int_equal(shardrt_latest_checkpoint(root, small, sizeof small), SHARDRT_ERR_INVALID_ARGUMENT);
  snprintf(dir, sizeof dir, "%s/absent", tmp);
  assert_int_equal(shardrt_latest_checkpoint(dir, got, sizeof got), SHARDRT_ERR_NOT_FOUND);
  assert_int_equal(shardrt_latest_checkpoint(NULL, got, sizeof got), SHARDRT_ERR_INVALID_ARGUMENT);
}

static void test_durable_helpers(void **state) {
  (void)state;
  char path[4200];
  snprintf(path, sizeof path, "%s/d/e/f.txt", tmp);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/d/e", tmp);
  assert_int_equal(shardrt__mkdir_p(dir), SHARDRT_OK);
  assert_int_equal(shardrt__mkdir_p(dir), SHARDRT_OK); /* idempotent */
  assert_int_equal(shardrt__write_file_durable(path, "hello", 5), SHARDRT_OK);
  assert_int_equal(count_entries(dir), 1);
  char *text;
  size_t len;
  assert_int_equal(shardrt__read_file(path, &text, &len), SHARDRT_OK);
  assert_int_equal(len, 5);
  assert_string_equal(text, "hello");
  free(text);
  assert_int_equal(shardrt__mkdir_p(path), SHARDRT_ERR_IO); /* a file, not a directory */
  assert_int_equal(shardrt__unlink_durable(path), SHARDRT_OK);
  assert_int_equal(shardrt__unlink_durable(path), SHARDRT_OK); /* already gone */
  assert_int_equal(shardrt__read_file(path, &text, &len), SHARDRT_ERR_NOT_FOUND);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32c_vectors),
      cmocka_unit_test(test_safetensors_roundtrip),
      cmocka_unit_test(test_safetensors_damage),
      cmocka_unit_test(test_safetensors_foreign),
      cmocka_unit_test(test_writer_failures_leave_nothing),
      cmocka_unit_test(test_meta_roundtrip_and_damage),
      cmocka_unit_test(test_latest_checkpoint),
      cmocka_unit_test(test_durable_helpers),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
