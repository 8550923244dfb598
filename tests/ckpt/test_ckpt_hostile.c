/* SPDX-License-Identifier: Apache-2.0 */
/* Hostile files (issue #14): crafted safetensors headers and meta.json
 * files, and checkpoints whose files were swapped, duplicated or left from
 * another save. Every case must be one clear error naming the file and what
 * is wrong, never a crash (the ASan/UBSan stage runs this too), a hang or a
 * silent load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <time.h>

#include "ck_synth.h"
#include "ckpt_test_util.h"
#include "shardrt/ckpt.h"
#include "src/ckpt/crc32c.h"
#include "src/ckpt/durable.h"
#include "src/ckpt/ckpt_internal.h"
#include "src/ckpt/meta.h"
#include "src/ckpt/safetensors.h"
#include "src/ckpt/source.h"
#include "src/config/config_internal.h"

static char tmp[4096];

static int setup(void **state) {
  (void)state;
  return ck_tmpdir(tmp, sizeof tmp, "hostile") ? 0 : -1;
}
static int teardown(void **state) {
  (void)state;
  ck_rm_rf(tmp);
  return 0;
}

/* A safetensors file: 8-byte length, the header as given, then data_bytes
 * zero bytes. */
static void write_st(const char *path, const char *hdr, size_t hlen, size_t data_bytes) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  unsigned char len[8];
  for (int k = 0; k < 8; k++) len[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
  assert_int_equal(fwrite(len, 1, 8, f), 8);
  assert_int_equal(fwrite(hdr, 1, hlen, f), hlen);
  for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
  fclose(f);
}

static void expect_st_error(const char *hdr, size_t data_bytes, shardrt_status want, const char *needle) {
  char path[4200];
  snprintf(path, sizeof path, "%s/crafted.safetensors", tmp);
  write_st(path, hdr, strlen(hdr), data_bytes);
  shardrt__st_file f;
  shardrt_status rc = shardrt__st_open(&f, path);
  if (rc == SHARDRT_OK) {
    shardrt__st_close(&f);
    fail_msg("accepted the crafted header %.200s", hdr);
  }
  if (rc != want) fail_msg("header %.120s: %s (%s), expected %s", hdr, shardrt_status_str(rc), shardrt_last_error(), shardrt_status_str(want));
  if (!strstr(shardrt_last_error(), "crafted.safetensors")) fail_msg("error does not name the file: %s", shardrt_last_error());
  if (needle && !strstr(shardrt_last_error(), needle)) fail_msg("error '%s' does not say '%s'", shardrt_last_error(), needle);
}

#define T1 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

/* Issue item 1: a second "__metadata__" key used to reallocate the metadata
 * arrays without resetting their count (heap overflow, invalid free). */
static void test_duplicate_metadata(void **state) {
  (void)state;
  expect_st_error("{\"__metadata__\":{\"x\":\"1\",\"y\":\"2\"},\"__metadata__\":{\"z\":\"3\"}," T1 "}", 8, SHARDRT_ERR_CORRUPT,
                  "duplicate");
}

/* Item 6: the same tensor name twice (the first one used to win). */
static void test_duplicate_tensor(void **state) {
  (void)state;
  expect_st_error("{" T1 ",\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16, SHARDRT_ERR_CORRUPT, "duplicate");
}

/* Item 9: YAML that is not JSON, and values of the wrong JSON type. */
static void test_not_json(void **state) {
  (void)state;
  const char *cases[] = {
      "{a: {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",           /* unquoted key */
      "{" T1 "}\n---\n{}",                                                       /* a second document */
      "{\"a\":!!map {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",  /* a tag */
      "{'a':{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",          /* single quotes */
      "{" T1 "} # comment",                                                      /* a comment */
      "{" T1 ",}",                                                               /* trailing comma */
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[NaN],\"data_offsets\":[0,8]}}",      /* NaN */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    expect_st_error(cases[i], 8, SHARDRT_ERR_CORRUPT, "not valid JSON");
  /* Numbers as strings, a non-object __metadata__, non-string values. */
  expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, SHARDRT_ERR_CORRUPT, "shape entry 0");
  expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",\"8\"]}}", 8, SHARDRT_ERR_CORRUPT, "data_offsets");
  expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, SHARDRT_ERR_CORRUPT, "shape entry 0");
  expect_st_error("{\"__metadata__\":[\"x\"]," T1 "}", 8, SHARDRT_ERR_CORRUPT, "__metadata__");
  expect_st_error("{\"__metadata__\":\"x\"," T1 "}", 8, SHARDRT_ERR_CORRUPT, "__metadata__");
  expect_st_error("{\"__metadata__\":{\"k\":5}," T1 "}", 8, SHARDRT_ERR_CORRUPT, "not a string");
  expect_st_error("{\"a\":[1,2]}", 0, SHARDRT_ERR_CORRUPT, "not an object");
  expect_st_error("[" T1 "]", 8, SHARDRT_ERR_CORRUPT, NULL);
  expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\\u0000\":{}}", 8, SHARDRT_ERR_CORRUPT, NULL);
}

/* Item 5: deep nesting is refused in linear time (it took 45 s for 200 KB). */
static void test_deep_nesting(void **state) {
  (void)state;
  size_t n = 200 * 1024;
  char *h = malloc(n + 1);
  assert_non_null(h);
  size_t half = (n - 2) / 2;
  h[0] = '{';
  memcpy(h + 1, "\"a\":", 4);
  size_t at = 5;
  for (size_t i = 0; i < half - 4; i++) h[at++] = '[';
  for (size_t i = 0; i < half - 4; i++) h[at++] = ']';
  h[at++] = '}';
  h[at] = '\0';
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  expect_st_error(h, 0, SHARDRT_ERR_CORRUPT, "nesting deeper than");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  /* Not a speed target, a complexity one: one pass over 200 KB takes
   * microseconds; the quadratic parser took 45 s. 5 s leaves room for a
   * loaded machine and sanitizers. */
  assert_true((double)(t1.tv_sec - t0.tv_sec) < 5.0);
  free(h);
  /* Nesting in a string is not nesting. */
  char path[4200];
  snprintf(path, sizeof path, "%s/strings.safetensors", tmp);
  char hdr[512];
  snprintf(hdr, sizeof hdr, "{\"__metadata__\":{\"x\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}," T1 "}");
  write_st(path, hdr, strlen(hdr), 8);
  shardrt__st_file f;
  assert_int_equal(shardrt__st_open(&f, path), SHARDRT_OK);
  shardrt__st_close(&f);
}

/* Shapes whose product wraps around 64 bits must not pass the size check. */
static void test_shape_overflow(void **state) {
  (void)state;
  /* 2^32 * 2^32 * 4 bytes wraps to 0 bytes. */
  expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0, SHARDRT_ERR_CORRUPT,
                  "overflow");
  expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 0, SHARDRT_ERR_CORRUPT,
                  "overflow");
  expect_st_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,0]}}", 0, SHARDRT_ERR_CORRUPT,
                  "not valid JSON");
  expect_st_error("{\"__metadata__\":{\"crc32c:zz\":\"00000000\"}," T1 "}", 8, SHARDRT_ERR_CORRUPT, "does not hold");
}

/* ---- meta.json ---- */

/* Rewrites dir/meta.json: replaces `from` by `to` once and fixes the
 * checksum, so that the reader gets to the semantics. */
static void patch_meta(const char *dir, const char *from, const char *to) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, SHARDRT__CK_META_FILE);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  static char text[1 << 16], out[1 << 16];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  char *at = strstr(text, from);
  if (!at) fail_msg("meta.json has no '%s'", from);
  size_t pre = (size_t)(at - text);
  snprintf(out, sizeof out, "%.*s%s%s", (int)pre, text, to, at + strlen(from));
  size_t len = strlen(out);
  size_t pl = strlen("{\"crc32c\":\"");
  memcpy(out + pl, "00000000", 8);
  char hex[9];
  snprintf(hex, sizeof hex, "%08x", shardrt__crc32c(0, out, len));
  memcpy(out + pl, hex, 8);
  f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(out, 1, len, f), len);
  fclose(f);
}

static void expect_meta_error(const char *from, const char *to, shardrt_status want, const char *needle) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/meta_case", tmp);
  ck_rm_rf(dir);
  assert_int_equal(shardrt__mkdir_p(dir), SHARDRT_OK);
  assert_int_equal(ck_synth_write(dir, 2, false, "ab", 2), 0);
  patch_meta(dir, from, to);
  shardrt__ck_meta m;
  shardrt_status rc = shardrt__meta_read(dir, &m);
  if (rc == SHARDRT_OK) {
    shardrt__meta_free(&m);
    fail_msg("meta.json with '%s' -> '%s' was accepted", from, to);
  }
  if (rc != want) fail_msg("'%s' -> '%s': %s (%s)", from, to, shardrt_status_str(rc), shardrt_last_error());
  if (!strstr(shardrt_last_error(), "meta.json")) fail_msg("error does not name meta.json: %s", shardrt_last_error());
  if (needle && !strstr(shardrt_last_error(), needle)) fail_msg("error '%s' does not say '%s'", shardrt_last_error(), needle);
  /* merge-weights must refuse it too (it wrote 2^64 elements in 0 bytes). */
  char out[4300];
  snprintf(out, sizeof out, "%s/merged.safetensors", tmp);
  assert_int_not_equal(shardrt_merge_checkpoint(dir, out, SHARDRT_F32, false, NULL), SHARDRT_OK);
  assert_int_equal(ck_file_size(out), -1);
}

/* Items 7 and 8. */
static void test_meta_semantics(void **state) {
  (void)state;
  expect_meta_error("\"loss_scale\":65536", "\"loss_scale\":-1", SHARDRT_ERR_CORRUPT, "loss_scale");
  expect_meta_error("\"loss_scale\":65536", "\"loss_scale\":0", SHARDRT_ERR_CORRUPT, "loss_scale");
  expect_meta_error("\"loss_scale\":65536", "\"loss_scale\":1e999", SHARDRT_ERR_CORRUPT, NULL);
  expect_meta_error("\"loss_scale\":65536", "\"loss_scale\":NaN", SHARDRT_ERR_CORRUPT, "not valid JSON");
  expect_meta_error("\"step\":42", "\"step\":\"42\"", SHARDRT_ERR_CORRUPT, "train_state");
  expect_meta_error("\"step\":42", "\"step\":-1", SHARDRT_ERR_CORRUPT, "train_state");
  expect_meta_error("\"in_shards\":true", "\"in_shards\":\"true\"", SHARDRT_ERR_CORRUPT, "in_shards");
  expect_meta_error("\"version\":2", "\"version\":2,\"version\":2", SHARDRT_ERR_CORRUPT, "duplicate");
  /* Duplicate parameter names (merge wrote duplicate keys). */
  expect_meta_error("\"name\":\"h.0.b\"", "\"name\":\"h.0.w\"", SHARDRT_ERR_CORRUPT, "listed twice");
  /* Overlapping parameters. */
  expect_meta_error("\"name\":\"h.0.b\",\"unit\":1,\"offset\":25", "\"name\":\"h.0.b\",\"unit\":1,\"offset\":20",
                    SHARDRT_ERR_CORRUPT, "overlap");
  /* Shape products that wrap: 2^32 x 2^32 elements (wrapped to 0). */
  expect_meta_error("\"offset\":25,\"shape\":[5]", "\"offset\":25,\"shape\":[4294967296,4294967296]", SHARDRT_ERR_CORRUPT,
                    "overflows");
  /* offset + numel that wraps past INT64_MAX. */
  expect_meta_error("\"offset\":25,\"shape\":[5]", "\"offset\":9223372036854775800,\"shape\":[5]", SHARDRT_ERR_CORRUPT,
                    "ends past");
  expect_meta_error("\"offset\":25,\"shape\":[5]", "\"offset\":25,\"shape\":[9223372036854775807,2]", SHARDRT_ERR_CORRUPT,
                    "overflows");
  /* Files that are not one per rank, names that are not the rank's file. */
  expect_meta_error("\"world_size\":2", "\"world_size\":3", SHARDRT_ERR_CORRUPT, "world_size");
  expect_meta_error("\"name\":\"rank_00001.safetensors\"", "\"name\":\"rank_00000.safetensors\"", SHARDRT_ERR_CORRUPT,
                    "files[1]");
  expect_meta_error("\"model_file\":\"\"", "\"model_file\":\"../x\"", SHARDRT_ERR_CORRUPT, "model_file");
  expect_meta_error("\"checkpoint_id\":\"00c0ffee5eed0001\"", "\"checkpoint_id\":\"xyz\"", SHARDRT_ERR_CORRUPT,
                    "checkpoint_id");
  /* Control: the harness's re-checksummed edit of a sound value loads. */
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/meta_case", tmp);
  ck_rm_rf(dir);
  assert_int_equal(shardrt__mkdir_p(dir), SHARDRT_OK);
  assert_int_equal(ck_synth_write(dir, 2, false, "ab", 2), 0);
  patch_meta(dir, "\"loss_scale\":65536", "\"loss_scale\":1024");
  shardrt__ck_meta m;
  assert_int_equal(shardrt__meta_read(dir, &m), SHARDRT_OK);
  assert_true(m.ts.loss_scale == 1024.0);
  shardrt__meta_free(&m);
}

/* ---- identity (item 2) ---- */

static void make(const char *dir, int world, bool full, const char *id) {
  ck_rm_rf(dir);
  assert_int_equal(shardrt__mkdir_p(dir), SHARDRT_OK);
  ck_synth_id = id;
  assert_int_equal(ck_synth_write(dir, world, full, "u", 1), 0);
  ck_synth_id = "00c0ffee5eed0001";
}

static void expect_merge_error(const char *dir, const char *needle1, const char *needle2) {
  char out[4300];
  snprintf(out, sizeof out, "%s/merged.safetensors", tmp);
  shardrt_status rc = shardrt_merge_checkpoint(dir, out, SHARDRT_F32, true, NULL);
  if (rc != SHARDRT_ERR_CORRUPT) fail_msg("merge of '%s': %s (%s), expected CORRUPT", dir, shardrt_status_str(rc), shardrt_last_error());
  if (!strstr(shardrt_last_error(), needle1)) fail_msg("error '%s' does not name '%s'", shardrt_last_error(), needle1);
  if (needle2 && !strstr(shardrt_last_error(), needle2)) fail_msg("error '%s' does not say '%s'", shardrt_last_error(), needle2);
  assert_int_equal(ck_file_size(out), -1);
}

static void swap(const char *a, const char *b) {
  char t[4400];
  snprintf(t, sizeof t, "%s.swap", a);
  assert_int_equal(rename(a, t), 0);
  assert_int_equal(rename(b, a), 0);
  assert_int_equal(rename(t, b), 0);
}

static void test_identity(void **state) {
  (void)state;
  char a[4200], b[4200], p0[4300], p1[4300], q[4300];
  snprintf(a, sizeof a, "%s/ck_a", tmp);
  snprintf(b, sizeof b, "%s/ck_b", tmp);
  /* World 4 over 35 + 49 elements: ranks 1 and 2 hold 9 + 12 elements per
   * role, so their files have the same size: the swap that used to load. */
  make(a, 4, false, "00000000000000aa");
  snprintf(p0, sizeof p0, "%s/rank_00001.safetensors", a);
  snprintf(p1, sizeof p1, "%s/rank_00002.safetensors", a);
  assert_int_equal(ck_file_size(p0), ck_file_size(p1));
  swap(p0, p1);
  expect_merge_error(a, "rank_00001.safetensors", "rank 2's file");
  swap(p0, p1);
  char out[4300];
  snprintf(out, sizeof out, "%s/merged.safetensors", tmp);
  assert_int_equal(shardrt_merge_checkpoint(a, out, SHARDRT_F32, true, NULL), SHARDRT_OK); /* control */
  unlink(out);
  /* A duplicated file. */
  snprintf(q, sizeof q, "%s.orig", p1);
  assert_int_equal(rename(p1, q), 0);
  assert_int_equal(ck_copy_file(p0, p1), 0);
  expect_merge_error(a, "rank_00002.safetensors", "rank 1's file");
  assert_int_equal(rename(q, p1), 0);
  /* A stale file: the same rank's file from another save, same size. */
  make(b, 4, false, "00000000000000bb");
  char s1[4300];
  snprintf(s1, sizeof s1, "%s/rank_00001.safetensors", b);
  assert_int_equal(ck_copy_file(s1, p0), 0);
  assert_int_equal(ck_file_size(s1), ck_file_size(p0));
  expect_merge_error(a, "rank_00001.safetensors", "00000000000000bb");
  /* A stale meta.json: another save's, same layout and size. */
  make(a, 4, false, "00000000000000aa");
  char ma[4300], mb[4300];
  snprintf(ma, sizeof ma, "%s/meta.json", a);
  snprintf(mb, sizeof mb, "%s/meta.json", b);
  assert_int_equal(ck_copy_file(mb, ma), 0);
  expect_merge_error(a, "rank_0000", "00000000000000aa");
  /* A stale model file. */
  make(a, 2, true, "00000000000000aa");
  make(b, 2, true, "00000000000000bb");
  snprintf(p0, sizeof p0, "%s/model.safetensors", a);
  snprintf(q, sizeof q, "%s/model.safetensors", b);
  assert_int_equal(ck_copy_file(q, p0), 0);
  expect_merge_error(a, "model.safetensors", "00000000000000bb");
  /* A listed file without a header checksum (a foreign writer's). */
  make(a, 1, false, "00000000000000aa");
  snprintf(p0, sizeof p0, "%s/rank_00000.safetensors", a);
  write_st(p0, "{" T1 "}", strlen("{" T1 "}"), 8);
  char mpath[4300];
  snprintf(mpath, sizeof mpath, "%s/meta.json", a);
  /* meta.json records the old size: fix it so the checksum check is reached. */
  char from[64], to[64];
  shardrt__ck_meta m;
  assert_int_equal(shardrt__meta_read(a, &m), SHARDRT_OK);
  snprintf(from, sizeof from, "\"bytes\":%llu", (unsigned long long)m.files[0].bytes);
  snprintf(to, sizeof to, "\"bytes\":%ld", ck_file_size(p0));
  shardrt__meta_free(&m);
  patch_meta(a, from, to);
  expect_merge_error(a, "rank_00000.safetensors", "no header checksum");
}

/* Deliverable 4: the newest damaged checkpoint is skipped with a warning
 * naming what is wrong; SHARDRT_CKPT_FALLBACK=0 makes it an error. */
static char g_warn[2048];
static void catch_warn(const char *msg, void *user) {
  (void)user;
  snprintf(g_warn, sizeof g_warn, "%s", msg);
}

static void test_fallback(void **state) {
  (void)state;
  char root[4200], d1[4300], d2[4300], p[4400], buf[4400];
  snprintf(root, sizeof root, "%s/root", tmp);
  snprintf(d1, sizeof d1, "%s/step_1", root);
  snprintf(d2, sizeof d2, "%s/step_2", root);
  make(d1, 2, false, "0000000000000001");
  make(d2, 2, false, "0000000000000002");
  /* step_2's rank 1 file replaced by step_1's (same size): damaged. */
  snprintf(p, sizeof p, "%s/rank_00001.safetensors", d2);
  char s[4400];
  snprintf(s, sizeof s, "%s/rank_00001.safetensors", d1);
  assert_int_equal(ck_copy_file(s, p), 0);
  shardrt__warn_reset();
  shardrt__warn_set_sink(catch_warn, NULL);
  g_warn[0] = '\0';
  assert_int_equal(shardrt_latest_checkpoint(root, buf, sizeof buf), SHARDRT_OK);
  assert_string_equal(buf, d1);
  assert_non_null(strstr(g_warn, "step_2"));
  assert_non_null(strstr(g_warn, "rank_00001.safetensors"));
  setenv("SHARDRT_CKPT_FALLBACK", "0", 1);
  assert_int_equal(shardrt_latest_checkpoint(root, buf, sizeof buf), SHARDRT_ERR_CORRUPT);
  assert_non_null(strstr(shardrt_last_error(), "step_2"));
  unsetenv("SHARDRT_CKPT_FALLBACK");
  /* Incomplete (no meta.json) is skipped even then. */
  make(d2, 2, false, "0000000000000002");
  snprintf(p, sizeof p, "%s/meta.json", d2);
  unlink(p);
  setenv("SHARDRT_CKPT_FALLBACK", "off", 1);
  assert_int_equal(shardrt_latest_checkpoint(root, buf, sizeof buf), SHARDRT_OK);
  assert_string_equal(buf, d1);
  unsetenv("SHARDRT_CKPT_FALLBACK");
  /* Cleanup after a save: stale temporaries everywhere, the incomplete
   * step folder; nothing that is not ours. */
  char t1[4400], user[4400], d3[4300];
  snprintf(t1, sizeof t1, "%s/rank_00000.safetensors.tmp.123", d1);
  snprintf(user, sizeof user, "%s/notes.txt", d1);
  assert_int_equal(ck_copy_file(s, t1), 0);
  assert_int_equal(ck_copy_file(s, user), 0);
  snprintf(d3, sizeof d3, "%s/step_3", root);
  make(d3, 1, false, "0000000000000003");
  snprintf(p, sizeof p, "%s/meta.json", d3);
  unlink(p);
  snprintf(p, sizeof p, "%s/notes.txt", d3); /* a user's file keeps an incomplete folder */
  assert_int_equal(ck_copy_file(s, p), 0);
  shardrt__ckpt_cleanup(root, d1);
  assert_int_equal(ck_file_size(t1), -1);
  assert_true(ck_file_size(user) > 0);
  snprintf(p, sizeof p, "%s/rank_00000.safetensors", d2);
  assert_int_equal(ck_file_size(p), -1);
  struct stat st;
  assert_int_not_equal(stat(d2, &st), 0); /* incomplete folder removed */
  assert_int_equal(stat(d3, &st), 0);      /* kept: holds a file that is not ours */
  snprintf(p, sizeof p, "%s/rank_00000.safetensors", d3);
  assert_int_equal(ck_file_size(p), -1);
  assert_int_equal(shardrt_latest_checkpoint(root, buf, sizeof buf), SHARDRT_OK);
  assert_string_equal(buf, d1);
  shardrt__warn_set_sink(NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_duplicate_metadata), cmocka_unit_test(test_duplicate_tensor),
      cmocka_unit_test(test_not_json),           cmocka_unit_test(test_deep_nesting),
      cmocka_unit_test(test_shape_overflow),     cmocka_unit_test(test_meta_semantics),
      cmocka_unit_test(test_identity),           cmocka_unit_test(test_fallback),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
