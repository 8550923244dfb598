/* SPDX-License-Identifier: Apache-2.0 */
/* Peak host memory of shardrt_load_weights for a 64 MiB model, per rank, in
 * both modes: every rank mapping the file, and ram-efficient loading (rank 0
 * reads, the others receive their shard). Reports both; asserts the
 * ram-efficient non-root ranks stay well below the model size. The peak is
 * the kernel's VmHWM, reset before each load through /proc/self/clear_refs
 * (falling back to ru_maxrss growth where that reset is not allowed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sys/resource.h>

#include "ck_model.h"
#include "ck_mpi_util.h"

static int g_rank, g_world;

#define CHECK(call)                                                                                          \
  do {                                                                                                       \
    shardrt_status rc__ = (call);                                                                            \
    if (rc__ != SHARDRT_OK) fail_msg("%s: %s: %s", #call, shardrt_status_str(rc__), shardrt_last_error()); \
  } while (0)

static long status_kib(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t kl = strlen(key);
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, key, kl) == 0 && line[kl] == ':') v = atol(line + kl + 1);
  if (f) fclose(f);
  return v;
}

/* Returns the baseline (KiB) the next peak_kib() is measured against. */
static bool hwm_reset_ok;
static long mark(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  hwm_reset_ok = f && fputs("5", f) >= 0;
  if (f && fclose(f) != 0) hwm_reset_ok = false;
  if (hwm_reset_ok) return status_kib("VmRSS");
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}
static long peak_since(long base) {
  if (hwm_reset_ok) return status_kib("VmHWM") - base;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss - base;
}

static void test_load_peak_rss(void **state) {
  (void)state;
  ck_spec spec = {.blocks = 8, .rows = 1024, .cols = 2048, .small_extras = false};
  double model_mib = 8.0 * (1024.0 * 2048 + 1024) * 4 / (1024.0 * 1024.0);
  char path[4300];
  snprintf(path, sizeof path, "%s/model.safetensors", g_tmp);
  shardrt_plan plan = ck_plan(SHARDRT_FULL_SHARD, SHARDRT_FULL_STATE_DICT);
  shardrt_ctx *ctx;
  CHECK(ck_model_create(&plan, NULL, &spec, NULL, &ctx));
  CHECK(shardrt_save_weights(ctx, path, SHARDRT_F32));
  shardrt_ctx_destroy(ctx);

  double peak[2][64]; /* [mode][rank] MiB */
  for (int mode = 0; mode < 2; mode++) {
    plan.cpu_ram_efficient_loading = mode == 1;
    plan.sync_module_states = mode == 1;
    CHECK(ck_model_create(&plan, NULL, &spec, NULL, &ctx));
    MPI_Barrier(MPI_COMM_WORLD);
    long base = mark();
    CHECK(shardrt_load_weights(ctx, path));
    double mine = (double)peak_since(base) / 1024.0;
    MPI_Gather(&mine, 1, MPI_DOUBLE, peak[mode], 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    MPI_Bcast(peak[mode], g_world, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    shardrt_ctx_destroy(ctx);
  }
  if (g_rank == 0) {
    printf("load_weights peak host memory above baseline, model %.1f MiB, world %d (%s):\n", model_mib, g_world,
           hwm_reset_ok ? "VmHWM" : "ru_maxrss growth");
    for (int r = 0; r < g_world; r++)
      printf("  rank %d: every rank maps the file %7.1f MiB | ram-efficient %7.1f MiB\n", r, peak[0][r], peak[1][r]);
  }
  for (int r = 1; r < g_world; r++) {
    if (peak[1][r] >= model_mib / 4)
      fail_msg("ram-efficient load: rank %d peaked %.1f MiB above baseline, model is %.1f MiB", r, peak[1][r], model_mib);
    if (hwm_reset_ok && peak[1][r] >= peak[0][r])
      fail_msg("rank %d: ram-efficient load (%.1f MiB) not below mapped load (%.1f MiB)", r, peak[1][r], peak[0][r]);
  }
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world);
  if (g_world > 64) return 1;
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_load_peak_rss)};
  return ck_mpi_run("rss", tests, sizeof tests / sizeof tests[0]);
}
