/* SPDX-License-Identifier: Apache-2.0 */
/* One-step equivalence from one state: the reference (NO_SHARD, one rank)
 * trains a few steps and saves a checkpoint; the reference and every
 * strategy at this run's world size load it and take ONE optimizer step on
 * the same batch; the updated weights and both Adam moments are compared
 * (consolidated with shardrt_merge_checkpoint).
 *
 * Why this can be tight: both runs start from the same bits, so the only
 * difference is the order of the fp32 sums that form the gradient (ranks'
 * partial sums, BLAS blocking at another row count). Reordering a sum of n
 * terms moves it by at most ~2(n-1)u * sum|terms| (u = 2^-24; Higham,
 * Accuracy and Stability, 2.4); the mini model's gradients are sums over
 * the 16-row batch of products through 6 layers of width <= 37, so a
 * gradient element moves by at most ~1e-6 of the tensor's largest gradient
 * term in the worst case, and its moments by (1-beta) of that. Nothing can
 * compound in one step, and the BLAS kernel (OPENBLAS_CORETYPE) only changes
 * which order is used. The check: moments within TOL = 2e-6 of the tensor's
 * largest moment; weights within the update error those moment errors
 * cause through s*m/(sqrt(v/bc2)+eps) at each element; plus 4u of the
 * value for the final roundings.
 * Measured (AMD EPYC, OPENBLAS_CORETYPE Prescott, Sandybridge, Haswell,
 * SkylakeX and Zen, world 2 and 4): at most 4.5e-7, a quarter of TOL; at
 * world 1 every strategy is bit-identical to the reference.
 * 16-bit compute rounds every product to 8 (bf16) or 11 (fp16) bits, so those
 * plans are checked at 2^-8 and 2^-11 instead. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../mpi_test_main.h"

#include "mini_model.h"

#define U 5.9604644775390625e-08

static char g_dir[256];
/* The step's Adam scalars (mini_cfg_default's optimizer, update 4). */
static double g_step, g_bc2, g_eps;
/* Rank 0 alone reads and compares files: it records a failure here rather
 * than failing at once, so every rank reaches the barrier and all fail
 * together (a rank leaving early would hang the others). */
static char g_err[1024];
#define ERR(...) (snprintf(g_err, sizeof g_err, __VA_ARGS__), false)

/* A consolidated safetensors file: the header and the raw data. */
typedef struct st_file {
  char *hdr;
  unsigned char *data;
  size_t hlen, dlen;
} st_file;

static bool st_read(const char *path, st_file *f) {
  memset(f, 0, sizeof *f);
  FILE *fp = fopen(path, "rb");
  if (!fp) return ERR("cannot open %s", path);
  uint64_t n = 0;
  bool ok = fread(&n, 8, 1, fp) == 1 && n < (1u << 24);
  if (ok) {
    f->hlen = (size_t)n;
    f->hdr = calloc(1, f->hlen + 1);
    ok = f->hdr && fread(f->hdr, 1, f->hlen, fp) == f->hlen;
  }
  long end = ok && fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
  ok = ok && end >= (long)(8 + f->hlen);
  if (ok) {
    f->dlen = (size_t)end - 8 - f->hlen;
    f->data = malloc(f->dlen ? f->dlen : 1);
    ok = f->data && fseek(fp, (long)(8 + f->hlen), SEEK_SET) == 0 && fread(f->data, 1, f->dlen, fp) == f->dlen;
  }
  fclose(fp);
  return ok ? true : ERR("%s: not a readable safetensors file", path);
}

static void st_free(st_file *f) {
  free(f->hdr);
  free(f->data);
}

/* The tensor named `name` (F32): its data and element count, or NULL. */
static const float *st_tensor(const st_file *f, const char *name, size_t *n) {
  char key[300];
  snprintf(key, sizeof key, "\"%s\":{", name);
  const char *k = strstr(f->hdr, key);
  if (!k) return NULL;
  const char *o = strstr(k, "\"data_offsets\":[");
  unsigned long long a, b;
  if (!o || sscanf(o, "\"data_offsets\":[%llu,%llu]", &a, &b) != 2 || b > f->dlen) return NULL;
  *n = (size_t)(b - a) / 4;
  return (const float *)(f->data + a);
}

/* Compares every tensor of the reference with the candidate's. base: the
 * weights before the step (NULL for moments-only checks). */
static bool compare_tensors(const char *what, const st_file *r, const st_file *c, const st_file *before, double tol,
                            double *worst);
static bool compare_files(const char *what, const char *ref_path, const char *cand_path, const st_file *before,
                          double tol, double *worst) {
  st_file r, c;
  bool ok = st_read(ref_path, &r) && st_read(cand_path, &c) && compare_tensors(what, &r, &c, before, tol, worst);
  st_free(&r);
  st_free(&c);
  return ok;
}

static bool compare_tensors(const char *what, const st_file *rr, const st_file *cc, const st_file *before, double tol,
                            double *worst) {
  const st_file r = *rr, c = *cc;
  int ntensors = 0;
  for (const char *k = strchr(r.hdr, '"'); k; k = strchr(k, '"')) {
    const char *e = strchr(k + 1, '"');
    if (!e) break;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(e - k - 1), k + 1);
    k = e + 1;
    if (strncmp(k, ":{\"dtype\"", 9) != 0) continue; /* not a tensor key */
    size_t nr, nc, nb = 0;
    const float *a = st_tensor(&r, name, &nr), *b = st_tensor(&c, name, &nc);
    if (!a) continue;
    if (!b || nc != nr) return ERR("%s: tensor %s missing or of another size in the candidate", what, name);
    bool moment = strstr(name, ".exp_avg") != NULL;
    const float *w0 = moment ? NULL : st_tensor(before, name, &nb);
    if (!moment && (!w0 || nb != nr)) return ERR("%s: tensor %s missing in the starting checkpoint", what, name);
    /* Moments are linear in the gradient: within tol of the tensor's
     * largest moment. A weight's update s*m/den divides by its own
     * den = sqrt(v/bc2) + eps, so the moments' allowed error reaches the
     * update amplified by 1/den (and by m/den^2 through v). */
    const float *em = NULL, *ev = NULL;
    if (!moment) {
      char mn[300];
      size_t n1 = 0, n2 = 0;
      snprintf(mn, sizeof mn, "%s.exp_avg", name);
      em = st_tensor(&r, mn, &n1);
      snprintf(mn, sizeof mn, "%s.exp_avg_sq", name);
      ev = st_tensor(&r, mn, &n2);
      if (!em || !ev || n1 != nr || n2 != nr) return ERR("%s: no moments of %s in the reference", what, name);
    }
    double scale = 0, M = 0, V = 0;
    for (size_t i = 0; i < nr; i++) {
      scale = fmax(scale, fabs(moment ? a[i] : (double)a[i] - w0[i]));
      if (!moment) M = fmax(M, fabs(em[i])), V = fmax(V, ev[i]);
    }
    if (scale == 0) return ERR("%s: tensor %s did not change in the step", what, name);
    for (size_t i = 0; i < nr; i++) {
      double d = fabs((double)a[i] - b[i]), bound;
      if (moment) {
        bound = tol * scale + 4 * U * fabs(a[i]);
      } else {
        double sv = sqrt(fmax(ev[i], 0.0) / g_bc2), den = sv + g_eps;
        double dv = sv > 0 ? tol * V / (2 * sv * g_bc2) : 0; /* |d den| from |dv| <= tol*V */
        bound = g_step * (tol * M / den + fabs(em[i]) * dv / (den * den)) + 4 * U * (fabs(a[i]) + scale);
      }
      *worst = fmax(*worst, d / bound * tol);
      if (d > bound)
        return ERR("%s: %s[%zu] = %.9g, reference %.9g: |diff| %.3g > bound %.3g (tol %.3g)", what, name, i, b[i],
                   a[i], d, bound, tol);
    }
    ntensors++;
  }
  /* 6 layers x (weight, bias) x (param, exp_avg, exp_avg_sq) */
  if (ntensors != 36) return ERR("%s: compared %d tensors, expected 36", what, ntensors);
  return true;
}

static bool run_ok(const char *what, mini_cfg *c, const shardrt_plan *p, MPI_Comm *comm) {
  mini_run out;
  shardrt_status rc = mini_train(c, p, comm, &out);
  mini_run_free(&out);
  return rc ? ERR("%s: %s", what, shardrt_last_error()) : true;
}

static bool merge_ok(const char *dir, const char *out) {
  return shardrt_merge_checkpoint(dir, out, SHARDRT_F32, true, NULL) ? ERR("merging %s: %s", dir, shardrt_last_error())
                                                                      : true;
}

/* Every rank fails if any rank recorded an error. */
static void sync_fail(void) {
  int bad = g_err[0] != 0, any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (!any) return;
  char msg[sizeof g_err];
  memcpy(msg, g_err, sizeof msg);
  int root = bad ? g_rank : g_world, who = 0;
  MPI_Allreduce(&root, &who, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Bcast(msg, sizeof msg, MPI_CHAR, who, MPI_COMM_WORLD);
  g_err[0] = 0;
  fail_msg("%s", msg);
}

/* The state every run starts from: 3 reference steps, saved once per plan
 * (the checkpoint carries the plan's master/optimizer dtypes). */
static void check_one_step(const shardrt_plan *cand, double tol, const char *what, double *worst) {
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  shardrt_plan ref = *cand;
  ref.strategy = SHARDRT_NO_SHARD;
  ref.shard_group_size = 0;
  ref.accum_mode = SHARDRT_ACCUM_AUTO;
  char start[320], ref1[320], cand1[320], mref[320], mcand[320], mstart[320];
  snprintf(start, sizeof start, "%s/start", g_dir);
  snprintf(ref1, sizeof ref1, "%s/ref1", g_dir);
  snprintf(cand1, sizeof cand1, "%s/cand1", g_dir);
  snprintf(mstart, sizeof mstart, "%s/start.safetensors", g_dir);
  snprintf(mref, sizeof mref, "%s/ref1.safetensors", g_dir);
  snprintf(mcand, sizeof mcand, "%s/cand1.safetensors", g_dir);
  MPI_Comm self = MPI_COMM_SELF;
  mini_cfg c;
  mini_cfg_default(&c);
  g_step = c.opt.lr / (1 - pow(c.opt.beta1, 4));
  g_bc2 = 1 - pow(c.opt.beta2, 4);
  g_eps = c.opt.eps;
  /* Rank 0 computes the reference on its own; the others wait for it. */
  if (rank == 0) {
    c.steps = 3;
    c.save_dir = start;
    bool ok = run_ok("reference warm-up", &c, &ref, &self);
    c.steps = 1;
    c.first_step = 3;
    c.save_dir = ref1;
    c.load_dir = start;
    ok = ok && run_ok("reference step", &c, &ref, &self) && merge_ok(start, mstart) && merge_ok(ref1, mref);
    (void)ok;
  }
  sync_fail();
  mini_cfg_default(&c);
  c.steps = 1;
  c.first_step = 3;
  c.load_dir = start;
  c.save_dir = cand1;
  run_ok(what, &c, cand, NULL);
  sync_fail();
  if (rank == 0) {
    st_file before = {0};
    if (merge_ok(cand1, mcand) && st_read(mstart, &before)) compare_files(what, mref, mcand, &before, tol, worst);
    st_free(&before);
  }
  sync_fail();
}

static const shardrt_strategy all_strategies[] = {SHARDRT_NO_SHARD,      SHARDRT_ZERO1,        SHARDRT_SHARD_GRAD_OP,
                                                  SHARDRT_FULL_SHARD,    SHARDRT_HYBRID_SHARD, SHARDRT_HYBRID_SHARD_ZERO2};
enum { NSTRAT = sizeof all_strategies / sizeof all_strategies[0] };

/* worst: the largest difference as a fraction of its bound, times tol. */
static void report(const char *what, double worst, double tol) {
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) printf("one step, %s, world %d: worst difference %.3g of its bound's tol %.3g\n", what, g_world,
                        worst, tol);
}

static void test_fp32(void **state) {
  double worst = 0;
  for (int fl = 0; fl < 2; fl++)
    for (int i = 0; i < NSTRAT; i++) {
      shardrt_plan p = mini_base_plan((shardrt_flavor)fl, all_strategies[i], g_world);
      char what[96];
      snprintf(what, sizeof what, "%s %s fp32", fl ? "deepspeed" : "fsdp", shardrt_strategy_name(p.strategy));
      check_one_step(&p, 2e-6, what, &worst);
    }
  report("fp32, every strategy and flavour", worst, 2e-6);
}

static void test_fp32_accum_clip(void **state) {
  double worst = 0;
  for (int i = 0; i < NSTRAT; i++) {
    shardrt_plan p = mini_base_plan(SHARDRT_FLAVOR_DEEPSPEED, all_strategies[i], g_world);
    p.gradient_accumulation_steps = 2;
    p.gradient_clipping = 0.05; /* below every norm: the clip factor is active and smooth */
    char what[96];
    snprintf(what, sizeof what, "%s fp32 accum 2 clip", shardrt_strategy_name(p.strategy));
    check_one_step(&p, 2e-6, what, &worst);
  }
  report("fp32, accumulation and clipping", worst, 2e-6);
}

static void test_16bit(void **state) {
  double worst = 0;
  for (int fl = 0; fl < 2; fl++)
    for (int i = 0; i < NSTRAT; i++) {
      shardrt_plan p = mini_base_plan((shardrt_flavor)fl, all_strategies[i], g_world);
      p.mixed_precision = fl ? SHARDRT_MP_FP16 : SHARDRT_MP_BF16;
      if (!fl) p.load_dtype = SHARDRT_BF16;
      char what[96];
      snprintf(what, sizeof what, "%s %s %s", fl ? "deepspeed" : "fsdp", shardrt_strategy_name(p.strategy),
               fl ? "fp16" : "bf16");
      /* bf16 products carry 8 significant bits: a reordered reduction of
       * them moves a gradient by up to ~2^-8 of its scale. fp16: 2^-11. */
      check_one_step(&p, fl ? 0x1p-11 * 4 : 0x1p-8 * 4, what, &worst);
    }
  report("bf16 (fsdp) / fp16 (deepspeed) mixed precision", worst, 0x1p-8 * 4);
}

static void remove_dir(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

int main(void) {
  shardrt_test_mpi_init();
  /* One scratch directory, made by rank 0 and named to every rank. */
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    snprintf(g_dir, sizeof g_dir, "/tmp/shardrt_one_step_XXXXXX");
    if (!mkdtemp(g_dir)) g_dir[0] = 0;
  }
  MPI_Bcast(g_dir, sizeof g_dir, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (!g_dir[0]) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fp32),
      cmocka_unit_test(test_fp32_accum_clip),
      cmocka_unit_test(test_16bit),
  };
  if (rank == 0) atexit(remove_dir);
  SHARDRT_TEST_MPI_RUN("one_step", tests);
}
