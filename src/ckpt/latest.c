/* SPDX-License-Identifier: Apache-2.0 */
/* ROOT/step_<N>/ naming: finding the newest complete checkpoint (no context
 * needed, so offline tools can use it). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardrt/ckpt.h"
#include "src/ckpt/meta.h"
#include "src/core/error.h"

static bool parse_step(const char *name, int64_t *step) {
  if (strncmp(name, "step_", 5) != 0 || !name[5]) return false;
  int64_t v = 0;
  for (const char *p = name + 5; *p; p++) {
    if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10) return false;
    v = v * 10 + (*p - '0');
  }
  *step = v;
  return true;
}

static int by_step_desc(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

shardrt_status shardrt_latest_checkpoint(const char *root, char *buf, size_t len) {
  if (!root || !*root || !buf || len == 0)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_latest_checkpoint: root and buf must be non-empty");
  DIR *d = opendir(root);
  if (!d)
    return shardrt__error(errno == ENOENT ? SHARDRT_ERR_NOT_FOUND : SHARDRT_ERR_IO, "cannot open checkpoint root '%s': %s", root,
                          strerror(errno));
  size_t n = 0, cap = 16;
  int64_t *steps = malloc(cap * sizeof *steps);
  struct dirent *e;
  while (steps && (e = readdir(d)) != NULL) {
    int64_t s;
    if (!parse_step(e->d_name, &s)) continue;
    if (n == cap) {
      int64_t *g = realloc(steps, 2 * cap * sizeof *steps);
      if (!g) {
        free(steps);
        steps = NULL;
        break;
      }
      steps = g;
      cap *= 2;
    }
    steps[n++] = s;
  }
  closedir(d);
  if (!steps) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "listing '%s'", root);
  qsort(steps, n, sizeof *steps, by_step_desc);
  shardrt_status rc = shardrt__error(SHARDRT_ERR_NOT_FOUND, "no complete checkpoint (step_<N> with a valid %s) under '%s'",
                                     SHARDRT__CK_META_FILE, root);
  for (size_t i = 0; i < n; i++) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/step_%lld", root, (long long)steps[i]);
    shardrt__ck_meta m;
    if (shardrt__meta_check_complete(dir, &m) != SHARDRT_OK) continue; /* partial or damaged: skip */
    shardrt__meta_free(&m);
    if (strlen(dir) + 1 > len) {
      rc = shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_latest_checkpoint: '%s' needs %zu bytes, buf has %zu", dir,
                          strlen(dir) + 1, len);
    } else {
      snprintf(buf, len, "%s", dir);
      rc = SHARDRT_OK;
    }
    break;
  }
  free(steps);
  return rc;
}
