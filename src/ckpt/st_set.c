/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* qsort_r */
#include "src/ckpt/st_set.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "src/ckpt/durable.h"
#include "src/ckpt/json.h"
#include "src/core/error.h"

bool shardrt__sts_is_index(const char *path) {
  size_t n = path ? strlen(path) : 0;
  return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

void shardrt__sts_close(shardrt__st_set *s) {
  if (!s) return;
  for (int i = 0; i < s->nfiles; i++) shardrt__st_close(&s->files[i]);
  free(s->files);
  free(s->ref);
  s->files = NULL;
  s->ref = NULL;
  s->nfiles = s->n = 0;
}

static const char *ref_name(const shardrt__st_set *s, const shardrt__st_ref *r) {
  return s->files[r->file].t[r->idx].name;
}

const shardrt__st_tensor *shardrt__sts_tensor(const shardrt__st_set *s, int g) {
  return &s->files[s->ref[g].file].t[s->ref[g].idx];
}

shardrt__st_file *shardrt__sts_file(shardrt__st_set *s, int g) { return &s->files[s->ref[g].file]; }

int shardrt__sts_find(const shardrt__st_set *s, const char *name) {
  int lo = 0, hi = s->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2, c = strcmp(ref_name(s, &s->ref[mid]), name);
    if (c == 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

static int by_name(const void *a, const void *b, void *set) { return strcmp(ref_name(set, a), ref_name(set, b)); }

static shardrt_status open_single(shardrt__st_set *s, const char *path) {
  s->files = calloc(1, sizeof *s->files);
  if (!s->files) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "opening '%s'", path);
  SHARDRT__CHECK(shardrt__st_open(&s->files[0], path));
  s->nfiles = 1;
  shardrt__st_file *f = &s->files[0];
  s->ref = malloc(((size_t)f->n + 1) * sizeof *s->ref);
  if (!s->ref) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "opening '%s'", path);
  for (int i = 0; i < f->n; i++) s->ref[i] = (shardrt__st_ref){0, f->by_name[i]}; /* by_name is already sorted */
  s->n = f->n;
  return SHARDRT_OK;
}

/* A shard name is a relative path inside the index's directory. */
static bool shard_name_ok(const char *v) {
  if (!*v || v[0] == '/' || strlen(v) > 1000) return false;
  for (const char *p = v; *p;) {
    const char *e = strchr(p, '/');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if ((n == 2 && !strncmp(p, "..", 2)) || n == 0) return false;
    p += n + (e ? 1 : 0);
  }
  return true;
}

static shardrt_status open_index(shardrt__st_set *s, const char *path) {
  char *text = NULL;
  size_t len = 0;
  json_t *root = NULL;
  shardrt_status rc = shardrt__read_file(path, &text, &len);
  if (rc == SHARDRT_OK) rc = shardrt__json_parse(text, len, path, &root);
  free(text);
  if (rc != SHARDRT_OK) return rc;
  json_t *wm = shardrt__j_get(root, "weight_map");
  json_t *md = shardrt__j_get(root, "metadata");
  if (!json_is_object(wm)) {
    rc = shardrt__error(SHARDRT_ERR_CORRUPT, "'%s' has no \"weight_map\" object ({\"tensor name\": \"shard file\", ...})", path);
    goto out;
  }
  if (md && !json_is_object(md)) {
    rc = shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': \"metadata\" must be an object", path);
    goto out;
  }
  size_t nt = json_object_size(wm);
  if (nt == 0 || nt > (1u << 24)) {
    rc = shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': \"weight_map\" lists %zu tensors (1 to %u allowed)", path, nt, 1u << 24);
    goto out;
  }
  s->files = calloc(nt, sizeof *s->files); /* at most one shard per tensor */
  s->ref = malloc(nt * sizeof *s->ref);
  if (!s->files || !s->ref) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s' (%zu tensors)", path, nt);
    goto out;
  }
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) slash[1] = 0;
  else dir[0] = 0;
  const char *key;
  json_t *val;
  size_t k = 0;
  json_object_foreach(wm, key, val) {
    const char *v = shardrt__j_str(val);
    if (!v || !shard_name_ok(v)) {
      rc = shardrt__error(SHARDRT_ERR_CORRUPT,
                          "'%s': \"weight_map\" maps tensor '%s' to %s; each value must be a shard file name relative to "
                          "the index's directory (no absolute path, no '..')",
                          path, key, v ? "an unusable name" : "something that is not a string");
      goto out;
    }
    int f = 0;
    while (f < s->nfiles && strcmp(s->files[f].path + strlen(dir), v) != 0) f++;
    if (f == s->nfiles) {
      char full[4200];
      snprintf(full, sizeof full, "%s%s", dir, v);
      struct stat st;
      if (stat(full, &st) != 0) {
        rc = shardrt__error(errno == ENOENT ? SHARDRT_ERR_NOT_FOUND : SHARDRT_ERR_IO,
                            "'%s' maps tensor '%s' to shard '%s', which cannot be opened: %s", path, key, full,
                            strerror(errno));
        goto out;
      }
      rc = shardrt__st_open(&s->files[f], full);
      if (rc != SHARDRT_OK) {
        rc = shardrt__error_wrap(rc, "shard '%s' of '%s'", v, path);
        goto out;
      }
      s->nfiles++;
    }
    int idx = shardrt__st_find(&s->files[f], key);
    if (idx < 0) {
      rc = shardrt__error(SHARDRT_ERR_NOT_FOUND, "'%s' maps tensor '%s' to shard '%s', which has no such tensor", path, key,
                          s->files[f].path);
      goto out;
    }
    s->ref[k++] = (shardrt__st_ref){f, idx};
  }
  s->n = (int)k;
  /* Every tensor of every shard is mapped to that shard: a shard that also
   * holds other tensors is out of step with the index. */
  for (int f = 0; f < s->nfiles; f++)
    for (int i = 0; i < s->files[f].n; i++) {
      const char *name = s->files[f].t[i].name;
      const char *to = shardrt__j_str(shardrt__j_get(wm, name));
      const char *rel = s->files[f].path + strlen(dir);
      if (!to || strcmp(to, rel) != 0) {
        rc = shardrt__error(SHARDRT_ERR_MISMATCH, "shard '%s' holds tensor '%s', which '%s' %s%s%s", s->files[f].path, name,
                            path, to ? "maps to shard '" : "does not list", to ? to : "", to ? "'" : "");
        goto out;
      }
    }
  qsort_r(s->ref, (size_t)s->n, sizeof *s->ref, by_name, s);
out:
  json_decref(root);
  return rc;
}

shardrt_status shardrt__sts_open(shardrt__st_set *s, const char *path) {
  memset(s, 0, sizeof *s);
  snprintf(s->path, sizeof s->path, "%s", path);
  s->indexed = shardrt__sts_is_index(path);
  shardrt_status rc = s->indexed ? open_index(s, path) : open_single(s, path);
  if (rc != SHARDRT_OK) shardrt__sts_close(s);
  return rc;
}
