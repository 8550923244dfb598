/* SPDX-License-Identifier: Apache-2.0 */
/* Loading: checkpoints (re-sharded to this context's layout) and pretrained
 * safetensors weights (every rank maps the file, or rank 0 reads it and
 * sends each rank only its part). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "src/ckpt/ckpt_internal.h"
#include "src/ckpt/safetensors.h"
#include "src/ckpt/source.h"
#include "src/ckpt/st_set.h"
#include "src/core/ctx.h"
#include "src/core/error.h"
#include "src/config/config_internal.h"

#define CONV_ELEMS (1u << 20)

/* SHARDRT_CHECK_FINITE=1: weights are checked for NaN/Inf as they load. */
static bool check_finite_on(void) {
  const char *v = getenv("SHARDRT_CHECK_FINITE");
  return v && strcmp(v, "1") == 0;
}

static shardrt_status check_values(const float *v, size_t n, int64_t first, const char *path, const char *tensor) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i]))
      return shardrt__error(SHARDRT_ERR_CORRUPT,
                            "'%s': tensor '%s' holds %s at element %lld (SHARDRT_CHECK_FINITE=1 allows finite values only)",
                            path, tensor, isnan(v[i]) ? "NaN" : "Inf", (long long)(first + (int64_t)i));
  return SHARDRT_OK;
}

/* ---- checking a weights file against the registry ---- */

static bool st_has(const void *set, const char *name) { return shardrt__sts_find(set, name) >= 0; }

/* The file tensor parameter pi reads through map (NULL: its own name). */
static shardrt_status map_name(const shardrt_weight_map *map, const shardrt__st_set *f, const char *param, char *out,
                               size_t cap, bool *tr) {
  *tr = false;
  if (!map) {
    snprintf(out, cap, "%s", param);
    return SHARDRT_OK;
  }
  out[0] = 0;
  if (!map->to_file(map->arg, param, f ? st_has : NULL, f, out, cap, tr) || !out[0])
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "the weight map has no file name for parameter '%s'", param);
  return SHARDRT_OK;
}

static shardrt_status check_weights(shardrt_ctx *ctx, const shardrt__st_set *f, const shardrt_weight_map *map,
                                    int *tensor_of /* [nparams] */, bool *transposed /* [nparams] */) {
  int np = shardrt_num_params(ctx);
  char a[200], b[200], fname[512];
  bool *used = calloc((size_t)f->n + 1, 1);
  if (!used) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "checking '%s'", f->path);
  shardrt_status rc = SHARDRT_OK;
  for (int i = 0; i < np && rc == SHARDRT_OK; i++) {
    shardrt_param_info pi;
    bool tr;
    rc = shardrt_param_info_get(ctx, i, &pi);
    if (rc == SHARDRT_OK) rc = map_name(map, f, pi.name, fname, sizeof fname, &tr);
    if (rc != SHARDRT_OK) break;
    int t = shardrt__sts_find(f, fname);
    if (t < 0) {
      rc = shardrt__error(SHARDRT_ERR_NOT_FOUND, "'%s' has no tensor '%s' (parameter '%s' of the model)", f->path, fname, pi.name);
      break;
    }
    const shardrt__st_tensor *tt = shardrt__sts_tensor(f, t);
    const char *fpath = f->files[f->ref[t].file].path;
    if (tr && pi.ndim != 2) {
      rc = shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "the weight map transposes parameter '%s', which is not 2-D", pi.name);
      break;
    }
    bool same = tt->ndim == pi.ndim;
    for (int d = 0; same && d < pi.ndim; d++) same = tt->shape[d] == pi.shape[tr ? 1 - d : d];
    if (!same) {
      int64_t want[2] = {pi.shape[tr ? 1 : 0], pi.shape[tr ? 0 : 1]};
      shardrt__ck_shape_str(tt->ndim, tt->shape, a, sizeof a);
      shardrt__ck_shape_str(pi.ndim, tr ? want : pi.shape, b, sizeof b);
      rc = shardrt__error(SHARDRT_ERR_MISMATCH, "'%s': tensor '%s' has shape %s, the model registers %s%s", fpath, fname, a, b,
                          tr ? " (transposed)" : "");
      break;
    }
    tensor_of[i] = t;
    transposed[i] = tr;
    used[t] = true;
  }
  for (int t = 0; t < f->n && rc == SHARDRT_OK; t++)
    if (!used[t] && !(map && map->ignore && map->ignore(map->arg, shardrt__sts_tensor(f, t)->name)))
      rc = shardrt__error(SHARDRT_ERR_MISMATCH, "'%s' has tensor '%s', which is not a parameter of the model",
                          f->files[f->ref[t].file].path, shardrt__sts_tensor(f, t)->name);
  free(used);
  return rc;
}

/* Elements [j0, j0 + n) of a [R, C] parameter stored transposed ([C, R])
 * at src, gathered into dst in the parameter's order (es bytes each). */
static void gather_transposed(unsigned char *dst, const unsigned char *src, size_t es, int64_t R, int64_t C, int64_t j0,
                              int64_t n) {
  for (int64_t k = 0; k < n; k++) {
    int64_t j = j0 + k, r = j / C, c = j % C;
    memcpy(dst + (size_t)k * es, src + (size_t)(c * R + r) * es, es);
  }
}

/* Every rank maps the file and copies out the ranges it owns. */
static shardrt_status load_mapped(shardrt_ctx *ctx, const char *path, const shardrt_weight_map *map) {
  shardrt__st_set f;
  int np = shardrt_num_params(ctx);
  int *tof = malloc(((size_t)np + 1) * sizeof *tof);
  bool *tr = calloc((size_t)np + 1, 1);
  float *buf = malloc(CONV_ELEMS * sizeof(float));
  unsigned char *gath = malloc(CONV_ELEMS * sizeof(float)); /* transposed source elements, in parameter order */
  shardrt_status rc = SHARDRT_OK;
  bool opened = false;
  if (!tof || !tr || !buf || !gath) rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "loading '%s'", path);
  if (rc == SHARDRT_OK) {
    rc = shardrt__sts_open(&f, path);
    opened = rc == SHARDRT_OK;
  }
  if (rc == SHARDRT_OK) rc = check_weights(ctx, &f, map, tof, tr);
  bool fin = check_finite_on();
  for (int i = 0; i < np && rc == SHARDRT_OK; i++) {
    shardrt_param_info pi;
    shardrt_param_info_get(ctx, i, &pi);
    int64_t b, e;
    shardrt__state_range(ctx, pi.unit, &b, &e);
    int64_t s = b > pi.offset ? b : pi.offset, t = e < pi.offset + pi.numel ? e : pi.offset + pi.numel;
    if (t <= s) continue;
    shardrt__st_file *sf = shardrt__sts_file(&f, tof[i]);
    if (!sf->map) rc = shardrt__st_map(sf); /* each shard file when first needed */
    if (rc != SHARDRT_OK) break;
    rc = shardrt__st_verify_mapped(sf, f.ref[tof[i]].idx);
    const shardrt__st_tensor *tt = shardrt__sts_tensor(&f, tof[i]);
    const unsigned char *src = sf->map + sf->data_start + tt->begin;
    size_t es = shardrt_dtype_size(tt->dtype);
    for (int64_t at = s; at < t && rc == SHARDRT_OK; at += CONV_ELEMS) {
      int64_t n = t - at < CONV_ELEMS ? t - at : CONV_ELEMS;
      const unsigned char *from = src + (size_t)(at - pi.offset) * es;
      if (tr[i]) {
        gather_transposed(gath, src, es, pi.shape[0], pi.shape[1], at - pi.offset, n);
        from = gath;
      }
      shardrt_convert(buf, SHARDRT_F32, from, tt->dtype, (size_t)n);
      if (fin) rc = check_values(buf, (size_t)n, at - pi.offset, path, pi.name);
      if (rc == SHARDRT_OK) rc = shardrt__state_write(ctx, pi.unit, SHARDRT__ROLE_PARAM, at, n, buf);
    }
  }
  if (opened) shardrt__sts_close(&f);
  free(tof);
  free(tr);
  free(buf);
  free(gath);
  return shardrt__ck_agree(ctx, rc);
}

typedef struct fill_ctx {
  float *dst;
  shardrt_dtype dt;
  bool check;
  const char *path, *name;
  float *tmp;     /* transposed: the chunk in fp32 before it is scattered */
  int64_t R, C;   /* transposed: the parameter's shape (the file holds [C, R]) */
} fill_ctx;

static shardrt_status fill_chunk(uint64_t off, const void *data, size_t n, void *arg) {
  fill_ctx *c = arg;
  if (!c->tmp) {
    shardrt_convert(c->dst + off, SHARDRT_F32, data, c->dt, n);
    return c->check ? check_values(c->dst + off, n, (int64_t)off, c->path, c->name) : SHARDRT_OK;
  }
  shardrt_convert(c->tmp, SHARDRT_F32, data, c->dt, n);
  if (c->check) SHARDRT__CHECK(check_values(c->tmp, n, (int64_t)off, c->path, c->name));
  for (size_t k = 0; k < n; k++) { /* file element q = (col, row) of the parameter */
    int64_t q = (int64_t)off + (int64_t)k, col = q / c->R, row = q % c->R;
    c->dst[row * c->C + col] = c->tmp[k];
  }
  return SHARDRT_OK;
}

/* Rank 0 reads unit by unit; the others receive only what they own. */
static shardrt_status load_from_root(shardrt_ctx *ctx, const char *path, const shardrt_weight_map *map) {
  bool root = shardrt_rank(ctx) == 0;
  int np = shardrt_num_params(ctx), nu = shardrt_num_units(ctx);
  shardrt__st_set f;
  bool opened = false;
  int *tof = NULL;
  bool *tr = NULL;
  float *unit_buf = NULL, *tmp = NULL;
  void *scratch = NULL;
  shardrt_status rc = SHARDRT_OK;
  if (root) {
    int64_t max_numel = shardrt__ck_max_unit_numel(ctx);
    tof = malloc(((size_t)np + 1) * sizeof *tof);
    tr = calloc((size_t)np + 1, 1);
    unit_buf = malloc((size_t)(max_numel ? max_numel : 1) * sizeof(float));
    scratch = malloc(CONV_ELEMS * sizeof(float));
    tmp = malloc(CONV_ELEMS * sizeof(float));
    if (!tof || !tr || !unit_buf || !scratch || !tmp) rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "loading '%s' on rank 0 (one unit: %lld elements)", path, (long long)max_numel);
    if (rc == SHARDRT_OK) {
      rc = shardrt__sts_open(&f, path);
      opened = rc == SHARDRT_OK;
    }
    if (rc == SHARDRT_OK) rc = check_weights(ctx, &f, map, tof, tr);
  }
  SHARDRT__CHECK_GOTO(shardrt__ck_agree(ctx, rc), rc, out);
  for (int u = 0; u < nu; u++) {
    if (root) {
      shardrt_unit_info ui;
      shardrt_unit_info_get(ctx, u, &ui);
      memset(unit_buf, 0, (size_t)ui.numel * sizeof(float));
      for (int i = 0; i < np && rc == SHARDRT_OK; i++) {
        shardrt_param_info pi;
        shardrt_param_info_get(ctx, i, &pi);
        if (pi.unit != u) continue;
        fill_ctx fc = {.dst = unit_buf + pi.offset, .dt = shardrt__sts_tensor(&f, tof[i])->dtype, .check = check_finite_on(), .path = path,
                       .name = pi.name, .tmp = tr[i] ? tmp : NULL, .R = pi.shape[0],
                       .C = pi.ndim == 2 ? pi.shape[1] : 1};
        rc = shardrt__st_stream(shardrt__sts_file(&f, tof[i]), f.ref[tof[i]].idx, scratch, CONV_ELEMS * sizeof(float) / 2,
                                fill_chunk, &fc);
      }
    }
    SHARDRT__CHECK_GOTO(shardrt__ck_agree(ctx, rc), rc, out);
    SHARDRT__CHECK_GOTO(shardrt__unit_scatter_from_root(ctx, u, 0, root ? unit_buf : NULL), rc, out);
  }
out:
  if (opened) shardrt__sts_close(&f);
  free(tof);
  free(tr);
  free(unit_buf);
  free(tmp);
  free(scratch);
  return rc;
}

static shardrt_status load_weights_impl(shardrt_ctx *ctx, const char *path, const shardrt_weight_map *map) {
  const shardrt_plan *p = shardrt_get_plan(ctx);
  bool from_root = p->cpu_ram_efficient_loading && shardrt_world_size(ctx) > 1;
  SHARDRT__CHECK(from_root ? load_from_root(ctx, path, map) : load_mapped(ctx, path, map));
  return shardrt__state_refresh(ctx);
}

shardrt_status shardrt_load_weights(shardrt_ctx *ctx, const char *path) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_load_weights: ctx is NULL");
  if (!path || !*path) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_load_weights: path is NULL or empty");
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_LOAD, NULL, 0, 0, 0));
  return load_weights_impl(ctx, path, NULL);
}

shardrt_status shardrt_load_weights_mapped(shardrt_ctx *ctx, const char *path, const shardrt_weight_map *map) {
  if (map && !map->to_file)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_load_weights_mapped: map->to_file is NULL");
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_load_weights_mapped: ctx is NULL");
  if (!path || !*path) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_load_weights_mapped: path is NULL or empty");
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_LOAD, NULL, 0, 0, 0));
  return load_weights_impl(ctx, path, map);
}

/* ---- checkpoints ---- */

typedef struct dest {
  int unit;        /* new unit */
  int64_t begin;   /* new unit coordinate of the need's first element */
} dest;

typedef struct sink_ctx {
  shardrt_ctx *ctx;
  shardrt__role role;
  const dest *dests;
  float *buf;
} sink_ctx;

static shardrt_status sink_state(const shardrt__ck_need *need, int64_t off, const void *data, shardrt_dtype dt, size_t n,
                                 void *arg) {
  sink_ctx *c = arg;
  const dest *d = &c->dests[need->tag];
  size_t es = shardrt_dtype_size(dt);
  for (size_t at = 0; at < n; at += CONV_ELEMS) {
    size_t k = n - at < CONV_ELEMS ? n - at : CONV_ELEMS;
    shardrt_convert(c->buf, SHARDRT_F32, (const char *)data + at * es, dt, k);
    SHARDRT__CHECK(shardrt__state_write(c->ctx, d->unit, c->role, d->begin + off + (int64_t)at, (int64_t)k, c->buf));
  }
  return SHARDRT_OK;
}

static int by_unit_begin(const void *a, const void *b) {
  const int64_t *x = a, *y = b; /* {old unit, begin, end, tag} */
  if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
  return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Reads role r for this rank's owned ranges, mapping each parameter from its
 * place in the old layout to its place in ours. */
static shardrt_status load_role(shardrt_ctx *ctx, shardrt__ck_src *s, const int *old_of, shardrt__role r) {
  int np = shardrt_num_params(ctx);
  int64_t (*rows)[4] = malloc(((size_t)np + 1) * sizeof *rows);
  dest *dests = malloc(((size_t)np + 1) * sizeof *dests);
  shardrt__ck_need *needs = malloc(((size_t)np + 1) * sizeof *needs);
  float *buf = malloc(CONV_ELEMS * sizeof(float));
  shardrt_status rc = SHARDRT_OK;
  if (!rows || !dests || !needs || !buf) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "loading checkpoint '%s'", s->dir);
    goto out;
  }
  int n = 0;
  for (int i = 0; i < np; i++) {
    shardrt_param_info pi;
    shardrt_param_info_get(ctx, i, &pi);
    int64_t b, e;
    shardrt__state_range(ctx, pi.unit, &b, &e);
    int64_t lo = b > pi.offset ? b : pi.offset, hi = e < pi.offset + pi.numel ? e : pi.offset + pi.numel;
    if (hi <= lo) continue;
    const shardrt__ck_param *op = &s->meta.params[old_of[i]];
    dests[n] = (dest){.unit = pi.unit, .begin = lo};
    rows[n][0] = op->unit;
    rows[n][1] = op->offset + (lo - pi.offset);
    rows[n][2] = op->offset + (hi - pi.offset);
    rows[n][3] = n;
    n++;
  }
  qsort(rows, (size_t)n, sizeof *rows, by_unit_begin);
  sink_ctx sc = {.ctx = ctx, .role = r, .dests = dests, .buf = buf};
  for (int a = 0; a < n && rc == SHARDRT_OK;) {
    int z = a, ou = (int)rows[a][0];
    int k = 0;
    for (; z < n && rows[z][0] == ou; z++, k++)
      needs[k] = (shardrt__ck_need){.begin = rows[z][1], .end = rows[z][2], .tag = rows[z][3]};
    rc = shardrt__src_stream_unit(s, ou, r, needs, k, sink_state, &sc);
    a = z;
  }
out:
  free(rows);
  free(dests);
  free(needs);
  free(buf);
  return rc;
}

/* Every parameter of the model in the checkpoint with its shape, nothing else. */
static shardrt_status match_params(shardrt_ctx *ctx, const shardrt__ck_src *s, int *old_of) {
  int np = shardrt_num_params(ctx);
  char a[200], b[200];
  for (int i = 0; i < np; i++) {
    shardrt_param_info pi;
    SHARDRT__CHECK(shardrt_param_info_get(ctx, i, &pi));
    int k = shardrt__src_find_param(s, pi.name);
    if (k < 0) return shardrt__error(SHARDRT_ERR_NOT_FOUND, "checkpoint '%s' has no parameter '%s'", s->dir, pi.name);
    const shardrt__ck_param *op = &s->meta.params[k];
    bool same = op->ndim == pi.ndim;
    for (int d = 0; same && d < pi.ndim; d++) same = op->shape[d] == pi.shape[d];
    if (!same) {
      shardrt__ck_shape_str(op->ndim, op->shape, a, sizeof a);
      shardrt__ck_shape_str(pi.ndim, pi.shape, b, sizeof b);
      return shardrt__error(SHARDRT_ERR_MISMATCH, "checkpoint '%s': parameter '%s' has shape %s, the model registers %s", s->dir,
                            pi.name, a, b);
    }
    old_of[i] = k;
  }
  if (s->meta.nparams != np)
    for (int k = 0; k < s->meta.nparams; k++) {
      int id;
      if (shardrt_find_param(ctx, s->meta.params[k].name, &id) != SHARDRT_OK)
        return shardrt__error(SHARDRT_ERR_MISMATCH, "checkpoint '%s' has parameter '%s', which the model does not register", s->dir,
                              s->meta.params[k].name);
    }
  for (int r = SHARDRT__ROLE_EXP_AVG; r < SHARDRT__ROLE_COUNT_; r++) {
    bool want = shardrt__state_has(ctx, (shardrt__role)r), have = s->meta.in_shards[r];
    if (want != have)
      return shardrt__error(SHARDRT_ERR_MISMATCH, "checkpoint '%s' %s optimizer state '%s' but the model's optimizer %s (saved with another optimizer?)",
                            s->dir, have ? "has" : "lacks", shardrt__role_name((shardrt__role)r), want ? "needs it" : "has none");
  }
  return SHARDRT_OK;
}

static shardrt_status resolve_dir(shardrt_ctx *ctx, const char *path, int64_t below, char *dir, size_t len) {
  shardrt_status rc = SHARDRT_OK;
  memset(dir, 0, len);
  if (shardrt_rank(ctx) == 0) {
    char meta[4200];
    struct stat st;
    snprintf(meta, sizeof meta, "%s/%s", path, SHARDRT__CK_META_FILE);
    if (stat(meta, &st) == 0) snprintf(dir, len, "%s", path);
    else rc = shardrt__latest_checkpoint_below(path, below, dir, len);
    if (rc == SHARDRT_ERR_NOT_FOUND)
      rc = shardrt__error(rc, "'%s' is neither a complete checkpoint (no %s) nor a directory holding complete step_<N> checkpoints%s",
                          path, SHARDRT__CK_META_FILE, below < INT64_MAX ? " older than the damaged one" : "");
  }
  SHARDRT__CHECK(shardrt__ck_agree(ctx, rc));
  return shardrt__ck_bcast_str(ctx, dir, len);
}

static shardrt_status load_dir(shardrt_ctx *ctx, const char *dir, void *user_buf, size_t cap, size_t *user_len) {
  shardrt__ck_src s;
  int np = shardrt_num_params(ctx);
  int *old_of = malloc(((size_t)np + 1) * sizeof *old_of);
  shardrt_status rc = old_of ? shardrt__src_open(&s, dir) : shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "loading '%s'", dir);
  bool opened = rc == SHARDRT_OK;
  if (rc == SHARDRT_OK) rc = match_params(ctx, &s, old_of);
  for (int r = 0; r < SHARDRT__ROLE_COUNT_ && rc == SHARDRT_OK; r++)
    if (s.meta.in_shards[r] && (r == SHARDRT__ROLE_PARAM || shardrt__state_has(ctx, (shardrt__role)r)))
      rc = load_role(ctx, &s, old_of, (shardrt__role)r);
  bool params_from_model = opened && !s.meta.in_shards[SHARDRT__ROLE_PARAM];
  char model[4200] = {0};
  shardrt__train_state ts = {0};
  if (rc == SHARDRT_OK) {
    ts = s.meta.ts;
    if (user_buf && cap) memcpy(user_buf, s.meta.user, s.meta.user_len < cap ? s.meta.user_len : cap);
    if (user_len) *user_len = s.meta.user_len;
    if (params_from_model) snprintf(model, sizeof model, "%s/%s", dir, s.meta.model_file);
  }
  if (opened) shardrt__src_close(&s);
  free(old_of);
  rc = shardrt__ck_agree(ctx, rc);
  if (rc != SHARDRT_OK) return shardrt__error_wrap(rc, "loading checkpoint '%s'", dir);
  rc = params_from_model ? load_weights_impl(ctx, model, NULL) : shardrt__state_refresh(ctx);
  if (rc != SHARDRT_OK) return shardrt__error_wrap(rc, "loading checkpoint '%s'", dir);
  /* Last, once everything loaded: a failed load leaves the step count alone. */
  shardrt__train_state_set(ctx, &ts);
  return SHARDRT_OK;
}

static int64_t step_of(const char *dir) {
  const char *b = strrchr(dir, '/');
  b = b ? b + 1 : dir;
  return strncmp(b, "step_", 5) == 0 ? strtoll(b + 5, NULL, 10) : -1;
}

shardrt_status shardrt_load_checkpoint(shardrt_ctx *ctx, const char *path, void *user_buf, size_t cap, size_t *user_len) {
  if (!ctx) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_load_checkpoint: ctx is NULL");
  if (!path || !*path || strlen(path) > 3900)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_load_checkpoint: path is NULL, empty or longer than 3900 bytes");
  SHARDRT__CHECK(shardrt__sync_check(ctx, SHARDRT__SYNC_LOAD, NULL, 0, 0, 0));
  char dir[4096];
  int64_t below = INT64_MAX;
  for (;;) {
    SHARDRT__CHECK(resolve_dir(ctx, path, below, dir, sizeof dir));
    shardrt_status rc = load_dir(ctx, dir, user_buf, cap, user_len);
    /* A save root: damage found only while reading the data (a tensor's
     * checksum) falls back to the next older checkpoint too. Every rank has
     * the same rc and dir here. */
    bool from_root = strcmp(dir, path) != 0;
    int64_t step = step_of(dir);
    if (rc != SHARDRT_ERR_CORRUPT || !from_root || step < 0 || !shardrt__ckpt_fallback_on()) return rc;
    if (shardrt_rank(ctx) == 0)
      shardrt__warn("checkpoint '%s' is damaged: %s; falling back to an older one (SHARDRT_CKPT_FALLBACK=0 makes this an error)",
                    dir, shardrt_last_error());
    below = step;
  }
}
