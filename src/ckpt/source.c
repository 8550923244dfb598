/* SPDX-License-Identifier: Apache-2.0 */
#include "src/ckpt/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/core/error.h"

#define CHUNK_BYTES (8u << 20)

shardrt_status shardrt__ck_verify_file(const shardrt__ck_meta *m, int file, const shardrt__st_file *f) {
  const char *p = f->path;
  uint32_t want = file < 0 ? m->model_header_crc : m->files[file].header_crc;
  if (!f->has_header_crc)
    return shardrt__error(SHARDRT_ERR_CORRUPT,
                          "'%s' carries no header checksum (shardrt.header_crc32c): every file of a checkpoint must, "
                          "so it was not written by this checkpoint's save",
                          p);
  const char *id = shardrt__st_meta(f, "shardrt.checkpoint_id");
  if (!id || strcmp(id, m->ckpt_id) != 0)
    return shardrt__error(SHARDRT_ERR_CORRUPT,
                          "'%s' belongs to checkpoint %s, not to %s that meta.json describes: a stale file from another "
                          "save (or meta.json is)",
                          p, id ? id : "(none)", m->ckpt_id);
  if (file >= 0) {
    const char *rk = shardrt__st_meta(f, "shardrt.rank");
    char want_rank[16];
    snprintf(want_rank, sizeof want_rank, "%d", file);
    if (!rk || strcmp(rk, want_rank) != 0)
      return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s' is rank %s's file, but it is in the place of rank %d's: files swapped or copied",
                            p, rk ? rk : "(none)", file);
    char *pieces = shardrt__ck_pieces_str(m, file);
    if (!pieces) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "checking '%s'", p);
    const char *got = shardrt__st_meta(f, "shardrt.pieces");
    bool same = got && strcmp(got, pieces) == 0;
    if (!same)
      shardrt__error(SHARDRT_ERR_CORRUPT, "'%s' holds pieces \"%.200s\", meta.json places \"%.200s\" there", p,
                     got ? got : "(none)", pieces);
    free(pieces);
    if (!same) return SHARDRT_ERR_CORRUPT;
  }
  if (f->header_crc != want)
    return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': header checksum %08x, meta.json recorded %08x: the file was replaced", p,
                          f->header_crc, want);
  return SHARDRT_OK;
}

shardrt_status shardrt__ck_verify_all(const char *dir, const shardrt__ck_meta *m) {
  char path[4200];
  for (int i = -1; i < m->nfiles; i++) {
    if (i < 0 && !m->model_file[0]) continue;
    snprintf(path, sizeof path, "%s/%s", dir, i < 0 ? m->model_file : m->files[i].name);
    shardrt__st_file f;
    SHARDRT__CHECK(shardrt__st_open(&f, path));
    shardrt_status rc = shardrt__ck_verify_file(m, i, &f);
    shardrt__st_close(&f);
    if (rc != SHARDRT_OK) return rc;
  }
  return SHARDRT_OK;
}

shardrt_status shardrt__src_open(shardrt__ck_src *s, const char *dir) {
  memset(s, 0, sizeof *s);
  s->model.fd = -1;
  if (!dir || !*dir) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "checkpoint directory is NULL or empty");
  if (strlen(dir) >= sizeof s->dir - 80)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "checkpoint directory path too long (%zu bytes)", strlen(dir));
  snprintf(s->dir, sizeof s->dir, "%s", dir);
  SHARDRT__CHECK(shardrt__meta_check_complete(dir, &s->meta));
  s->files = calloc((size_t)s->meta.nfiles + 1, sizeof *s->files);
  s->scratch_bytes = CHUNK_BYTES;
  s->scratch = malloc(s->scratch_bytes);
  if (!s->files || !s->scratch) {
    shardrt__src_close(s);
    return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "opening checkpoint '%s'", dir);
  }
  for (int i = 0; i < s->meta.nfiles; i++) s->files[i].fd = -1;
  return SHARDRT_OK;
}

void shardrt__src_close(shardrt__ck_src *s) {
  if (!s) return;
  if (s->files)
    for (int i = 0; i < s->meta.nfiles; i++)
      if (s->files[i].fd >= 0) shardrt__st_close(&s->files[i]);
  free(s->files);
  s->files = NULL;
  if (s->model.fd >= 0) shardrt__st_close(&s->model);
  s->model.fd = -1;
  free(s->scratch);
  s->scratch = NULL;
  shardrt__meta_free(&s->meta);
}

int shardrt__src_find_param(const shardrt__ck_src *s, const char *name) {
  for (int i = 0; i < s->meta.nparams; i++)
    if (strcmp(s->meta.params[i].name, name) == 0) return i;
  return -1;
}

shardrt_status shardrt__src_model(shardrt__ck_src *s, shardrt__st_file **out) {
  if (!s->meta.model_file[0])
    return shardrt__error(SHARDRT_ERR_NOT_FOUND, "checkpoint '%s' has no model file", s->dir);
  if (s->model.fd < 0) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", s->dir, s->meta.model_file);
    SHARDRT__CHECK(shardrt__st_open(&s->model, path));
    shardrt_status rc = shardrt__ck_verify_file(&s->meta, -1, &s->model);
    if (rc != SHARDRT_OK) {
      shardrt__st_close(&s->model);
      return rc;
    }
  }
  *out = &s->model;
  return SHARDRT_OK;
}

static shardrt_status open_file(shardrt__ck_src *s, int i) {
  if (s->files[i].fd >= 0) return SHARDRT_OK;
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", s->dir, s->meta.files[i].name);
  SHARDRT__CHECK(shardrt__st_open(&s->files[i], path));
  shardrt_status rc = shardrt__ck_verify_file(&s->meta, i, &s->files[i]);
  if (rc != SHARDRT_OK) shardrt__st_close(&s->files[i]);
  return rc;
}

typedef struct stream_ctx {
  shardrt__ck_src *s;
  const shardrt__ck_need *needs;
  int nneeds;
  int cursor;         /* first need that may still overlap */
  int64_t base;       /* unit coordinate of the piece's first element */
  shardrt_dtype dt;
  shardrt__ck_sink sink;
  void *arg;
} stream_ctx;

static shardrt_status on_chunk(uint64_t elem_off, const void *data, size_t n, void *arg) {
  stream_ctx *c = arg;
  int64_t cb = c->base + (int64_t)elem_off, ce = cb + (int64_t)n;
  size_t es = shardrt_dtype_size(c->dt);
  c->s->bytes_read += n * es;
  while (c->cursor < c->nneeds && c->needs[c->cursor].end <= cb) c->cursor++;
  for (int k = c->cursor; k < c->nneeds && c->needs[k].begin < ce; k++) {
    const shardrt__ck_need *nd = &c->needs[k];
    int64_t b = nd->begin > cb ? nd->begin : cb;
    int64_t e = nd->end < ce ? nd->end : ce;
    if (e <= b) continue;
    SHARDRT__CHECK(c->sink(nd, b - nd->begin, (const char *)data + (size_t)(b - cb) * es, c->dt, (size_t)(e - b), c->arg));
  }
  return SHARDRT_OK;
}

shardrt_status shardrt__src_stream_unit(shardrt__ck_src *s, int u, shardrt__role r, const shardrt__ck_need *needs,
                                        int nneeds, shardrt__ck_sink sink, void *arg) {
  const shardrt__ck_meta *m = &s->meta;
  if (u < 0 || u >= m->nunits) return shardrt__error(SHARDRT_ERR_INTERNAL, "stream of unit %d of %d", u, m->nunits);
  if (!m->in_shards[r])
    return shardrt__error(SHARDRT_ERR_NOT_FOUND, "checkpoint '%s' has no %s state in its rank files", s->dir, shardrt__role_name(r));
  const shardrt__ck_unit *un = &m->units[u];
  int first = 0;
  for (int k = 0; k < un->npieces; k++) {
    const shardrt__ck_piece *pc = &un->pieces[k];
    while (first < nneeds && needs[first].end <= pc->begin) first++;
    if (first >= nneeds) break;
    if (needs[first].begin >= pc->end) continue; /* nobody wants this piece */
    SHARDRT__CHECK(open_file(s, pc->file));
    shardrt__st_file *f = &s->files[pc->file];
    char tname[64];
    shardrt__ck_piece_tensor(u, r, tname, sizeof tname);
    int ti = shardrt__st_find(f, tname);
    if (ti < 0) return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s' lacks tensor '%s' that meta.json places there", f->path, tname);
    const shardrt__st_tensor *t = &f->t[ti];
    if (t->dtype != m->role_dtype[r] || t->ndim != 1 || t->shape[0] != pc->end - pc->begin)
      return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': tensor '%s' is %s[%lld], meta.json says %s[%lld]", f->path, tname,
                            shardrt_dtype_name(t->dtype), (long long)(t->ndim ? t->shape[0] : 0),
                            shardrt_dtype_name(m->role_dtype[r]), (long long)(pc->end - pc->begin));
    stream_ctx c = {.s = s, .needs = needs, .nneeds = nneeds, .cursor = first, .base = pc->begin, .dt = t->dtype,
                    .sink = sink, .arg = arg};
    SHARDRT__CHECK(shardrt__st_stream(f, ti, s->scratch, s->scratch_bytes, on_chunk, &c));
  }
  return SHARDRT_OK;
}
