/* SPDX-License-Identifier: Apache-2.0 */
/* Resume through sharded and full checkpoints at this run's world size
 * (mpirun -np 1/2/4): 20 straight steps == 10 + save + load into a fresh
 * context + 10, bit for bit; and re-sharding: a checkpoint saved at world 2
 * FULL_SHARD loads at world 1 NO_SHARD and at this world size with
 * SHARD_GRAD_OP, with the same weights and optimizer state. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ck_model.h"
#include "ck_mpi_util.h"
#include "src/ckpt/safetensors.h"
#include "src/core/state.h"

static int g_rank, g_world;

#define CHECK(call)                                                                              \
  do {                                                                                           \
    shardrt_status rc__ = (call);                                                                \
    if (rc__ != SHARDRT_OK) fail_msg("%s: %s: %s", #call, shardrt_status_str(rc__), shardrt_last_error()); \
  } while (0)

typedef struct cfg {
  const char *name;
  shardrt_strategy strategy;
  shardrt_state_dict_type sd;
  bool sgd;
  bool ds_bf16; /* DeepSpeed flavour, bf16 mixed precision, 16-bit model on save */
  int group;    /* hybrid shard group size (0: none) */
} cfg;

static shardrt_plan plan_of(const cfg *c) {
  shardrt_plan p = ck_plan(c->strategy, c->sd);
  if (c->ds_bf16) {
    p.flavor = SHARDRT_FLAVOR_DEEPSPEED;
    p.distributed_type = SHARDRT_DIST_DEEPSPEED;
    p.mixed_precision = SHARDRT_MP_BF16;
    p.save_16bit_model = true;
  }
  p.shard_group_size = c->group;
  return p;
}

static shardrt_optim_params optim_of(const cfg *c) {
  shardrt_optim_params o;
  shardrt_optim_params_default(&o);
  o.lr = 0.01;
  if (c->sgd) {
    o.kind = SHARDRT_OPTIM_SGD;
    o.momentum = 0.9;
  }
  return o;
}

static void run_same_world(const cfg *c) {
  shardrt_plan plan = plan_of(c);
  shardrt_optim_params opt = optim_of(c);
  ck_spec spec = ck_spec_small();
  char root[4300];
  snprintf(root, sizeof root, "%s/%s", g_tmp, c->name);

  shardrt_ctx *a, *b, *cc;
  double na[20], nc[10];
  float *wa, *wc;
  int64_t n, n2;
  CHECK(ck_model_create(&plan, NULL, &spec, &opt, &a));
  CHECK(ck_train(a, 0, 20, na));
  CHECK(ck_weights(a, &wa, &n));
  shardrt_ctx_destroy(a);

  CHECK(ck_model_create(&plan, NULL, &spec, &opt, &b));
  CHECK(ck_train(b, 0, 10, NULL));
  bool saved = true;
  CHECK(shardrt_ckpt_maybe_save(b, root, 9, 5, "x", 1, &saved)); /* not a multiple: no save */
  assert_false(saved);
  const char blob[] = "data position 1234, rng 0xfeed";
  CHECK(shardrt_ckpt_maybe_save(b, root, 10, 5, blob, sizeof blob, &saved));
  assert_true(saved);
  shardrt_ctx_destroy(b);

  CHECK(ck_model_create(&plan, NULL, &spec, &opt, &cc));
  char got[64] = {0};
  size_t len = 0;
  CHECK(shardrt_load_checkpoint(cc, root, got, sizeof got, &len)); /* the root: newest complete */
  assert_int_equal(len, sizeof blob);
  assert_memory_equal(got, blob, sizeof blob);
  CHECK(ck_train(cc, 10, 20, nc));
  CHECK(ck_weights(cc, &wc, &n2));
  shardrt_ctx_destroy(cc);
  assert_int_equal(n, n2);
  for (int s = 0; s < 10; s++)
    if (memcmp(&na[10 + s], &nc[s], sizeof(double)) != 0)
      fail_msg("%s: step %d grad norm %.17g after resume, %.17g straight", c->name, 11 + s, nc[s], na[10 + s]);
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&wa[i], &wc[i], sizeof(float)) != 0)
      fail_msg("%s (world %d): weight %lld is %.9g after resume, %.9g straight", c->name, g_world, (long long)i,
               (double)wc[i], (double)wa[i]);
  /* The run moved: comparing frozen weights would prove nothing. */
  float *w0;
  shardrt_ctx *fresh;
  CHECK(ck_model_create(&plan, NULL, &spec, &opt, &fresh));
  CHECK(ck_weights(fresh, &w0, &n2));
  shardrt_ctx_destroy(fresh);
  assert_true(memcmp(w0, wa, sizeof(float) * (size_t)n) != 0);
  free(w0);
  free(wa);
  free(wc);
}

static void test_resume_same_world(void **state) {
  (void)state;
  const cfg cfgs[] = {
      {"fsdp_full_shard_sharded", SHARDRT_FULL_SHARD, SHARDRT_SHARDED_STATE_DICT, false, false, 0},
      {"fsdp_grad_op_full", SHARDRT_SHARD_GRAD_OP, SHARDRT_FULL_STATE_DICT, false, false, 0},
      {"ddp_sgd_sharded", SHARDRT_NO_SHARD, SHARDRT_SHARDED_STATE_DICT, true, false, 0},
      {"zero1_full", SHARDRT_ZERO1, SHARDRT_FULL_STATE_DICT, false, false, 0},
      {"ds_zero3_bf16_16bit_model", SHARDRT_FULL_SHARD, SHARDRT_FULL_STATE_DICT, false, true, 0},
      {"ds_zero2_bf16_sharded", SHARDRT_SHARD_GRAD_OP, SHARDRT_SHARDED_STATE_DICT, false, true, 0},
  };
  for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) run_same_world(&cfgs[i]);
  if (g_world >= 4) {
    cfg h = {"hybrid_sharded", SHARDRT_HYBRID_SHARD, SHARDRT_SHARDED_STATE_DICT, false, false, 2};
    run_same_world(&h);
  }
}

/* Every owned value of every role equals the consolidated checkpoint's. */
static void check_state(shardrt_ctx *ctx, const char *merged, const char *what) {
  shardrt__st_file f;
  CHECK(shardrt__st_open(&f, merged));
  static const char *suffix[3] = {"", ".exp_avg", ".exp_avg_sq"};
  for (int p = 0; p < shardrt_num_params(ctx); p++) {
    shardrt_param_info pi;
    CHECK(shardrt_param_info_get(ctx, p, &pi));
    int64_t b, e;
    shardrt__state_range(ctx, pi.unit, &b, &e);
    int64_t lo = b > pi.offset ? b : pi.offset, hi = e < pi.offset + pi.numel ? e : pi.offset + pi.numel;
    if (hi <= lo) continue;
    float *mine = malloc(sizeof(float) * (size_t)(hi - lo)), *ref = malloc(sizeof(float) * (size_t)(hi - lo));
    for (int r = 0; r < 3; r++) {
      char name[256];
      snprintf(name, sizeof name, "%s%s", pi.name, suffix[r]);
      int t = shardrt__st_find(&f, name);
      if (t < 0) fail_msg("%s: merged file lacks %s", what, name);
      CHECK(shardrt__st_read_raw(&f, t, (uint64_t)(lo - pi.offset) * 4, (size_t)(hi - lo) * 4, ref));
      CHECK(shardrt__state_read(ctx, pi.unit, (shardrt__role)r, lo, hi - lo, mine));
      for (int64_t k = 0; k < hi - lo; k++)
        if (memcmp(&mine[k], &ref[k], 4) != 0)
          fail_msg("%s: %s[%lld] is %.9g after re-sharded load, %.9g saved", what, name, (long long)(lo - pi.offset + k),
                   (double)mine[k], (double)ref[k]);
    }
    free(mine);
    free(ref);
  }
  shardrt__st_close(&f);
}

static void compare(const float *a, const float *b, int64_t n, double tol, const char *what) {
  for (int64_t i = 0; i < n; i++)
    if (fabs((double)a[i] - (double)b[i]) > tol * fmax(1.0, fabs((double)b[i])))
      fail_msg("%s: weight %lld is %.9g, expected %.9g", what, (long long)i, (double)a[i], (double)b[i]);
}

static void test_reshard(void **state) {
  (void)state;
  int ws = g_world >= 2 ? 2 : 1;
  ck_spec spec = ck_spec_small();
  cfg adam = {0};
  shardrt_optim_params opt = optim_of(&adam);
  char dir[4300], merged[4400];
  snprintf(dir, sizeof dir, "%s/reshard/step_7", g_tmp);
  snprintf(merged, sizeof merged, "%s/reshard/merged.safetensors", g_tmp);
  int64_t n = 0;
  float *w_saved = NULL, *w_cont = NULL;

  /* Save at world `ws` FULL_SHARD (sharded state dict) on the first ranks. */
  MPI_Comm sub;
  MPI_Comm_split(MPI_COMM_WORLD, g_rank < ws ? 0 : MPI_UNDEFINED, g_rank, &sub);
  if (sub != MPI_COMM_NULL) {
    shardrt_plan plan = ck_plan(SHARDRT_FULL_SHARD, SHARDRT_SHARDED_STATE_DICT);
    shardrt_ctx *s;
    CHECK(ck_model_create(&plan, &sub, &spec, &opt, &s));
    CHECK(ck_train(s, 0, 7, NULL));
    CHECK(shardrt_save_checkpoint(s, dir, NULL));
    CHECK(ck_weights(s, &w_saved, &n));
    CHECK(ck_train(s, 7, 12, NULL));
    free(w_cont);
    CHECK(ck_weights(s, &w_cont, &n));
    shardrt_ctx_destroy(s);
    MPI_Comm_free(&sub);
    if (g_rank == 0) CHECK(shardrt_merge_checkpoint(dir, merged, SHARDRT_F32, true, NULL));
  }
  MPI_Bcast(&n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
  if (!w_saved) w_saved = malloc(sizeof(float) * (size_t)n), w_cont = malloc(sizeof(float) * (size_t)n);
  MPI_Bcast(w_saved, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
  MPI_Bcast(w_cont, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);

  /* Load at this world size with SHARD_GRAD_OP, and at world 1 NO_SHARD. */
  struct {
    shardrt_strategy s;
    MPI_Comm comm;
    const char *what;
  } targets[2] = {{SHARDRT_SHARD_GRAD_OP, MPI_COMM_WORLD, "SHARD_GRAD_OP at this world"},
                  {SHARDRT_NO_SHARD, MPI_COMM_SELF, "NO_SHARD at world 1"}};
  for (int t = 0; t < 2; t++) {
    shardrt_plan plan = ck_plan(targets[t].s, SHARDRT_SHARDED_STATE_DICT);
    shardrt_ctx *l;
    float *w;
    int64_t n2;
    CHECK(ck_model_create(&plan, &targets[t].comm, &spec, &opt, &l));
    CHECK(shardrt_load_checkpoint(l, dir, NULL, 0, NULL));
    CHECK(ck_weights(l, &w, &n2));
    assert_int_equal(n2, n);
    compare(w, w_saved, n, 0.0, targets[t].what);
    check_state(l, merged, targets[t].what);
    free(w);
    /* Continuing gives the saver's continuation (same summed gradients). */
    CHECK(ck_train(l, 7, 12, NULL));
    CHECK(ck_weights(l, &w, &n2));
    compare(w, w_cont, n, 1e-6, targets[t].what);
    free(w);
    shardrt_ctx_destroy(l);
  }
  free(w_saved);
  free(w_cont);
}

static void expect_load_error(shardrt_ctx *ctx, const char *path, shardrt_status want, const char *needle1, const char *needle2) {
  shardrt_status rc = shardrt_load_checkpoint(ctx, path, NULL, 0, NULL);
  if (rc != want) fail_msg("loading '%s': got %s (%s), expected %s", path, shardrt_status_str(rc), shardrt_last_error(), shardrt_status_str(want));
  if (needle1 && !strstr(shardrt_last_error(), needle1)) fail_msg("error '%s' does not name '%s'", shardrt_last_error(), needle1);
  if (needle2 && !strstr(shardrt_last_error(), needle2)) fail_msg("error '%s' does not name '%s'", shardrt_last_error(), needle2);
}

static void test_load_errors(void **state) {
  (void)state;
  cfg adam = {0}, sgd = {.sgd = true};
  shardrt_optim_params o_adam = optim_of(&adam), o_sgd = optim_of(&sgd);
  shardrt_plan plan = ck_plan(SHARDRT_FULL_SHARD, SHARDRT_SHARDED_STATE_DICT);
  ck_spec spec = ck_spec_small();
  char dir[4300], path[4400];
  snprintf(dir, sizeof dir, "%s/errors", g_tmp);
  shardrt_ctx *ctx;
  CHECK(ck_model_create(&plan, NULL, &spec, &o_adam, &ctx));
  CHECK(ck_train(ctx, 0, 2, NULL));
  shardrt_ckpt_opts o;
  shardrt_ckpt_opts_default(&o);
  o.struct_size = 3;
  assert_int_equal(shardrt_save_checkpoint(ctx, dir, &o), SHARDRT_ERR_INVALID_ARGUMENT);
  assert_int_equal(shardrt_save_checkpoint(ctx, NULL, NULL), SHARDRT_ERR_INVALID_ARGUMENT);
  CHECK(shardrt_save_checkpoint(ctx, dir, NULL));
  snprintf(path, sizeof path, "%s/absent", g_tmp);
  expect_load_error(ctx, path, SHARDRT_ERR_NOT_FOUND, "absent", NULL);
  shardrt_ctx_destroy(ctx);

  /* Another shape, an extra parameter, another optimizer. */
  ck_spec wider = spec;
  wider.rows = 10;
  CHECK(ck_model_create(&plan, NULL, &wider, &o_adam, &ctx));
  expect_load_error(ctx, dir, SHARDRT_ERR_MISMATCH, "blocks.0.weight", "[9, 7]");
  shardrt_ctx_destroy(ctx);
  ck_spec more = spec;
  more.blocks = 4;
  CHECK(ck_model_create(&plan, NULL, &more, &o_adam, &ctx));
  expect_load_error(ctx, dir, SHARDRT_ERR_NOT_FOUND, "blocks.3.weight", NULL);
  shardrt_ctx_destroy(ctx);
  ck_spec fewer = spec;
  fewer.blocks = 2;
  CHECK(ck_model_create(&plan, NULL, &fewer, &o_adam, &ctx));
  expect_load_error(ctx, dir, SHARDRT_ERR_MISMATCH, "blocks.2", NULL);
  shardrt_ctx_destroy(ctx);
  CHECK(ck_model_create(&plan, NULL, &spec, &o_sgd, &ctx));
  expect_load_error(ctx, dir, SHARDRT_ERR_MISMATCH, "exp_avg_sq", NULL);
  shardrt_ctx_destroy(ctx);

  /* A damaged rank file: every rank reports it, naming the file. */
  CHECK(ck_model_create(&plan, NULL, &spec, &o_adam, &ctx));
  MPI_Barrier(MPI_COMM_WORLD);
  snprintf(path, sizeof path, "%s/rank_00000.safetensors", dir);
  if (g_rank == 0) assert_int_equal(ck_flip_byte(path, -1), 0);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_load_error(ctx, dir, SHARDRT_ERR_CORRUPT, "rank_00000", NULL);
  /* ... and a torn one is not even complete. */
  MPI_Barrier(MPI_COMM_WORLD);
  if (g_rank == 0) assert_int_equal(truncate(path, ck_file_size(path) - 5), 0);
  MPI_Barrier(MPI_COMM_WORLD);
  expect_load_error(ctx, dir, SHARDRT_ERR_CORRUPT, "rank_00000", NULL);
  shardrt_ctx_destroy(ctx);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_resume_same_world),
      cmocka_unit_test(test_reshard),
      cmocka_unit_test(test_load_errors),
  };
  return ck_mpi_run("resume", tests, sizeof tests / sizeof tests[0]);
}
