/* SPDX-License-Identifier: Apache-2.0 */
/* Offline consolidation: a checkpoint of any world size -> one safetensors
 * file of full tensors. Output tensors are laid out in unit flat order, so
 * streaming each unit's pieces front to back produces the output bytes in
 * file order: memory is one read chunk plus one converted chunk, whatever
 * the model size. With an export spec (export_spec.h) the tensors take the
 * spec's names, a transposed one is held whole (in the output dtype) until
 * its last element arrives, then written transposed, and the spec's extra
 * files go next to the weights: memory is the largest transposed tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardrt/ckpt.h"
#include "src/ckpt/export_spec.h"
#include "src/ckpt/durable.h"
#include "src/ckpt/safetensors.h"
#include "src/ckpt/source.h"
#include "src/core/error.h"

#define OUT_CHUNK_ELEMS (1u << 20)

typedef struct merge_ctx {
  shardrt__st_writer *w;
  shardrt_dtype out_dt;
  void *out;          /* OUT_CHUNK_ELEMS converted values */
  const shardrt__ck_meta *m;
  const bool *transpose; /* per parameter (NULL: none) */
  unsigned char *whole;  /* a transposed parameter, in the output dtype */
} merge_ctx;

/* Parameter p ([R, C], in c->whole) written as [C, R]. */
static shardrt_status write_transposed(merge_ctx *c, const shardrt__ck_param *p) {
  size_t es = shardrt_dtype_size(c->out_dt);
  int64_t R = p->shape[0], C = p->shape[1], k = 0;
  unsigned char *o = c->out;
  for (int64_t col = 0; col < C; col++)
    for (int64_t row = 0; row < R; row++) {
      memcpy(o + (size_t)k * es, c->whole + (size_t)(row * C + col) * es, es);
      if (++k == OUT_CHUNK_ELEMS) {
        SHARDRT__CHECK(shardrt__stw_write(c->w, c->out, (size_t)k * es));
        k = 0;
      }
    }
  return k ? shardrt__stw_write(c->w, c->out, (size_t)k * es) : SHARDRT_OK;
}

static shardrt_status sink_write(const shardrt__ck_need *need, int64_t off, const void *data, shardrt_dtype dt,
                                 size_t n, void *arg) {
  merge_ctx *c = arg;
  size_t in_es = shardrt_dtype_size(dt), out_es = shardrt_dtype_size(c->out_dt);
  if (c->transpose && c->transpose[need->tag]) {
    /* elements arrive in order: the tensor is complete with its last one */
    const shardrt__ck_param *p = &c->m->params[need->tag];
    shardrt_convert(c->whole + (size_t)off * out_es, c->out_dt, data, dt, n);
    return off + (int64_t)n == p->numel ? write_transposed(c, p) : SHARDRT_OK;
  }
  for (size_t at = 0; at < n; at += OUT_CHUNK_ELEMS) {
    size_t k = n - at < OUT_CHUNK_ELEMS ? n - at : OUT_CHUNK_ELEMS;
    shardrt_convert(c->out, c->out_dt, (const char *)data + at * in_es, dt, k);
    SHARDRT__CHECK(shardrt__stw_write(c->w, c->out, k * out_es));
  }
  return SHARDRT_OK;
}

static shardrt_status model_chunk(uint64_t elem_off, const void *data, size_t n, void *arg) {
  void **a = arg; /* {merge_ctx*, shardrt_dtype*, shardrt__ck_need*} */
  return sink_write(a[2], (int64_t)elem_off, data, *(shardrt_dtype *)a[1], n, a[0]);
}

typedef struct pos_key {
  int unit;
  int64_t offset;
  int index;
} pos_key;
static int by_position(const void *a, const void *b) {
  const pos_key *x = a, *y = b;
  if (x->unit != y->unit) return x->unit < y->unit ? -1 : 1;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The dtype the checkpoint holds its parameters in. */
static shardrt_dtype held_dtype(const shardrt__ck_meta *m) {
  return m->in_shards[SHARDRT__ROLE_PARAM] ? m->role_dtype[SHARDRT__ROLE_PARAM] : m->model_dtype;
}

/* Names and transposes from the spec; the spec must cover exactly the
 * checkpoint's parameters, each to its own name. */
static shardrt_status apply_spec(const shardrt__export_spec *x, const shardrt__ck_meta *m, const char **out_name,
                                 bool *tr, int64_t *max_whole) {
  *max_whole = 0;
  for (int i = 0; i < m->nparams; i++) {
    const shardrt__ck_param *p = &m->params[i];
    SHARDRT__CHECK(shardrt__export_tensor(x, p->name, &out_name[i], &tr[i]));
    if (tr[i] && p->ndim != 2)
      return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "export spec '%s' transposes parameter '%s', which is %d-D", x->path,
                            p->name, p->ndim);
    if (tr[i] && p->numel > *max_whole) *max_whole = p->numel;
    for (int j = 0; j < i; j++)
      if (!strcmp(out_name[j], out_name[i]))
        return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "export spec '%s' names both '%s' and '%s' '%s'", x->path,
                              m->params[j].name, p->name, out_name[i]);
  }
  if ((size_t)m->nparams != json_object_size(x->tensors)) {
    const char *key;
    json_t *v;
    json_object_foreach(x->tensors, key, v) {
      int i = 0;
      while (i < m->nparams && strcmp(m->params[i].name, key)) i++;
      if (i == m->nparams)
        return shardrt__error(SHARDRT_ERR_MISMATCH, "export spec '%s' lists parameter '%s', which the checkpoint does not hold", x->path,
                              key);
    }
  }
  return SHARDRT_OK;
}

/* dtype < 0: as held. x: an export spec (out_path is then the output
 * directory), or NULL. */
static shardrt_status merge(const char *ckpt_dir, const char *out_path, int dtype_in, bool optimizer,
                            const shardrt__export_spec *x, shardrt_merge_stats *stats) {
  shardrt__ck_src s;
  SHARDRT__CHECK(shardrt__src_open(&s, ckpt_dir));
  const shardrt__ck_meta *m = &s.meta;
  shardrt_dtype dtype = dtype_in < 0 ? held_dtype(m) : (shardrt_dtype)dtype_in;
  shardrt_status rc = SHARDRT_OK;
  const char **out_name = NULL;
  bool *tr = NULL;
  char weights[4400];
  snprintf(weights, sizeof weights, "%s", out_path);
  shardrt__st_writer w = {0};
  int *order = malloc(((size_t)m->nparams + 1) * sizeof *order);
  shardrt__st_tensor *tens = calloc(((size_t)m->nparams * 3) + 1, sizeof *tens);
  char **names = calloc(((size_t)m->nparams * 3) + 1, sizeof *names);
  shardrt__ck_need *needs = malloc(((size_t)m->nparams + 1) * sizeof *needs);
  merge_ctx mc = {.w = &w, .out_dt = dtype, .out = malloc(OUT_CHUNK_ELEMS * 4), .m = m};
  if (!order || !tens || !names || !needs || !mc.out) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "merge of '%s' (%d parameters)", ckpt_dir, m->nparams);
    goto out;
  }
  if (x) {
    int64_t max_whole;
    out_name = calloc((size_t)m->nparams + 1, sizeof *out_name);
    tr = calloc((size_t)m->nparams + 1, sizeof *tr);
    if (!out_name || !tr) {
      rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "merge of '%s'", ckpt_dir);
      goto out;
    }
    SHARDRT__CHECK_GOTO(apply_spec(x, m, out_name, tr, &max_whole), rc, out);
    mc.transpose = tr;
    if (max_whole && !(mc.whole = malloc((size_t)max_whole * shardrt_dtype_size(dtype)))) {
      rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "merge: a transposed tensor of %lld elements", (long long)max_whole);
      goto out;
    }
    SHARDRT__CHECK_GOTO(shardrt__mkdir_p(out_path), rc, out);
    snprintf(weights, sizeof weights, "%s/%s", out_path, x->weights_file);
  }
  pos_key *keys = malloc(((size_t)m->nparams + 1) * sizeof *keys);
  if (!keys) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "merge of '%s'", ckpt_dir);
    goto out;
  }
  for (int i = 0; i < m->nparams; i++) keys[i] = (pos_key){m->params[i].unit, m->params[i].offset, i};
  qsort(keys, (size_t)m->nparams, sizeof *keys, by_position);
  for (int i = 0; i < m->nparams; i++) order[i] = keys[i].index;
  free(keys);

  /* Roles to write, in the order each unit's data is emitted. */
  shardrt__role roles[SHARDRT__ROLE_COUNT_];
  int nroles = 0;
  roles[nroles++] = SHARDRT__ROLE_PARAM;
  if (optimizer)
    for (int r = SHARDRT__ROLE_EXP_AVG; r < SHARDRT__ROLE_COUNT_; r++)
      if (m->in_shards[r]) roles[nroles++] = (shardrt__role)r;
  int nt = 0;
  uint64_t model_bytes = 0;
  for (int u = 0, i0 = 0; u < m->nunits; u++) {
    int i1 = i0;
    while (i1 < m->nparams && m->params[order[i1]].unit == u) i1++;
    for (int ri = 0; ri < nroles; ri++)
      for (int i = i0; i < i1; i++) {
        const shardrt__ck_param *p = &m->params[order[i]];
        const char *base = out_name ? out_name[order[i]] : p->name;
        size_t len = strlen(base) + 16;
        names[nt] = malloc(len);
        if (!names[nt]) {
          rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "merge: tensor names");
          goto out;
        }
        if (roles[ri] == SHARDRT__ROLE_PARAM) snprintf(names[nt], len, "%s", base);
        else snprintf(names[nt], len, "%s.%s", base, shardrt__role_name(roles[ri]));
        tens[nt] = (shardrt__st_tensor){.name = names[nt], .dtype = dtype, .ndim = p->ndim};
        memcpy(tens[nt].shape, p->shape, sizeof p->shape);
        if (tr && tr[order[i]]) tens[nt].shape[0] = p->shape[1], tens[nt].shape[1] = p->shape[0];
        if (roles[ri] == SHARDRT__ROLE_PARAM) model_bytes += (uint64_t)p->numel * 4;
        nt++;
      }
    i0 = i1;
  }
  const char *meta_kv[2 * 64 + 2] = {"format", "pt", "shardrt.source", ckpt_dir};
  int n_meta = 2;
  if (x && x->metadata) {
    /* the spec's metadata replaces the default "format" */
    n_meta = 0;
    const char *key;
    json_t *v;
    json_object_foreach(x->metadata, key, v) {
      if (n_meta == 64) break;
      meta_kv[2 * n_meta] = key;
      meta_kv[2 * n_meta++ + 1] = json_string_value(v);
    }
    meta_kv[2 * n_meta] = "shardrt.source";
    meta_kv[2 * n_meta++ + 1] = ckpt_dir;
  }
  SHARDRT__CHECK_GOTO(shardrt__stw_begin(&w, weights, tens, nt, meta_kv, n_meta), rc, out);

  for (int u = 0, i0 = 0; u < m->nunits; u++) {
    int i1 = i0;
    while (i1 < m->nparams && m->params[order[i1]].unit == u) i1++;
    for (int ri = 0; ri < nroles; ri++) {
      shardrt__role r = roles[ri];
      if (r == SHARDRT__ROLE_PARAM && !m->in_shards[r]) {
        shardrt__st_file *mf;
        SHARDRT__CHECK_GOTO(shardrt__src_model(&s, &mf), rc, fail);
        for (int i = i0; i < i1; i++) {
          const shardrt__ck_param *p = &m->params[order[i]];
          int ti = shardrt__st_find(mf, p->name);
          if (ti < 0 || (mf->t[ti].end - mf->t[ti].begin) != (uint64_t)p->numel * shardrt_dtype_size(mf->t[ti].dtype)) {
            rc = shardrt__error(SHARDRT_ERR_CORRUPT, "'%s' lacks parameter '%s' (or has it with another size)", mf->path, p->name);
            goto fail;
          }
          shardrt_dtype sdt = mf->t[ti].dtype;
          shardrt__ck_need whole = {.begin = 0, .end = p->numel, .tag = order[i]};
          void *arg[3] = {&mc, &sdt, &whole};
          SHARDRT__CHECK_GOTO(shardrt__st_stream(mf, ti, s.scratch, s.scratch_bytes, model_chunk, arg), rc, fail);
          s.bytes_read += mf->t[ti].end - mf->t[ti].begin;
        }
        continue;
      }
      int nn = 0;
      for (int i = i0; i < i1; i++) {
        const shardrt__ck_param *p = &m->params[order[i]];
        if (p->numel > 0) needs[nn++] = (shardrt__ck_need){.begin = p->offset, .end = p->offset + p->numel, .tag = order[i]};
      }
      SHARDRT__CHECK_GOTO(shardrt__src_stream_unit(&s, u, r, needs, nn, sink_write, &mc), rc, fail);
    }
    i0 = i1;
  }
  uint64_t out_bytes = w.data_start + w.data_bytes;
  SHARDRT__CHECK_GOTO(shardrt__stw_finish(&w), rc, out);
  if (x) SHARDRT__CHECK_GOTO(shardrt__export_write_files(x, out_path, dtype), rc, out);
  if (stats) {
    stats->num_tensors = nt;
    stats->model_bytes = model_bytes;
    stats->bytes_read = s.bytes_read;
    stats->bytes_written = out_bytes;
  }
  goto out;
fail:
  shardrt__stw_abort(&w);
out:
  if (names)
    for (int i = 0; i < m->nparams * 3; i++) free(names[i]);
  free(names);
  free(tens);
  free(order);
  free(needs);
  free(mc.out);
  free(mc.whole);
  free(out_name);
  free(tr);
  shardrt__src_close(&s);
  return rc;
}

shardrt_status shardrt_merge_checkpoint(const char *ckpt_dir, const char *out_path, shardrt_dtype dtype, bool optimizer,
                                        shardrt_merge_stats *stats) {
  if (!out_path || !*out_path) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "merge: output path is NULL or empty");
  if ((unsigned)dtype > SHARDRT_F16)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "merge: dtype %d is not fp32, bf16 or fp16", (int)dtype);
  return merge(ckpt_dir, out_path, (int)dtype, optimizer, NULL, stats);
}

shardrt_status shardrt_merge_checkpoint_export(const char *ckpt_dir, const char *out_dir, const char *spec_path, int dtype,
                                               shardrt_merge_stats *stats) {
  if (!out_dir || !*out_dir || strlen(out_dir) > 3900)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "merge: output directory is NULL, empty or over 3900 bytes");
  if (!spec_path || !*spec_path) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "merge: export spec path is NULL or empty");
  if (dtype < -1 || dtype > (int)SHARDRT_F16)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "merge: dtype %d is not -1 (as held), fp32, bf16 or fp16", dtype);
  shardrt__export_spec x;
  SHARDRT__CHECK(shardrt__export_open(&x, spec_path));
  shardrt_status rc = merge(ckpt_dir, out_dir, dtype, false, &x, stats);
  shardrt__export_close(&x);
  return rc;
}
