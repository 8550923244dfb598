/* SPDX-License-Identifier: Apache-2.0 */
/* `shardrt merge-weights CKPT_DIR OUT.safetensors [--dtype fp32|bf16|fp16]
 * [--optimizer]`: offline consolidation of a checkpoint written at any world
 * size into one safetensors file; with `--export SPEC`, OUT is a directory
 * in the layout the spec describes (e.g. a Hugging Face model directory).
 * Needs no MPI; streams one piece at a time and reports the peak memory it
 * used next to the model size. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "shardrt.h"
#include "src/tools/tool.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: shardrt merge-weights CKPT_DIR OUT.safetensors [--dtype fp32|bf16|fp16] [--optimizer]\n"
          "       shardrt merge-weights CKPT_DIR OUT_DIR --export SPEC.json [--dtype fp32|bf16|fp16]\n"
          "  CKPT_DIR      a checkpoint directory (with meta.json), or a root holding step_<N>/ (newest complete)\n"
          "  --dtype D     dtype of the output tensors (default fp32; with --export: the dtype the checkpoint holds)\n"
          "  --optimizer   also write <param>.exp_avg / <param>.exp_avg_sq\n"
          "  --export SPEC write OUT_DIR as the export spec says: tensor names, transposes, metadata and extra\n"
          "                files (train_gpt writes SAVE_DIR/export_hf.json: a Hugging Face GPT-2 directory)\n");
}

int shardrt_cmd_merge_weights(int argc, char **argv) {
  const char *pos[2] = {NULL, NULL};
  int npos = 0;
  shardrt_dtype dt = SHARDRT_F32;
  bool optimizer = false, dt_given = false;
  const char *spec = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--optimizer") == 0) {
      optimizer = true;
    } else if (strcmp(a, "--export") == 0 || strncmp(a, "--export=", 9) == 0) {
      spec = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
      if (!spec || !*spec) {
        fprintf(stderr, "shardrt merge-weights: --export needs an export spec file\n");
        return 2;
      }
    } else if (strcmp(a, "--dtype") == 0 || strncmp(a, "--dtype=", 8) == 0) {
      const char *v = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v || !shardrt_dtype_parse(v, &dt)) {
        fprintf(stderr, "shardrt merge-weights: --dtype '%s' is not one of fp32, bf16, fp16\n", v ? v : "");
        return 2;
      }
      dt_given = true;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "shardrt merge-weights: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    } else if (npos < 2) {
      pos[npos++] = a;
    } else {
      fprintf(stderr, "shardrt merge-weights: unexpected argument '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (npos != 2) {
    usage(stderr);
    return 2;
  }
  if (spec && optimizer) {
    fprintf(stderr, "shardrt merge-weights: --optimizer and --export exclude each other (an export holds the model)\n");
    return 2;
  }
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", pos[0]);
  if (shardrt_latest_checkpoint(pos[0], dir, sizeof dir) != SHARDRT_OK) snprintf(dir, sizeof dir, "%s", pos[0]);
  shardrt_merge_stats st;
  shardrt_status rc = spec ? shardrt_merge_checkpoint_export(dir, pos[1], spec, dt_given ? (int)dt : -1, &st)
                            : shardrt_merge_checkpoint(dir, pos[1], dt, optimizer, &st);
  if (rc != SHARDRT_OK) {
    fprintf(stderr, "shardrt merge-weights: %s: %s\n", shardrt_status_str(rc), shardrt_last_error());
    return 1;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double mib = 1024.0 * 1024.0;
  if (spec) printf("merged %s -> %s/ as %s (%d tensors)\n", dir, pos[1], spec, st.num_tensors);
  else printf("merged %s -> %s (%s, %d tensors)\n", dir, pos[1], shardrt_dtype_name(dt), st.num_tensors);
  printf("model size (fp32 params): %.2f MiB (%llu bytes)\n", (double)st.model_bytes / mib,
         (unsigned long long)st.model_bytes);
  printf("read %.2f MiB, wrote %.2f MiB\n", (double)st.bytes_read / mib, (double)st.bytes_written / mib);
  printf("peak RSS: %.2f MiB (%ld KiB)\n", (double)ru.ru_maxrss / 1024.0, (long)ru.ru_maxrss);
  return 0;
}
