/* SPDX-License-Identifier: Apache-2.0 */
/* ROOT/step_<N>/ naming: finding the newest complete checkpoint (no context
 * needed, so offline tools can use it). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shardrt/ckpt.h"
#include "src/ckpt/ckpt_internal.h"
#include "src/ckpt/meta.h"
#include "src/ckpt/source.h"
#include "src/config/config_internal.h"
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

/* SHARDRT_CKPT_FALLBACK=0|off: a damaged newest checkpoint is an error
 * instead of a warning and a fall-back to an older one. */
bool shardrt__ckpt_fallback_on(void) {
  const char *v = getenv("SHARDRT_CKPT_FALLBACK");
  return !(v && (strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0 || strcasecmp(v, "false") == 0));
}

/* Step numbers of ROOT/step_<N> folders, newest first. */
static shardrt_status list_steps(const char *root, int64_t **out, size_t *count) {
  *out = NULL;
  *count = 0;
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
  *out = steps;
  *count = n;
  return SHARDRT_OK;
}

shardrt_status shardrt__latest_checkpoint_below(const char *root, int64_t below, char *buf, size_t len) {
  if (!root || !*root || !buf || len == 0)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_latest_checkpoint: root and buf must be non-empty");
  int64_t *steps;
  size_t n;
  SHARDRT__CHECK(list_steps(root, &steps, &n));
  shardrt_status rc = shardrt__error(SHARDRT_ERR_NOT_FOUND, "no complete checkpoint (step_<N> with a valid %s) under '%s'",
                                     SHARDRT__CK_META_FILE, root);
  bool strict = !shardrt__ckpt_fallback_on();
  for (size_t i = 0; i < n; i++) {
    if (steps[i] >= below) continue;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/step_%lld", root, (long long)steps[i]);
    shardrt__ck_meta m;
    shardrt_status vrc = shardrt__meta_check_complete(dir, &m);
    if (vrc == SHARDRT_OK) {
      vrc = shardrt__ck_verify_all(dir, &m);
      shardrt__meta_free(&m);
    }
    if (vrc != SHARDRT_OK) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", shardrt_last_error());
      if (vrc == SHARDRT_ERR_NOT_FOUND) {
        /* No meta.json: a save that never finished (a crash); never chosen. */
        shardrt__warn("checkpoint '%s' is incomplete (no %s: its save did not finish); using an older one", dir,
                      SHARDRT__CK_META_FILE);
        continue;
      }
      if (strict) {
        rc = shardrt__error(vrc, "the newest checkpoint '%s' is damaged (SHARDRT_CKPT_FALLBACK=0): %s", dir, msg);
        break;
      }
      shardrt__warn("checkpoint '%s' is damaged and skipped: %s; falling back to an older one "
                    "(SHARDRT_CKPT_FALLBACK=0 makes this an error)",
                    dir, msg);
      continue;
    }
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

shardrt_status shardrt_latest_checkpoint(const char *root, char *buf, size_t len) {
  return shardrt__latest_checkpoint_below(root, INT64_MAX, buf, len);
}

/* Names a save writes; cleanup never touches anything else. */
static bool ours(const char *name) {
  const char *tmp = strstr(name, ".tmp.");
  size_t base = tmp ? (size_t)(tmp - name) : strlen(name);
  if (tmp) {
    const char *q = tmp + 5;
    if (!*q) return false;
    for (; *q; q++)
      if (*q < '0' || *q > '9') return false;
  }
  if (base == strlen(SHARDRT__CK_META_FILE) && strncmp(name, SHARDRT__CK_META_FILE, base) == 0) return true;
  if (base == strlen(SHARDRT__CK_MODEL_FILE) && strncmp(name, SHARDRT__CK_MODEL_FILE, base) == 0) return true;
  /* rank_<digits>.safetensors */
  if (strncmp(name, "rank_", 5) != 0) return false;
  size_t k = 5;
  while (k < base && name[k] >= '0' && name[k] <= '9') k++;
  return k > 5 && base - k == strlen(".safetensors") && strncmp(name + k, ".safetensors", base - k) == 0;
}

/* Removes stale temporaries in dir; with `all`, every file of ours and then
 * the folder (when nothing else is in it). Returns the entries left. */
static int sweep(const char *dir, bool all) {
  DIR *d = opendir(dir);
  if (!d) return 1;
  struct dirent *e;
  int left = 0;
  char path[4400];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    bool tmp = strstr(e->d_name, ".tmp.") != NULL;
    if (ours(e->d_name) && (tmp || all)) {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      if (unlink(path) == 0) continue;
    }
    left++;
  }
  closedir(d);
  if (all && left == 0 && rmdir(dir) != 0) left = 1;
  return left;
}

void shardrt__ckpt_cleanup(const char *root, const char *keep) {
  int64_t *steps;
  size_t n;
  if (list_steps(root, &steps, &n) != SHARDRT_OK) {
    shardrt__error_clear();
    return;
  }
  for (size_t i = 0; i < n; i++) {
    char dir[4200], meta[4300];
    snprintf(dir, sizeof dir, "%s/step_%lld", root, (long long)steps[i]);
    snprintf(meta, sizeof meta, "%s/%s", dir, SHARDRT__CK_META_FILE);
    struct stat st;
    /* A folder without meta.json (other than the one just saved) is what a
     * crashed save left: its files are never used. */
    bool incomplete = strcmp(dir, keep) != 0 && stat(meta, &st) != 0;
    sweep(dir, incomplete);
  }
  free(steps);
}
