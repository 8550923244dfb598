/* SPDX-License-Identifier: Apache-2.0 */
/* shardrt_save_weights / shardrt_load_weights at this run's world size:
 * round trips in fp32 and bf16 through both loading modes (every rank maps
 * the file; rank 0 reads and scatters with cpu_ram_efficient_loading), and
 * clear errors for a missing tensor, an extra tensor and a wrong shape.
 * `--fixture FILE` writes a weights file with known values (world 1) for
 * check_safetensors.py. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ck_model.h"
#include "ck_mpi_util.h"
#include "src/ckpt/safetensors.h"

static int g_rank, g_world;

#define CHECK(call)                                                                                          \
  do {                                                                                                       \
    shardrt_status rc__ = (call);                                                                            \
    if (rc__ != SHARDRT_OK) fail_msg("%s: %s: %s", #call, shardrt_status_str(rc__), shardrt_last_error()); \
  } while (0)

static shardrt_ctx *trained(shardrt_strategy s, bool ram_efficient, int steps) {
  shardrt_plan plan = ck_plan(s, SHARDRT_FULL_STATE_DICT);
  plan.cpu_ram_efficient_loading = ram_efficient;
  plan.sync_module_states = ram_efficient;
  ck_spec spec = ck_spec_small();
  shardrt_ctx *ctx;
  CHECK(ck_model_create(&plan, NULL, &spec, NULL, &ctx));
  CHECK(ck_train(ctx, 0, steps, NULL));
  return ctx;
}

static void test_roundtrip(void **state) {
  (void)state;
  char path[4300];
  shardrt_ctx *src = trained(SHARDRT_FULL_SHARD, false, 4);
  float *w;
  int64_t n;
  CHECK(ck_weights(src, &w, &n));
  const shardrt_dtype dts[2] = {SHARDRT_F32, SHARDRT_BF16};
  for (int d = 0; d < 2; d++) {
    snprintf(path, sizeof path, "%s/w_%s.safetensors", g_tmp, shardrt_dtype_name(dts[d]));
    CHECK(shardrt_save_weights(src, path, dts[d]));
    for (int mode = 0; mode < 2; mode++)
      for (int s = 0; s < 2; s++) {
        shardrt_ctx *dst = trained(s ? SHARDRT_SHARD_GRAD_OP : SHARDRT_FULL_SHARD, mode == 1, 0);
        CHECK(shardrt_load_weights(dst, path));
        float *got;
        int64_t n2;
        CHECK(ck_weights(dst, &got, &n2));
        assert_int_equal(n, n2);
        for (int64_t i = 0; i < n; i++) {
          float want = dts[d] == SHARDRT_F32 ? w[i] : shardrt_bf16_to_f32(shardrt_f32_to_bf16(w[i]));
          if (memcmp(&got[i], &want, 4) != 0)
            fail_msg("%s, %s loading: weight %lld is %.9g, saved %.9g", path, mode ? "ram-efficient" : "mapped",
                     (long long)i, (double)got[i], (double)want);
        }
        free(got);
        shardrt_ctx_destroy(dst);
      }
  }
  free(w);
  /* The file lists the parameters by name with their shapes. */
  if (g_rank == 0) {
    shardrt__st_file f;
    snprintf(path, sizeof path, "%s/w_bf16.safetensors", g_tmp);
    CHECK(shardrt__st_open(&f, path));
    assert_int_equal(f.n, shardrt_num_params(src));
    int i = shardrt__st_find(&f, "blocks.1.weight");
    assert_true(i >= 0);
    assert_int_equal(f.t[i].dtype, SHARDRT_BF16);
    assert_int_equal(f.t[i].shape[0], 9);
    assert_int_equal(f.t[i].shape[1], 7);
    shardrt__st_close(&f);
  }
  assert_int_equal(shardrt_save_weights(src, "", SHARDRT_F32), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_save_weights(src, path, (shardrt_dtype)9), SHARDRT_ERR_INVALID_ARGUMENT);
  shardrt_ctx_destroy(src);
}

/* Writes (rank 0) a weights file for the small model with one change. */
static void write_variant(const char *path, const char *drop, const char *extra, const char *reshape) {
  if (g_rank == 0) {
    ck_spec spec = ck_spec_small();
    shardrt_plan plan = ck_plan(SHARDRT_NO_SHARD, SHARDRT_FULL_STATE_DICT);
    shardrt_ctx *ctx;
    MPI_Comm self = MPI_COMM_SELF;
    CHECK(ck_model_create(&plan, &self, &spec, NULL, &ctx));
    shardrt__st_tensor t[32];
    int n = 0;
    uint64_t bytes = 0;
    for (int p = 0; p < shardrt_num_params(ctx); p++) {
      shardrt_param_info pi;
      CHECK(shardrt_param_info_get(ctx, p, &pi));
      if (drop && strcmp(pi.name, drop) == 0) continue;
      t[n] = (shardrt__st_tensor){.name = (char *)pi.name, .dtype = SHARDRT_F16, .ndim = pi.ndim};
      memcpy(t[n].shape, pi.shape, sizeof pi.shape);
      if (reshape && strcmp(pi.name, reshape) == 0) t[n].shape[0] += 1;
      n++;
    }
    if (extra) t[n++] = (shardrt__st_tensor){.name = (char *)extra, .dtype = SHARDRT_F32, .ndim = 1, .shape = {2}};
    for (int i = 0; i < n; i++) {
      uint64_t k = shardrt_dtype_size(t[i].dtype);
      for (int d = 0; d < t[i].ndim; d++) k *= (uint64_t)t[i].shape[d];
      bytes += k;
    }
    shardrt__st_writer w;
    CHECK(shardrt__stw_begin(&w, path, t, n, NULL, 0));
    char *zeros = calloc(bytes + 1, 1);
    CHECK(shardrt__stw_write(&w, zeros, bytes));
    CHECK(shardrt__stw_finish(&w));
    free(zeros);
    shardrt_ctx_destroy(ctx);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

static void expect_error(shardrt_ctx *ctx, const char *path, shardrt_status want, const char *n1, const char *n2) {
  shardrt_status rc = shardrt_load_weights(ctx, path);
  if (rc != want)
    fail_msg("load '%s': %s (%s), expected %s", path, shardrt_status_str(rc), shardrt_last_error(), shardrt_status_str(want));
  if (n1 && !strstr(shardrt_last_error(), n1)) fail_msg("'%s' does not name '%s'", shardrt_last_error(), n1);
  if (n2 && !strstr(shardrt_last_error(), n2)) fail_msg("'%s' does not name '%s'", shardrt_last_error(), n2);
}

static void test_errors(void **state) {
  (void)state;
  char p1[4300], p2[4300], p3[4300], p4[4300];
  snprintf(p1, sizeof p1, "%s/missing.safetensors", g_tmp);
  snprintf(p2, sizeof p2, "%s/extra.safetensors", g_tmp);
  snprintf(p3, sizeof p3, "%s/shape.safetensors", g_tmp);
  snprintf(p4, sizeof p4, "%s/ok.safetensors", g_tmp);
  write_variant(p1, "norm.scale", NULL, NULL);
  write_variant(p2, NULL, "lm_head.weight", NULL);
  write_variant(p3, NULL, NULL, "head.weight");
  write_variant(p4, NULL, NULL, NULL);
  for (int mode = 0; mode < 2; mode++) {
    shardrt_ctx *ctx = trained(SHARDRT_FULL_SHARD, mode == 1, 0);
    expect_error(ctx, p1, SHARDRT_ERR_NOT_FOUND, "norm.scale", "missing.safetensors");
    expect_error(ctx, p2, SHARDRT_ERR_MISMATCH, "lm_head.weight", NULL);
    expect_error(ctx, p3, SHARDRT_ERR_MISMATCH, "head.weight", "[4, 5]");
    expect_error(ctx, "/nonexistent/w.safetensors", SHARDRT_ERR_NOT_FOUND, "/nonexistent/w.safetensors", NULL);
    /* An fp16 file of zeros loads, and the weights are then zero. */
    CHECK(shardrt_load_weights(ctx, p4));
    float *w;
    int64_t n;
    CHECK(ck_weights(ctx, &w, &n));
    for (int64_t i = 0; i < n; i++) assert_true(w[i] == 0.0f);
    free(w);
    shardrt_ctx_destroy(ctx);
  }
}

/* Parameter p element k = ck_exact_value(p, k) (exact in every dtype), saved in fp32. */
static int fixture(const char *path) {
  shardrt_plan plan = ck_plan(SHARDRT_FULL_SHARD, SHARDRT_FULL_STATE_DICT);
  ck_spec spec = ck_spec_small();
  shardrt_ctx *ctx;
  shardrt_status rc = ck_model_create(&plan, NULL, &spec, NULL, &ctx);
  for (int p = 0; !rc && p < shardrt_num_params(ctx); p++) {
    shardrt_param_info pi;
    shardrt_param_info_get(ctx, p, &pi);
    float v[128];
    for (int64_t k = 0; k < pi.numel && k < 128; k++) v[k] = ck_exact_value(p, k);
    rc = shardrt_param_set(ctx, p, v);
  }
  if (!rc) rc = shardrt_save_weights(ctx, path, SHARDRT_F32);
  if (rc) fprintf(stderr, "fixture: %s\n", shardrt_last_error());
  shardrt_ctx_destroy(ctx);
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  if (argc == 3 && strcmp(argv[1], "--fixture") == 0) {
    int rc = fixture(argv[2]);
    MPI_Finalize();
    return rc;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_errors),
  };
  return ck_mpi_run("weights", tests, sizeof tests / sizeof tests[0]);
}
