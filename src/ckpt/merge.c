/* SPDX-License-Identifier: Apache-2.0 */
/* Offline consolidation: a checkpoint of any world size -> one safetensors
 * file of full tensors. Output tensors are laid out in unit flat order, so
 * streaming each unit's pieces front to back produces the output bytes in
 * file order: memory is one read chunk plus one converted chunk, whatever
 * the model size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardrt/ckpt.h"
#include "src/ckpt/safetensors.h"
#include "src/ckpt/source.h"
#include "src/core/error.h"

#define OUT_CHUNK_ELEMS (1u << 20)

typedef struct merge_ctx {
  shardrt__st_writer *w;
  shardrt_dtype out_dt;
  void *out;          /* OUT_CHUNK_ELEMS converted values */
} merge_ctx;

static shardrt_status sink_write(const shardrt__ck_need *need, int64_t off, const void *data, shardrt_dtype dt,
                                 size_t n, void *arg) {
  merge_ctx *c = arg;
  size_t in_es = shardrt_dtype_size(dt), out_es = shardrt_dtype_size(c->out_dt);
  for (size_t at = 0; at < n; at += OUT_CHUNK_ELEMS) {
    size_t k = n - at < OUT_CHUNK_ELEMS ? n - at : OUT_CHUNK_ELEMS;
    shardrt_convert(c->out, c->out_dt, (const char *)data + at * in_es, dt, k);
    SHARDRT__CHECK(shardrt__stw_write(c->w, c->out, k * out_es));
  }
  return SHARDRT_OK;
}

static shardrt_status model_chunk(uint64_t elem_off, const void *data, size_t n, void *arg) {
  void **a = arg; /* {merge_ctx*, shardrt_dtype*} */
  shardrt__ck_need dummy = {0};
  return sink_write(&dummy, (int64_t)elem_off, data, *(shardrt_dtype *)a[1], n, a[0]);
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

shardrt_status shardrt_merge_checkpoint(const char *ckpt_dir, const char *out_path, shardrt_dtype dtype, bool optimizer,
                                        shardrt_merge_stats *stats) {
  if (!out_path || !*out_path) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "merge: output path is NULL or empty");
  if ((unsigned)dtype > SHARDRT_F16)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "merge: dtype %d is not fp32, bf16 or fp16", (int)dtype);
  shardrt__ck_src s;
  SHARDRT__CHECK(shardrt__src_open(&s, ckpt_dir));
  const shardrt__ck_meta *m = &s.meta;
  shardrt_status rc = SHARDRT_OK;
  shardrt__st_writer w = {0};
  int *order = malloc(((size_t)m->nparams + 1) * sizeof *order);
  shardrt__st_tensor *tens = calloc(((size_t)m->nparams * 3) + 1, sizeof *tens);
  char **names = calloc(((size_t)m->nparams * 3) + 1, sizeof *names);
  shardrt__ck_need *needs = malloc(((size_t)m->nparams + 1) * sizeof *needs);
  merge_ctx mc = {.w = &w, .out_dt = dtype, .out = malloc(OUT_CHUNK_ELEMS * 4)};
  if (!order || !tens || !names || !needs || !mc.out) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "merge of '%s' (%d parameters)", ckpt_dir, m->nparams);
    goto out;
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
        size_t len = strlen(p->name) + 16;
        names[nt] = malloc(len);
        if (!names[nt]) {
          rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "merge: tensor names");
          goto out;
        }
        if (roles[ri] == SHARDRT__ROLE_PARAM) snprintf(names[nt], len, "%s", p->name);
        else snprintf(names[nt], len, "%s.%s", p->name, shardrt__role_name(roles[ri]));
        tens[nt] = (shardrt__st_tensor){.name = names[nt], .dtype = dtype, .ndim = p->ndim};
        memcpy(tens[nt].shape, p->shape, sizeof p->shape);
        if (roles[ri] == SHARDRT__ROLE_PARAM) model_bytes += (uint64_t)p->numel * 4;
        nt++;
      }
    i0 = i1;
  }
  const char *meta_kv[] = {"format", "pt", "shardrt.source", ckpt_dir};
  SHARDRT__CHECK_GOTO(shardrt__stw_begin(&w, out_path, tens, nt, meta_kv, 2), rc, out);

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
          void *arg[2] = {&mc, &sdt};
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
  shardrt__src_close(&s);
  return rc;
}
