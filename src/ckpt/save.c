/* SPDX-License-Identifier: Apache-2.0 */
/* Saving: full weights streamed through rank 0, and sharded checkpoints in
 * which every rank writes only what it owns. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "src/ckpt/ckpt_internal.h"
#include "src/ckpt/durable.h"
#include "src/ckpt/safetensors.h"
#include "src/comm/comm.h"
#include "src/core/ctx.h"
#include "src/core/error.h"

#define CONV_ELEMS (1u << 20)

void shardrt_ckpt_opts_default(shardrt_ckpt_opts *o) {
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->format = SHARDRT_CKPT_FROM_PLAN;
  o->full_dtype = -1;
}

/* Parameter ids in file order: by unit, then by offset inside the unit. */
static int *param_order(shardrt_ctx *ctx) {
  int n = shardrt_num_params(ctx);
  int *ord = malloc(((size_t)n + 1) * sizeof *ord);
  if (!ord) return NULL;
  int k = 0;
  for (int u = 0; u < shardrt_num_units(ctx); u++) {
    int start = k;
    for (int i = 0; i < n; i++) {
      shardrt_param_info pi;
      if (shardrt_param_info_get(ctx, i, &pi) == SHARDRT_OK && pi.unit == u) ord[k++] = i;
    }
    for (int a = start + 1; a < k; a++) /* insertion sort by offset: units hold few params */
      for (int b = a; b > start; b--) {
        shardrt_param_info x, y;
        shardrt_param_info_get(ctx, ord[b - 1], &x);
        shardrt_param_info_get(ctx, ord[b], &y);
        if (x.offset <= y.offset) break;
        int t = ord[b];
        ord[b] = ord[b - 1];
        ord[b - 1] = t;
      }
  }
  return ord;
}

/* Names and layouts of the file's tensors through map (NULL: as
 * registered). names holds np slots of SAVE_NAME bytes. */
#define SAVE_NAME 512
static shardrt_status save_names(shardrt_ctx *ctx, const int *ord, const shardrt_weight_map *map, shardrt__st_tensor *tens,
                                 char (*names)[SAVE_NAME], bool *tr, shardrt_dtype dtype) {
  int np = shardrt_num_params(ctx);
  for (int k = 0; k < np; k++) {
    shardrt_param_info pi;
    shardrt_param_info_get(ctx, ord[k], &pi);
    tr[k] = false;
    const char *name = pi.name;
    if (map) {
      names[k][0] = 0;
      if (!map->to_file(map->arg, pi.name, NULL, NULL, names[k], SAVE_NAME, &tr[k]) || !names[k][0])
        return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "the weight map has no file name for parameter '%s'", pi.name);
      if (tr[k] && pi.ndim != 2)
        return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "the weight map transposes parameter '%s', which is not 2-D", pi.name);
      for (int q = 0; q < k; q++)
        if (!strcmp(names[q], names[k]))
          return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "the weight map gives two parameters the file name '%s'", names[k]);
      name = names[k];
    }
    tens[k] = (shardrt__st_tensor){.name = (char *)name, .dtype = dtype, .ndim = pi.ndim};
    memcpy(tens[k].shape, pi.shape, sizeof pi.shape);
    if (tr[k]) tens[k].shape[0] = pi.shape[1], tens[k].shape[1] = pi.shape[0];
  }
  return SHARDRT_OK;
}

shardrt_status shardrt__ck_save_full(shardrt_ctx *ctx, const char *path, shardrt_dtype dtype, const char *ckpt_id,
                                     uint64_t *bytes, uint32_t *header_crc, const shardrt_weight_map *map) {
  bool root = shardrt_rank(ctx) == 0;
  int np = shardrt_num_params(ctx), nu = shardrt_num_units(ctx);
  shardrt__st_writer w = {0};
  float *unit_buf = NULL, *tbuf = NULL;
  void *conv = NULL;
  int *ord = NULL;
  shardrt__st_tensor *tens = NULL;
  char (*names)[SAVE_NAME] = NULL;
  bool *tr = NULL;
  shardrt_status rc = SHARDRT_OK;
  if (root) {
    int64_t max_numel = shardrt__ck_max_unit_numel(ctx);
    ord = param_order(ctx);
    tens = calloc((size_t)np + 1, sizeof *tens);
    tr = calloc((size_t)np + 1, 1);
    if (map) names = calloc((size_t)np + 1, sizeof *names), tbuf = malloc(CONV_ELEMS * sizeof(float));
    unit_buf = malloc((size_t)(max_numel ? max_numel : 1) * sizeof(float));
    conv = malloc(CONV_ELEMS * sizeof(float));
    if (!ord || !tens || !tr || !unit_buf || !conv || (map && (!names || !tbuf))) {
      rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "saving '%s': rank 0 needs one unit (%lld elements) of host memory",
                          path, (long long)max_numel);
    } else {
      rc = save_names(ctx, ord, map, tens, names, tr, dtype);
      const char *meta[] = {"format", "pt", "shardrt.dtype", shardrt_dtype_name(dtype), "shardrt.checkpoint_id", ckpt_id};
      if (rc == SHARDRT_OK) rc = shardrt__stw_begin(&w, path, tens, np, meta, ckpt_id ? 3 : 2);
    }
  }
  rc = shardrt__ck_agree(ctx, rc);
  if (rc != SHARDRT_OK) goto out;

  /* Rank 0 keeps gathering after a write error so no rank is left waiting
   * in a collective; the error is reported once every unit is through. */
  shardrt_status wrc = SHARDRT_OK;
  int k = 0;
  for (int u = 0; u < nu; u++) {
    rc = shardrt__unit_gather_to_root(ctx, u, 0, root ? unit_buf : NULL);
    if (rc != SHARDRT_OK) {
      rc = shardrt__ck_agree(ctx, rc);
      goto out;
    }
    if (!root) continue;
    for (; k < np; k++) {
      shardrt_param_info pi;
      shardrt_param_info_get(ctx, ord[k], &pi);
      if (pi.unit != u) break;
      for (int64_t at = 0; at < pi.numel && wrc == SHARDRT_OK; at += CONV_ELEMS) {
        size_t n = (size_t)(pi.numel - at < CONV_ELEMS ? pi.numel - at : CONV_ELEMS);
        const float *from = unit_buf + pi.offset + at;
        if (tr[k]) { /* file element q is (col, row) of the [R, C] parameter */
          int64_t R = pi.shape[0], C = pi.shape[1];
          for (size_t e = 0; e < n; e++) {
            int64_t q = at + (int64_t)e;
            tbuf[e] = unit_buf[pi.offset + (q % R) * C + q / R];
          }
          from = tbuf;
        }
        shardrt_convert(conv, dtype, from, SHARDRT_F32, n);
        wrc = shardrt__stw_write(&w, conv, n * shardrt_dtype_size(dtype));
      }
    }
  }
  if (root) {
    if (bytes) *bytes = w.data_start + w.data_bytes;
    if (wrc == SHARDRT_OK) wrc = shardrt__stw_finish(&w);
    if (wrc == SHARDRT_OK && header_crc) *header_crc = w.header_crc;
  }
  rc = shardrt__ck_agree(ctx, wrc);
out:
  shardrt__stw_abort(&w);
  free(unit_buf);
  free(tbuf);
  free(conv);
  free(ord);
  free(tens);
  free(names);
  free(tr);
  return rc;
}

shardrt_status shardrt_save_weights(shardrt_ctx *ctx, const char *path, shardrt_dtype dtype) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_save_weights: ctx is NULL");
  if (!path || !*path) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_save_weights: path is NULL or empty");
  if ((unsigned)dtype > SHARDRT_F16)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_save_weights: dtype %d is not fp32, bf16 or fp16", (int)dtype);
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_SAVE, NULL, 0, 0, 0));
  shardrt__crash_arm();
  return shardrt__ck_save_full(ctx, path, dtype, NULL, NULL, NULL, NULL);
}

shardrt_status shardrt_save_weights_mapped(shardrt_ctx *ctx, const char *path, shardrt_dtype dtype, const shardrt_weight_map *map) {
  if (map && !map->to_file)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_save_weights_mapped: map->to_file is NULL");
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_save_weights_mapped: ctx is NULL");
  if (!path || !*path) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_save_weights_mapped: path is NULL or empty");
  if ((unsigned)dtype > SHARDRT_F16)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_save_weights_mapped: dtype %d is not fp32, bf16 or fp16", (int)dtype);
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_SAVE, NULL, 0, 0, 0));
  shardrt__crash_arm();
  return shardrt__ck_save_full(ctx, path, dtype, NULL, NULL, NULL, map);
}

/* Splits every unit into pieces, one per writing rank. Ranks owning the same
 * range (replicas: NO_SHARD, hybrid) each write an equal slice of it, so a
 * replicated model is saved by all ranks in parallel, once. */
static shardrt_status make_pieces(shardrt__ck_meta *m, const int64_t *ranges /* [world][nunits][2] */) {
  int world = m->world_size;
  for (int u = 0; u < m->nunits; u++) {
    shardrt__ck_unit *un = &m->units[u];
    un->pieces = calloc((size_t)world + 1, sizeof *un->pieces);
    if (!un->pieces) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "checkpoint: pieces of unit %d", u);
    un->npieces = 0;
    for (int r = 0; r < world; r++) {
      int64_t b = ranges[((size_t)r * m->nunits + u) * 2], e = ranges[((size_t)r * m->nunits + u) * 2 + 1];
      if (e <= b) continue;
      int j = 0, k = 0; /* this rank's index among the owners of [b, e), and their count */
      for (int q = 0; q < world; q++) {
        int64_t qb = ranges[((size_t)q * m->nunits + u) * 2], qe = ranges[((size_t)q * m->nunits + u) * 2 + 1];
        if (qb == b && qe == e) {
          if (q < r) j++;
          k++;
        }
      }
      int64_t len = e - b;
      int64_t pb = b + len * j / k, pe = b + len * (j + 1) / k;
      if (pe > pb) un->pieces[un->npieces++] = (shardrt__ck_piece){.file = r, .begin = pb, .end = pe};
    }
    /* Sort by begin and check that the owners' ranges tile the unit. */
    for (int a = 1; a < un->npieces; a++)
      for (int b = a; b > 0 && un->pieces[b - 1].begin > un->pieces[b].begin; b--) {
        shardrt__ck_piece t = un->pieces[b];
        un->pieces[b] = un->pieces[b - 1];
        un->pieces[b - 1] = t;
      }
    int64_t at = 0;
    for (int a = 0; a < un->npieces; a++) {
      if (un->pieces[a].begin != at)
        return shardrt__error(SHARDRT_ERR_INTERNAL, "checkpoint: owned ranges of unit '%s' do not tile it (gap or overlap at %lld)",
                              un->name, (long long)at);
      at = un->pieces[a].end;
    }
    if (at != un->numel)
      return shardrt__error(SHARDRT_ERR_INTERNAL, "checkpoint: owned ranges of unit '%s' cover %lld of %lld elements", un->name,
                            (long long)at, (long long)un->numel);
  }
  return SHARDRT_OK;
}

static shardrt_status write_rank_file(shardrt_ctx *ctx, const shardrt__ck_meta *m, const char *path, uint64_t *bytes,
                                      uint32_t *header_crc) {
  int rank = shardrt_rank(ctx);
  int n = 0;
  for (int u = 0; u < m->nunits; u++)
    for (int k = 0; k < m->units[u].npieces; k++)
      if (m->units[u].pieces[k].file == rank)
        for (int r = 0; r < SHARDRT__ROLE_COUNT_; r++) n += m->in_shards[r];
  shardrt__st_tensor *tens = calloc((size_t)n + 1, sizeof *tens);
  char (*names)[48] = calloc((size_t)n + 1, sizeof *names);
  float *buf = malloc(CONV_ELEMS * sizeof(float));
  void *conv = malloc(CONV_ELEMS * sizeof(float));
  shardrt__st_writer w = {0};
  shardrt_status rc = SHARDRT_OK;
  char *pieces = shardrt__ck_pieces_str(m, rank);
  char rank_s[16];
  snprintf(rank_s, sizeof rank_s, "%d", rank);
  if (!tens || !names || !buf || !conv || !pieces) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "checkpoint: writing '%s'", path);
    goto out;
  }
  int t = 0;
  for (int u = 0; u < m->nunits; u++)
    for (int k = 0; k < m->units[u].npieces; k++) {
      const shardrt__ck_piece *pc = &m->units[u].pieces[k];
      if (pc->file != rank) continue;
      for (int r = 0; r < SHARDRT__ROLE_COUNT_; r++) {
        if (!m->in_shards[r]) continue;
        shardrt__ck_piece_tensor(u, (shardrt__role)r, names[t], sizeof names[t]);
        tens[t] = (shardrt__st_tensor){.name = names[t], .dtype = m->role_dtype[r], .ndim = 1, .shape = {pc->end - pc->begin}};
        t++;
      }
    }
  /* Identity: which checkpoint, rank and pieces this file is (checked on load). */
  const char *meta[] = {"format", "shardrt-shard", "shardrt.checkpoint_id", m->ckpt_id, "shardrt.rank", rank_s,
                        "shardrt.pieces", pieces};
  SHARDRT__CHECK_GOTO(shardrt__stw_begin(&w, path, tens, n, meta, 4), rc, out);
  for (int u = 0; u < m->nunits; u++)
    for (int k = 0; k < m->units[u].npieces; k++) {
      const shardrt__ck_piece *pc = &m->units[u].pieces[k];
      if (pc->file != rank) continue;
      for (int r = 0; r < SHARDRT__ROLE_COUNT_; r++) {
        if (!m->in_shards[r]) continue;
        for (int64_t at = pc->begin; at < pc->end; at += CONV_ELEMS) {
          int64_t cnt = pc->end - at < CONV_ELEMS ? pc->end - at : CONV_ELEMS;
          SHARDRT__CHECK_GOTO(shardrt__state_read(ctx, u, (shardrt__role)r, at, cnt, buf), rc, fail);
          void *out = buf; /* fp32 roles go out as read; 16-bit ones are narrowed (exactly) */
          if (m->role_dtype[r] != SHARDRT_F32) {
            shardrt_convert(conv, m->role_dtype[r], buf, SHARDRT_F32, (size_t)cnt);
            out = conv;
          }
          SHARDRT__CHECK_GOTO(shardrt__stw_write(&w, out, (size_t)cnt * shardrt_dtype_size(m->role_dtype[r])), rc, fail);
        }
      }
    }
  *bytes = w.data_start + w.data_bytes;
  rc = shardrt__stw_finish(&w);
  *header_crc = w.header_crc;
  goto out;
fail:
  shardrt__stw_abort(&w);
out:
  free(tens);
  free(names);
  free(buf);
  free(conv);
  free(pieces);
  return rc;
}

/* 16 hex digits, new for every save, so that a file left from another save
 * (same names, same sizes) is told apart. */
static void new_ckpt_id(char out[17]) {
  uint64_t v = 0;
  FILE *f = fopen("/dev/urandom", "rb");
  if (!f || fread(&v, sizeof v, 1, f) != 1) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    v = (uint64_t)t.tv_sec * 1000000007ull ^ (uint64_t)t.tv_nsec ^ (uint64_t)getpid() << 40;
  }
  if (f) fclose(f);
  snprintf(out, 17, "%016llx", (unsigned long long)v);
}

static shardrt_dtype default_full_dtype(shardrt_ctx *ctx) {
  const shardrt_plan *p = shardrt_get_plan(ctx);
  if (p->save_16bit_model && p->compute_dtype != SHARDRT_F32) return p->compute_dtype;
  return shardrt__state_dtype(ctx, SHARDRT__ROLE_PARAM);
}

shardrt_status shardrt_save_checkpoint(shardrt_ctx *ctx, const char *dir, const shardrt_ckpt_opts *opts) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_save_checkpoint: ctx is NULL");
  if (!dir || !*dir) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_save_checkpoint: dir is NULL or empty");
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_SAVE, NULL, 0, 0, 0));
  if (strlen(dir) > 3900) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_save_checkpoint: dir longer than 3900 bytes");
  shardrt_ckpt_opts o;
  shardrt_ckpt_opts_default(&o);
  if (opts) {
    if (opts->struct_size != sizeof o)
      return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_save_checkpoint: opts.struct_size is %u, expected %zu (call shardrt_ckpt_opts_default)",
                            opts->struct_size, sizeof o);
    o = *opts;
  }
  if ((unsigned)o.format > SHARDRT_CKPT_FULL || o.full_dtype < -1 || o.full_dtype > SHARDRT_F16 || (o.user_len && !o.user_blob))
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "shardrt_save_checkpoint: format %d (0..2), full_dtype %d (-1..2) or user blob (%zu bytes at NULL) invalid",
                          (int)o.format, o.full_dtype, o.user_len);
  bool full = o.format == SHARDRT_CKPT_FULL ||
              (o.format == SHARDRT_CKPT_FROM_PLAN && shardrt_get_plan(ctx)->state_dict_type == SHARDRT_FULL_STATE_DICT);
  int rank = shardrt_rank(ctx), world = shardrt_world_size(ctx), nu = shardrt_num_units(ctx);
  shardrt__crash_arm();

  shardrt__ck_meta m;
  char *plan_json = NULL;
  int64_t *ranges = NULL;
  uint64_t *sizes = NULL;
  char path[4096];
  shardrt_status rc = shardrt__ck_describe(ctx, &m, &plan_json);
  if (rank == 0) new_ckpt_id(m.ckpt_id);
  if (rc == SHARDRT_OK) rc = shardrt__mkdir_p(dir);
  if (rc == SHARDRT_OK && rank == 0) {
    /* Un-complete an older checkpoint in the same place before touching its files. */
    snprintf(path, sizeof path, "%s/%s", dir, SHARDRT__CK_META_FILE);
    rc = shardrt__unlink_durable(path);
  }
  ranges = calloc((size_t)world * (size_t)nu * 2 + 2, sizeof *ranges);
  sizes = calloc(2 * (size_t)world + 2, sizeof *sizes);
  m.files = calloc((size_t)world + 1, sizeof *m.files);
  if (rc == SHARDRT_OK && (!ranges || !sizes || !m.files))
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "checkpoint: %d ranks x %d units", world, nu);
  SHARDRT__CHECK_GOTO(shardrt__ck_agree(ctx, rc), rc, out);
  SHARDRT__CHECK_GOTO(shardrt__ck_bcast_str(ctx, m.ckpt_id, sizeof m.ckpt_id), rc, out);

  int64_t *mine = malloc((size_t)nu * 2 * sizeof *mine + 16);
  if (!mine) rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "checkpoint: ranges");
  SHARDRT__CHECK_GOTO(shardrt__ck_agree(ctx, rc), rc, out);
  for (int u = 0; u < nu; u++) shardrt__state_range(ctx, u, &mine[2 * u], &mine[2 * u + 1]);
  rc = shardrt__ck_allgather(ctx, mine, ranges, (size_t)nu * 2 * sizeof *mine);
  free(mine);
  if (rc != SHARDRT_OK) goto out;
  SHARDRT__CHECK_GOTO(shardrt__ck_agree(ctx, make_pieces(&m, ranges)), rc, out);

  for (int r = 0; r < SHARDRT__ROLE_COUNT_; r++) {
    m.in_shards[r] = r == SHARDRT__ROLE_PARAM || shardrt__state_has(ctx, (shardrt__role)r);
    m.role_dtype[r] = shardrt__state_dtype(ctx, (shardrt__role)r);
  }
  if (full) {
    m.model_dtype = o.full_dtype < 0 ? default_full_dtype(ctx) : (shardrt_dtype)o.full_dtype;
    snprintf(m.model_file, sizeof m.model_file, "%s", SHARDRT__CK_MODEL_FILE);
    snprintf(path, sizeof path, "%s/%s", dir, SHARDRT__CK_MODEL_FILE);
    SHARDRT__CHECK_GOTO(
        shardrt__ck_save_full(ctx, path, m.model_dtype, m.ckpt_id, &m.model_bytes, &m.model_header_crc, NULL), rc, out);
    /* The rank files keep the exact parameters only when the model file cannot. */
    m.in_shards[SHARDRT__ROLE_PARAM] =
        !(m.model_dtype == SHARDRT_F32 || m.model_dtype == m.role_dtype[SHARDRT__ROLE_PARAM]);
  } else {
    m.model_dtype = SHARDRT_F32;
  }

  m.nfiles = world;
  for (int r = 0; r < world; r++) shardrt__ck_rank_file(r, m.files[r].name, sizeof m.files[r].name);
  snprintf(path, sizeof path, "%s/%s", dir, m.files[rank].name);
  uint64_t mine2[2] = {0, 0}; /* bytes, header checksum */
  uint32_t mycrc = 0;
  rc = write_rank_file(ctx, &m, path, &mine2[0], &mycrc);
  mine2[1] = mycrc;
  SHARDRT__CHECK_GOTO(shardrt__ck_agree(ctx, rc), rc, out);
  SHARDRT__CHECK_GOTO(shardrt__ck_allgather(ctx, mine2, sizes, sizeof mine2), rc, out);
  for (int r = 0; r < world; r++) {
    m.files[r].bytes = sizes[2 * r];
    m.files[r].header_crc = (uint32_t)sizes[2 * r + 1];
  }

  /* Every rank file is durable (the agree above is the barrier); now commit. */
  if (rank == 0) {
    m.user = (unsigned char *)o.user_blob;
    m.user_len = o.user_len;
    rc = shardrt__meta_write(&m, dir);
    m.user = NULL;
  }
  rc = shardrt__ck_agree(ctx, rc);
out:
  shardrt__ck_describe_free(&m, plan_json);
  free(ranges);
  free(sizes);
  return rc;
}

/* ROOT/step_<N>: the naming shardrt_latest_checkpoint looks for. */
shardrt_status shardrt_ckpt_maybe_save(shardrt_ctx *ctx, const char *root, int64_t step, int64_t every,
                                       const void *user_blob, size_t user_len, bool *saved) {
  if (saved) *saved = false;
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_ckpt_maybe_save: ctx is NULL");
  if (every < 0 || step < 0)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_ckpt_maybe_save: step %lld and every %lld must be >= 0",
                          (long long)step, (long long)every);
  if (every == 0 || step % every != 0) return SHARDRT_OK;
  if (!root || !*root) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_ckpt_maybe_save: root is NULL or empty");
  char dir[4096];
  if ((size_t)snprintf(dir, sizeof dir, "%s/step_%lld", root, (long long)step) >= sizeof dir)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_ckpt_maybe_save: root path too long");
  shardrt_ckpt_opts o;
  shardrt_ckpt_opts_default(&o);
  o.user_blob = user_blob;
  o.user_len = user_len;
  SHARDRT__CHECK(shardrt_save_checkpoint(ctx, dir, &o));
  if (shardrt_rank(ctx) == 0) shardrt__ckpt_cleanup(root, dir); /* what crashed saves left */
  if (saved) *saved = true;
  return SHARDRT_OK;
}
