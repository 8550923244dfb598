/* SPDX-License-Identifier: Apache-2.0 */
/* Checkpoint benchmark (prints figures; not a timed test).
 *
 *   mpirun -np N bench_ckpt [--mib M] [--dir D]
 *
 * Builds a FULL_SHARD AdamW model of about M MiB of fp32 parameters (default
 * 256), then times on the same disk: a sharded save, a sharded load into a
 * fresh context, a full (consolidated) save, and a plain sequential
 * write+fsync / read of the same number of bytes per rank. Then rank 0
 * consolidates the checkpoint in a fresh process (`--merge`) and reports
 * that process's peak RSS next to the model size. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ck_model.h"
#include "ck_mpi_util.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double dir_bytes(const char *dir) {
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "du -sb '%s'", dir);
  FILE *p = popen(cmd, "r");
  double v = 0;
  if (p && fscanf(p, "%lf", &v) != 1) v = 0;
  if (p) pclose(p);
  return v;
}

#define TRY(call)                                                                 \
  do {                                                                            \
    shardrt_status rc__ = (call);                                                 \
    if (rc__) {                                                                   \
      fprintf(stderr, "bench_ckpt: %s: %s\n", #call, shardrt_last_error());       \
      MPI_Abort(MPI_COMM_WORLD, 1);                                               \
    }                                                                             \
  } while (0)

/* Plain sequential write + fsync, then read back, of `bytes` bytes. */
static void plain_io(const char *path, size_t bytes, double *tw, double *tr) {
  size_t chunk = 8u << 20;
  char *buf = malloc(chunk);
  memset(buf, 0x5a, chunk);
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = now();
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  for (size_t at = 0; at < bytes; at += chunk)
    if (write(fd, buf, bytes - at < chunk ? bytes - at : chunk) < 0) perror("write");
  fsync(fd);
  close(fd);
  MPI_Barrier(MPI_COMM_WORLD);
  *tw = now() - t0;
  t0 = now();
  fd = open(path, O_RDONLY);
  while (read(fd, buf, chunk) > 0) {
  }
  close(fd);
  MPI_Barrier(MPI_COMM_WORLD);
  *tr = now() - t0;
  free(buf);
  unlink(path);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--merge") == 0) {
    shardrt_merge_stats st;
    if (shardrt_merge_checkpoint(argv[2], argv[3], SHARDRT_F32, false, &st)) {
      fprintf(stderr, "merge: %s\n", shardrt_last_error());
      return 1;
    }
    /* VmHWM belongs to this process image only (ru_maxrss would include the
     * forking parent's pages from before exec). */
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
      if (strncmp(line, "VmHWM:", 6) == 0) printf("peak_kib %ld\n", atol(line + 6));
    if (f) fclose(f);
    return 0;
  }
  MPI_Init(&argc, &argv);
  int rank, world;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  double mib = 256;
  char base[4096] = "";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--mib") == 0) mib = atof(argv[i + 1]);
    else if (strcmp(argv[i], "--dir") == 0) snprintf(base, sizeof base, "%s", argv[i + 1]);
  }
  char tmp[4096];
  if (base[0]) {
    snprintf(tmp, sizeof tmp, "%s/bench_ckpt", base);
  } else {
    ck_shared_tmpdir(tmp, sizeof tmp, "bench");
  }
  /* blocks of [1024, 4096] fp32 = 16 MiB each */
  ck_spec spec = {.blocks = (int)(mib / 16.0 + 0.5), .rows = 1024, .cols = 4096, .small_extras = false};
  if (spec.blocks < 1) spec.blocks = 1;
  double model_mib = spec.blocks * (1024.0 * 4096 + 1024) * 4 / 1048576.0;
  shardrt_plan plan = ck_plan(SHARDRT_FULL_SHARD, SHARDRT_SHARDED_STATE_DICT);
  shardrt_ctx *ctx, *ctx2;
  TRY(ck_model_create(&plan, NULL, &spec, NULL, &ctx));
  TRY(ck_train(ctx, 0, 1, NULL));
  char dir[4300], full[4300], plain[4400], merged[4400];
  snprintf(dir, sizeof dir, "%s/sharded", tmp);
  snprintf(full, sizeof full, "%s/full", tmp);

  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = now();
  TRY(shardrt_save_checkpoint(ctx, dir, NULL));
  double t_save = now() - t0;
  double bytes = rank == 0 ? dir_bytes(dir) : 0;
  MPI_Bcast(&bytes, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);

  TRY(ck_model_create(&plan, NULL, &spec, NULL, &ctx2));
  MPI_Barrier(MPI_COMM_WORLD);
  t0 = now();
  TRY(shardrt_load_checkpoint(ctx2, dir, NULL, 0, NULL));
  double t_load = now() - t0;
  shardrt_ctx_destroy(ctx2);

  shardrt_ckpt_opts o;
  shardrt_ckpt_opts_default(&o);
  o.format = SHARDRT_CKPT_FULL;
  MPI_Barrier(MPI_COMM_WORLD);
  t0 = now();
  TRY(shardrt_save_checkpoint(ctx, full, &o));
  double t_full = now() - t0;
  double full_bytes = rank == 0 ? dir_bytes(full) : 0;
  shardrt_ctx_destroy(ctx);

  double tw, tr;
  snprintf(plain, sizeof plain, "%s/plain_%d.bin", tmp, rank);
  plain_io(plain, (size_t)(bytes / world), &tw, &tr);

  if (rank == 0) {
    double gb = 1e9;
    printf("bench_ckpt: world %d, model %.0f MiB fp32 params (+ AdamW moments), dir %s\n", world, model_mib, tmp);
    printf("  sharded save   %8.3f s  %6.2f GB/s  (%.0f MiB on disk)\n", t_save, bytes / t_save / gb, bytes / 1048576.0);
    printf("  plain write    %8.3f s  %6.2f GB/s  (same bytes, write+fsync per rank)\n", tw, bytes / tw / gb);
    printf("  sharded load   %8.3f s  %6.2f GB/s  (checksums verified)\n", t_load, bytes / t_load / gb);
    printf("  plain read     %8.3f s  %6.2f GB/s  (same bytes, page cache warm)\n", tr, bytes / tr / gb);
    printf("  full save      %8.3f s  %6.2f GB/s  (model gathered to rank 0 + moments, %.0f MiB)\n", t_full,
           full_bytes / t_full / gb, full_bytes / 1048576.0);
    snprintf(merged, sizeof merged, "%s/merged.safetensors", tmp);
    char self[4096], cmd[13000];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    snprintf(cmd, sizeof cmd, "'%s' --merge '%s' '%s'", self, dir, merged);
    t0 = now();
    FILE *p = popen(cmd, "r");
    long kib = -1;
    if (p && fscanf(p, "peak_kib %ld", &kib) != 1) kib = -1;
    int status = p ? pclose(p) : -1;
    double t_merge = now() - t0;
    printf("  merge-weights  %8.3f s  peak RSS %.1f MiB for a %.0f MiB model (%s)\n", t_merge, kib / 1024.0, model_mib,
           status == 0 && kib > 0 ? "ok" : "FAILED");
  }
  ck_shared_rm(tmp);
  MPI_Finalize();
  return 0;
}
