/* SPDX-License-Identifier: Apache-2.0 */
/* meta.json writer and reader. The checksum key comes first so its digits
 * sit at a fixed place: the CRC32C covers the whole file with those eight
 * digits read as '0'. */
#define _GNU_SOURCE /* qsort_r */
#include "src/ckpt/meta.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "src/ckpt/crc32c.h"
#include "src/ckpt/durable.h"
#include "src/ckpt/json.h"
#include "src/core/error.h"

#define CRC_PREFIX "{\"crc32c\":\""
#define FORMAT_NAME "shardrt-checkpoint"

static const char *role_names[SHARDRT__ROLE_COUNT_] = {"param", "exp_avg", "exp_avg_sq"};

const char *shardrt__role_name(shardrt__role r) { return (unsigned)r < SHARDRT__ROLE_COUNT_ ? role_names[r] : "?"; }

void shardrt__ck_piece_tensor(int unit, shardrt__role r, char *buf, size_t len) {
  snprintf(buf, len, "unit.%d.%s", unit, shardrt__role_name(r));
}

void shardrt__ck_rank_file(int r, char *buf, size_t len) { snprintf(buf, len, "rank_%05d.safetensors", r); }

char *shardrt__ck_pieces_str(const shardrt__ck_meta *m, int file) {
  shardrt__sbuf b = {0};
  shardrt__sb_put(&b, "", 0);
  for (int u = 0; u < m->nunits; u++)
    for (int k = 0; k < m->units[u].npieces; k++)
      if (m->units[u].pieces[k].file == file)
        shardrt__sb_printf(&b, "%s%d:%lld:%lld", b.len ? "," : "", u, (long long)m->units[u].pieces[k].begin,
                           (long long)m->units[u].pieces[k].end);
  if (b.oom || !b.p) {
    shardrt__sb_free(&b);
    return NULL;
  }
  return b.p;
}

static void path_join(char *out, size_t len, const char *dir, const char *name) {
  snprintf(out, len, "%s/%s", dir, name);
}

shardrt_status shardrt__meta_write(const shardrt__ck_meta *m, const char *dir) {
  if (strlen(m->ckpt_id) != 16)
    return shardrt__error(SHARDRT_ERR_INTERNAL, "checkpoint '%s': no checkpoint id to record", dir);
  if (!isfinite(m->ts.loss_scale) || !(m->ts.loss_scale > 0))
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "checkpoint '%s': loss scale %g is not a finite number > 0", dir,
                          m->ts.loss_scale);
  shardrt__sbuf b = {0};
  shardrt__sb_printf(&b, CRC_PREFIX "00000000\",\n\"format\":\"" FORMAT_NAME "\",\"version\":%d,\n", SHARDRT__CK_VERSION);
  shardrt__sb_printf(&b, "\"checkpoint_id\":\"%s\",\n", m->ckpt_id);
  shardrt__sb_printf(&b, "\"world_size\":%d,\"strategy\":", m->world_size);
  shardrt__sb_json_str(&b, m->strategy);
  shardrt__sb_printf(&b, ",\n\"plan\":%s,\n", m->plan_json && *m->plan_json ? m->plan_json : "{}");
  shardrt__sb_printf(&b, "\"train_state\":{\"step\":%lld,\"loss_scale\":%.17g,\"good_steps\":%lld,\"hysteresis_left\":%lld},\n",
                     (long long)m->ts.step, m->ts.loss_scale, (long long)m->ts.good_steps, (long long)m->ts.hysteresis_left);
  shardrt__sb_printf(&b, "\"roles\":{");
  bool first = true;
  for (int r = 0; r < SHARDRT__ROLE_COUNT_; r++) {
    bool present = m->in_shards[r] || (r == SHARDRT__ROLE_PARAM && m->model_file[0]);
    if (!present) continue;
    shardrt__sb_printf(&b, "%s\"%s\":{\"dtype\":\"%s\",\"in_shards\":%s}", first ? "" : ",", role_names[r],
                       shardrt_dtype_name(m->role_dtype[r]), m->in_shards[r] ? "true" : "false");
    first = false;
  }
  shardrt__sb_printf(&b, "},\n\"model_file\":");
  shardrt__sb_json_str(&b, m->model_file);
  shardrt__sb_printf(&b, ",\"model_dtype\":\"%s\",\"model_bytes\":%llu,\"model_header_crc32c\":\"%08x\",\n\"files\":[",
                     shardrt_dtype_name(m->model_dtype), (unsigned long long)m->model_bytes, m->model_header_crc);
  for (int i = 0; i < m->nfiles; i++)
    shardrt__sb_printf(&b, "%s{\"name\":\"%s\",\"bytes\":%llu,\"header_crc32c\":\"%08x\"}", i ? "," : "",
                       m->files[i].name, (unsigned long long)m->files[i].bytes, m->files[i].header_crc);
  shardrt__sb_printf(&b, "],\n\"units\":[");
  for (int u = 0; u < m->nunits; u++) {
    const shardrt__ck_unit *un = &m->units[u];
    shardrt__sb_printf(&b, "%s\n{\"name\":", u ? "," : "");
    shardrt__sb_json_str(&b, un->name);
    shardrt__sb_printf(&b, ",\"numel\":%lld,\"pieces\":[", (long long)un->numel);
    for (int k = 0; k < un->npieces; k++)
      shardrt__sb_printf(&b, "%s[%d,%lld,%lld]", k ? "," : "", un->pieces[k].file, (long long)un->pieces[k].begin,
                         (long long)un->pieces[k].end);
    shardrt__sb_printf(&b, "]}");
  }
  shardrt__sb_printf(&b, "],\n\"params\":[");
  for (int i = 0; i < m->nparams; i++) {
    const shardrt__ck_param *p = &m->params[i];
    shardrt__sb_printf(&b, "%s\n{\"name\":", i ? "," : "");
    shardrt__sb_json_str(&b, p->name);
    shardrt__sb_printf(&b, ",\"unit\":%d,\"offset\":%lld,\"shape\":[", p->unit, (long long)p->offset);
    for (int d = 0; d < p->ndim; d++) shardrt__sb_printf(&b, d ? ",%lld" : "%lld", (long long)p->shape[d]);
    shardrt__sb_printf(&b, "]}");
  }
  shardrt__sb_printf(&b, "],\n\"user_blob\":\"");
  for (size_t i = 0; i < m->user_len; i++) shardrt__sb_printf(&b, "%02x", m->user[i]);
  shardrt__sb_printf(&b, "\"}\n");
  if (b.oom) {
    shardrt__sb_free(&b);
    return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "building %s/%s", dir, SHARDRT__CK_META_FILE);
  }
  char hex[9];
  snprintf(hex, sizeof hex, "%08x", shardrt__crc32c(0, b.p, b.len));
  memcpy(b.p + strlen(CRC_PREFIX), hex, 8);
  char path[4200];
  path_join(path, sizeof path, dir, SHARDRT__CK_META_FILE);
  shardrt__crash_point("before writing meta.json");
  shardrt_status rc = shardrt__write_file_durable(path, b.p, b.len);
  shardrt__sb_free(&b);
  return rc;
}

void shardrt__meta_free(shardrt__ck_meta *m) {
  if (!m) return;
  for (int u = 0; u < m->nunits && m->units; u++) {
    free(m->units[u].name);
    free(m->units[u].pieces);
  }
  free(m->units);
  for (int i = 0; i < m->nparams && m->params; i++) free(m->params[i].name);
  free(m->params);
  free(m->files);
  free(m->user);
  memset(m, 0, sizeof *m);
}

#define BAD(...) (rc = shardrt__error(SHARDRT_ERR_CORRUPT, __VA_ARGS__))

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Sorting helpers for the uniqueness and overlap checks. */
static int by_param_name(const void *a, const void *b, void *arg) {
  const shardrt__ck_meta *m = arg;
  return strcmp(m->params[*(const int *)a].name, m->params[*(const int *)b].name);
}
static int by_param_place(const void *a, const void *b, void *arg) {
  const shardrt__ck_meta *m = arg;
  const shardrt__ck_param *x = &m->params[*(const int *)a], *y = &m->params[*(const int *)b];
  if (x->unit != y->unit) return x->unit < y->unit ? -1 : 1;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Parameter names are unique and parameters of a unit do not overlap: a
 * reader maps each one by name, and merge writes one tensor per name. */
static shardrt_status check_params_distinct(const char *path, shardrt__ck_meta *m) {
  shardrt_status rc = SHARDRT_OK;
  int *ix = malloc(((size_t)m->nparams + 1) * sizeof *ix);
  if (!ix) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
  for (int i = 0; i < m->nparams; i++) ix[i] = i;
  qsort_r(ix, (size_t)m->nparams, sizeof *ix, by_param_name, m);
  for (int i = 1; i < m->nparams && rc == SHARDRT_OK; i++)
    if (strcmp(m->params[ix[i - 1]].name, m->params[ix[i]].name) == 0)
      BAD("'%s': parameter '%s' is listed twice (params[%d] and params[%d]); names must be unique", path,
          m->params[ix[i]].name, ix[i - 1] < ix[i] ? ix[i - 1] : ix[i], ix[i - 1] < ix[i] ? ix[i] : ix[i - 1]);
  if (rc == SHARDRT_OK) {
    qsort_r(ix, (size_t)m->nparams, sizeof *ix, by_param_place, m);
    for (int i = 1; i < m->nparams && rc == SHARDRT_OK; i++) {
      const shardrt__ck_param *x = &m->params[ix[i - 1]], *y = &m->params[ix[i]];
      if (x->unit == y->unit && x->offset + x->numel > y->offset)
        BAD("'%s': parameters '%s' and '%s' overlap in unit %d ([%lld, %lld) and [%lld, %lld))", path, x->name, y->name,
            x->unit, (long long)x->offset, (long long)(x->offset + x->numel), (long long)y->offset,
            (long long)(y->offset + y->numel));
    }
  }
  free(ix);
  return rc;
}

static bool parse_hex(const char *s, size_t digits, uint64_t *out) {
  if (!s || strlen(s) != digits) return false;
  uint64_t v = 0;
  for (size_t i = 0; i < digits; i++) {
    int h = hexval(s[i]);
    if (h < 0) return false;
    v = v << 4 | (uint64_t)h;
  }
  *out = v;
  return true;
}

#define NONNEG_MAX ((int64_t)1 << 62) /* sizes and counts: far below any overflow in sums of two */

static shardrt_status parse(const json_t *root, const char *path, shardrt__ck_meta *m) {
  shardrt_status rc = SHARDRT_OK;
  const char *fmt = shardrt__j_str(shardrt__j_get(root, "format"));
  int64_t ver = 0, ws = 0;
  if (!fmt || strcmp(fmt, FORMAT_NAME) != 0) return BAD("'%s' is not a libshardrt checkpoint (format is not \"" FORMAT_NAME "\")", path);
  if (!shardrt__j_i64(shardrt__j_get(root, "version"), &ver) || ver != SHARDRT__CK_VERSION)
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED, "'%s': checkpoint version %lld; this libshardrt reads version %d", path,
                          (long long)ver, SHARDRT__CK_VERSION);
  uint64_t id;
  const char *ids = shardrt__j_str(shardrt__j_get(root, "checkpoint_id"));
  if (!parse_hex(ids, 16, &id)) return BAD("'%s': checkpoint_id must be a string of 16 hex digits", path);
  snprintf(m->ckpt_id, sizeof m->ckpt_id, "%s", ids);
  if (!shardrt__j_i64(shardrt__j_get(root, "world_size"), &ws) || ws < 1 || ws > 1 << 20)
    return BAD("'%s': world_size must be an integer in [1, 2^20]", path);
  m->world_size = (int)ws;
  const char *strat = shardrt__j_str(shardrt__j_get(root, "strategy"));
  if (!strat || strlen(strat) >= sizeof m->strategy) return BAD("'%s': strategy must be a string of under 32 bytes", path);
  snprintf(m->strategy, sizeof m->strategy, "%s", strat);
  if (!json_is_object(shardrt__j_get(root, "plan"))) return BAD("'%s': plan must be an object", path);
  const json_t *ts = shardrt__j_get(root, "train_state");
  if (!shardrt__j_i64(shardrt__j_get(ts, "step"), &m->ts.step) ||
      !shardrt__j_f64(shardrt__j_get(ts, "loss_scale"), &m->ts.loss_scale) ||
      !shardrt__j_i64(shardrt__j_get(ts, "good_steps"), &m->ts.good_steps) ||
      !shardrt__j_i64(shardrt__j_get(ts, "hysteresis_left"), &m->ts.hysteresis_left))
    return BAD("'%s': train_state needs the integers step, good_steps, hysteresis_left and the number loss_scale", path);
  if (m->ts.step < 0 || m->ts.good_steps < 0 || m->ts.hysteresis_left < 0)
    return BAD("'%s': train_state step %lld, good_steps %lld and hysteresis_left %lld must be >= 0", path,
               (long long)m->ts.step, (long long)m->ts.good_steps, (long long)m->ts.hysteresis_left);
  /* JSON has no nan/inf, but 1e999 parses as inf in some readers and a
   * scale of 0 or below makes every weight nan after one step. */
  if (!isfinite(m->ts.loss_scale) || !(m->ts.loss_scale > 0))
    return BAD("'%s': train_state.loss_scale is %g; it must be a finite number > 0", path, m->ts.loss_scale);
  const json_t *roles = shardrt__j_get(root, "roles");
  if (!json_is_object(roles)) return BAD("'%s': roles must be an object", path);
  for (int r = 0; r < SHARDRT__ROLE_COUNT_; r++) {
    const json_t *rn = shardrt__j_get(roles, role_names[r]);
    if (!rn) continue;
    const char *dt = shardrt__j_str(shardrt__j_get(rn, "dtype"));
    if (!dt || !shardrt_dtype_parse(dt, &m->role_dtype[r]) || !shardrt__j_bool(shardrt__j_get(rn, "in_shards"), &m->in_shards[r]))
      return BAD("'%s': role %s needs dtype (fp32, bf16 or fp16) and in_shards (true or false)", path, role_names[r]);
  }
  const char *mf = shardrt__j_str(shardrt__j_get(root, "model_file"));
  const char *mdt = shardrt__j_str(shardrt__j_get(root, "model_dtype"));
  if (!mf || (mf[0] && strcmp(mf, SHARDRT__CK_MODEL_FILE) != 0) || !mdt || !shardrt_dtype_parse(mdt, &m->model_dtype))
    return BAD("'%s': model_file must be \"\" or \"" SHARDRT__CK_MODEL_FILE "\" and model_dtype fp32, bf16 or fp16", path);
  snprintf(m->model_file, sizeof m->model_file, "%s", mf);
  int64_t mb;
  if (!shardrt__j_i64(shardrt__j_get(root, "model_bytes"), &mb) || mb < 0 || mb > NONNEG_MAX)
    return BAD("'%s': model_bytes must be an integer >= 0", path);
  m->model_bytes = (uint64_t)mb;
  uint64_t mcrc = 0;
  const char *mcs = shardrt__j_str(shardrt__j_get(root, "model_header_crc32c"));
  if (m->model_file[0] && !parse_hex(mcs, 8, &mcrc))
    return BAD("'%s': model_header_crc32c must be 8 hex digits when there is a model file", path);
  m->model_header_crc = (uint32_t)mcrc;
  if (!m->in_shards[SHARDRT__ROLE_PARAM] && !m->model_file[0]) return BAD("'%s': the parameters are stored nowhere", path);

  const json_t *files = shardrt__j_get(root, "files");
  m->nfiles = (int)shardrt__j_len(files);
  if (m->nfiles != m->world_size)
    return BAD("'%s': files lists %d rank files for world_size %d (one per rank)", path, m->nfiles, m->world_size);
  m->files = calloc((size_t)m->nfiles + 1, sizeof *m->files);
  if (!m->files) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
  for (int i = 0; i < m->nfiles; i++) {
    const json_t *f = json_array_get(files, (size_t)i);
    const char *name = shardrt__j_str(shardrt__j_get(f, "name"));
    int64_t bytes;
    uint64_t crc;
    char want[64];
    shardrt__ck_rank_file(i, want, sizeof want);
    if (!name || strcmp(name, want) != 0 || !shardrt__j_i64(shardrt__j_get(f, "bytes"), &bytes) || bytes < 0 ||
        bytes > NONNEG_MAX || !parse_hex(shardrt__j_str(shardrt__j_get(f, "header_crc32c")), 8, &crc))
      return BAD("'%s': files[%d] must be {\"name\": \"%s\", \"bytes\": integer >= 0, \"header_crc32c\": 8 hex digits}",
                 path, i, want);
    snprintf(m->files[i].name, sizeof m->files[i].name, "%s", name);
    m->files[i].bytes = (uint64_t)bytes;
    m->files[i].header_crc = (uint32_t)crc;
  }

  const json_t *units = shardrt__j_get(root, "units");
  m->nunits = (int)shardrt__j_len(units);
  m->units = calloc((size_t)m->nunits + 1, sizeof *m->units);
  if (!m->units) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
  for (int u = 0; u < m->nunits; u++) {
    shardrt__ck_unit *un = &m->units[u];
    const json_t *n = json_array_get(units, (size_t)u);
    const char *name = shardrt__j_str(shardrt__j_get(n, "name"));
    const json_t *pcs = shardrt__j_get(n, "pieces");
    if (!name || !shardrt__j_i64(shardrt__j_get(n, "numel"), &un->numel) || un->numel < 0 || un->numel > NONNEG_MAX ||
        !json_is_array(pcs))
      return BAD("'%s': units[%d] needs name (a string), numel (an integer >= 0) and pieces (an array)", path, u);
    un->name = strdup(name);
    un->npieces = (int)shardrt__j_len(pcs);
    un->pieces = calloc((size_t)un->npieces + 1, sizeof *un->pieces);
    if (!un->name || !un->pieces) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
    int64_t at = 0;
    for (int k = 0; k < un->npieces; k++) {
      const json_t *pc = json_array_get(pcs, (size_t)k);
      int64_t f, b, e;
      if (shardrt__j_len(pc) != 3 || !shardrt__j_i64(json_array_get(pc, 0), &f) ||
          !shardrt__j_i64(json_array_get(pc, 1), &b) || !shardrt__j_i64(json_array_get(pc, 2), &e) || f < 0 ||
          f >= m->nfiles || b != at || e <= b || e > un->numel)
        return BAD("'%s': unit '%s' piece %d is not [file (0..%d), begin, end] continuing at %lld inside %lld elements",
                   path, name, k, m->nfiles - 1, (long long)at, (long long)un->numel);
      un->pieces[k] = (shardrt__ck_piece){.file = (int)f, .begin = b, .end = e};
      at = e;
    }
    if (at != un->numel) return BAD("'%s': the pieces of unit '%s' cover %lld of %lld elements", path, name, (long long)at, (long long)un->numel);
  }

  const json_t *params = shardrt__j_get(root, "params");
  m->nparams = (int)shardrt__j_len(params);
  m->params = calloc((size_t)m->nparams + 1, sizeof *m->params);
  if (!m->params) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
  for (int i = 0; i < m->nparams; i++) {
    shardrt__ck_param *p = &m->params[i];
    const json_t *n = json_array_get(params, (size_t)i);
    const char *name = shardrt__j_str(shardrt__j_get(n, "name"));
    const json_t *shape = shardrt__j_get(n, "shape");
    int64_t unit;
    if (!name || !shardrt__j_i64(shardrt__j_get(n, "unit"), &unit) || unit < 0 || unit >= m->nunits ||
        !shardrt__j_i64(shardrt__j_get(n, "offset"), &p->offset) || p->offset < 0 || !json_is_array(shape) ||
        json_array_size(shape) > 8)
      return BAD("'%s': params[%d] needs name, unit (0..%d), offset (>= 0) and shape (at most 8 integers)", path, i,
                 m->nunits - 1);
    p->name = strdup(name);
    if (!p->name) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
    p->unit = (int)unit;
    p->ndim = (int)json_array_size(shape);
    p->numel = 1;
    for (int k = 0; k < p->ndim; k++) {
      if (!shardrt__j_i64(json_array_get(shape, (size_t)k), &p->shape[k]) || p->shape[k] < 0)
        return BAD("'%s': parameter '%s': shape entry %d is not an integer >= 0", path, name, k);
      /* Overflow-checked: a product that wraps could pass the unit bound. */
      if (__builtin_mul_overflow(p->numel, p->shape[k], &p->numel) || p->numel > NONNEG_MAX)
        return BAD("'%s': parameter '%s': the product of its shape overflows", path, name);
    }
    int64_t end;
    if (__builtin_add_overflow(p->offset, p->numel, &end) || end > m->units[p->unit].numel)
      return BAD("'%s': parameter '%s' (offset %lld, %lld elements) ends past its unit '%s' (%lld elements)", path, name,
                 (long long)p->offset, (long long)p->numel, m->units[p->unit].name, (long long)m->units[p->unit].numel);
  }
  SHARDRT__CHECK(check_params_distinct(path, m));

  const char *hex = shardrt__j_str(shardrt__j_get(root, "user_blob"));
  size_t hl = hex ? strlen(hex) : 0;
  if (!hex || hl % 2) return BAD("'%s': user_blob is not a hex string", path);
  m->user_len = hl / 2;
  m->user = malloc(m->user_len + 1);
  if (!m->user) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
  for (size_t i = 0; i < m->user_len; i++) {
    int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return BAD("'%s': user_blob is not a hex string", path);
    m->user[i] = (unsigned char)(hi * 16 + lo);
  }
  return rc;
}

shardrt_status shardrt__meta_read(const char *dir, shardrt__ck_meta *m) {
  memset(m, 0, sizeof *m);
  char path[4200];
  path_join(path, sizeof path, dir, SHARDRT__CK_META_FILE);
  char *text;
  size_t len;
  shardrt_status rc = shardrt__read_file(path, &text, &len);
  if (rc == SHARDRT_ERR_NOT_FOUND)
    return shardrt__error(rc, "'%s' has no %s: not a checkpoint, or an incomplete one (the save did not finish)", dir,
                          SHARDRT__CK_META_FILE);
  if (rc != SHARDRT_OK) return rc;
  size_t pl = strlen(CRC_PREFIX);
  uint32_t want = 0, got;
  char digits[9] = {0};
  if (len < pl + 8 || memcmp(text, CRC_PREFIX, pl) != 0) {
    free(text);
    return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s' does not start with its checksum: damaged or not a libshardrt checkpoint", path);
  }
  memcpy(digits, text + pl, 8);
  char *end;
  want = (uint32_t)strtoul(digits, &end, 16);
  memcpy(text + pl, "00000000", 8);
  got = shardrt__crc32c(0, text, len);
  if (*end || got != want) {
    free(text);
    return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': checksum mismatch (stored %s, computed %08x): the file is damaged", path,
                          digits, got);
  }
  json_t *root;
  rc = shardrt__json_parse(text, len, path, &root);
  free(text);
  if (rc != SHARDRT_OK) return rc;
  rc = parse(root, path, m);
  json_decref(root);
  if (rc != SHARDRT_OK) shardrt__meta_free(m);
  return rc;
}

shardrt_status shardrt__meta_check_complete(const char *dir, shardrt__ck_meta *m) {
  SHARDRT__CHECK(shardrt__meta_read(dir, m));
  char path[4200];
  for (int i = 0; i <= m->nfiles; i++) {
    const char *name = i < m->nfiles ? m->files[i].name : m->model_file;
    if (!name[0]) continue;
    path_join(path, sizeof path, dir, name);
    struct stat st;
    if (stat(path, &st) != 0) {
      shardrt_status rc = shardrt__error(SHARDRT_ERR_CORRUPT, "checkpoint '%s' lists '%s', which is missing: %s", dir, name, strerror(errno));
      shardrt__meta_free(m);
      return rc;
    }
    uint64_t want = i < m->nfiles ? m->files[i].bytes : m->model_bytes;
    if ((uint64_t)st.st_size != want) {
      shardrt_status rc = shardrt__error(SHARDRT_ERR_CORRUPT, "checkpoint file '%s' has %lld bytes, meta.json recorded %llu (truncated or replaced)",
                                         path, (long long)st.st_size, (unsigned long long)want);
      shardrt__meta_free(m);
      return rc;
    }
  }
  return SHARDRT_OK;
}
