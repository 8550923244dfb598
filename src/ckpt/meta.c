/* SPDX-License-Identifier: Apache-2.0 */
/* meta.json writer and reader. The checksum key comes first so its digits
 * sit at a fixed place: the CRC32C covers the whole file with those eight
 * digits read as '0'. */
#include "src/ckpt/meta.h"

#include <errno.h>
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

static void path_join(char *out, size_t len, const char *dir, const char *name) {
  snprintf(out, len, "%s/%s", dir, name);
}

shardrt_status shardrt__meta_write(const shardrt__ck_meta *m, const char *dir) {
  shardrt__sbuf b = {0};
  shardrt__sb_printf(&b, CRC_PREFIX "00000000\",\n\"format\":\"" FORMAT_NAME "\",\"version\":%d,\n", SHARDRT__CK_VERSION);
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
  shardrt__sb_printf(&b, ",\"model_dtype\":\"%s\",\"model_bytes\":%llu,\n\"files\":[", shardrt_dtype_name(m->model_dtype),
                     (unsigned long long)m->model_bytes);
  for (int i = 0; i < m->nfiles; i++)
    shardrt__sb_printf(&b, "%s{\"name\":\"%s\",\"bytes\":%llu}", i ? "," : "", m->files[i].name,
                       (unsigned long long)m->files[i].bytes);
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

static shardrt_status parse(shardrt__jdoc *d, const char *path, shardrt__ck_meta *m) {
  shardrt_status rc = SHARDRT_OK;
  yaml_node_t *root = shardrt__j_root(d);
  const char *fmt = shardrt__j_str(shardrt__j_get(d, root, "format"));
  int64_t ver = 0, ws = 0;
  if (!fmt || strcmp(fmt, FORMAT_NAME) != 0) return BAD("'%s' is not a libshardrt checkpoint (format is not \"" FORMAT_NAME "\")", path);
  if (!shardrt__j_i64(shardrt__j_get(d, root, "version"), &ver) || ver != SHARDRT__CK_VERSION)
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED, "'%s': checkpoint version %lld; this libshardrt reads version %d", path,
                          (long long)ver, SHARDRT__CK_VERSION);
  if (!shardrt__j_i64(shardrt__j_get(d, root, "world_size"), &ws) || ws < 1 || ws > 1 << 20) return BAD("'%s': bad world_size", path);
  m->world_size = (int)ws;
  const char *strat = shardrt__j_str(shardrt__j_get(d, root, "strategy"));
  snprintf(m->strategy, sizeof m->strategy, "%s", strat ? strat : "");
  yaml_node_t *ts = shardrt__j_get(d, root, "train_state");
  if (!shardrt__j_i64(shardrt__j_get(d, ts, "step"), &m->ts.step) ||
      !shardrt__j_f64(shardrt__j_get(d, ts, "loss_scale"), &m->ts.loss_scale) ||
      !shardrt__j_i64(shardrt__j_get(d, ts, "good_steps"), &m->ts.good_steps) ||
      !shardrt__j_i64(shardrt__j_get(d, ts, "hysteresis_left"), &m->ts.hysteresis_left))
    return BAD("'%s': train_state needs step, loss_scale, good_steps, hysteresis_left", path);
  yaml_node_t *roles = shardrt__j_get(d, root, "roles");
  for (int r = 0; r < SHARDRT__ROLE_COUNT_; r++) {
    yaml_node_t *rn = shardrt__j_get(d, roles, role_names[r]);
    if (!rn) continue;
    const char *dt = shardrt__j_str(shardrt__j_get(d, rn, "dtype"));
    const char *in = shardrt__j_str(shardrt__j_get(d, rn, "in_shards"));
    if (!dt || !shardrt_dtype_parse(dt, &m->role_dtype[r]) || !in) return BAD("'%s': role %s needs dtype and in_shards", path, role_names[r]);
    m->in_shards[r] = strcmp(in, "true") == 0;
  }
  const char *mf = shardrt__j_str(shardrt__j_get(d, root, "model_file"));
  const char *mdt = shardrt__j_str(shardrt__j_get(d, root, "model_dtype"));
  if (!mf || strlen(mf) >= sizeof m->model_file || strchr(mf, '/') || !mdt || !shardrt_dtype_parse(mdt, &m->model_dtype))
    return BAD("'%s': bad model_file / model_dtype", path);
  snprintf(m->model_file, sizeof m->model_file, "%s", mf);
  int64_t mb;
  if (!shardrt__j_i64(shardrt__j_get(d, root, "model_bytes"), &mb) || mb < 0) return BAD("'%s': bad model_bytes", path);
  m->model_bytes = (uint64_t)mb;
  if (!m->in_shards[SHARDRT__ROLE_PARAM] && !m->model_file[0]) return BAD("'%s': the parameters are stored nowhere", path);

  yaml_node_t *files = shardrt__j_get(d, root, "files");
  m->nfiles = (int)shardrt__j_len(files);
  m->files = calloc((size_t)m->nfiles + 1, sizeof *m->files);
  if (!m->files) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
  for (int i = 0; i < m->nfiles; i++) {
    yaml_node_t *f = shardrt__j_at(d, files, (size_t)i);
    const char *name = shardrt__j_str(shardrt__j_get(d, f, "name"));
    int64_t bytes;
    if (!name || strlen(name) >= sizeof m->files[i].name || strchr(name, '/') ||
        !shardrt__j_i64(shardrt__j_get(d, f, "bytes"), &bytes) || bytes < 0)
      return BAD("'%s': files[%d] needs a plain name and bytes", path, i);
    snprintf(m->files[i].name, sizeof m->files[i].name, "%s", name);
    m->files[i].bytes = (uint64_t)bytes;
  }

  yaml_node_t *units = shardrt__j_get(d, root, "units");
  m->nunits = (int)shardrt__j_len(units);
  m->units = calloc((size_t)m->nunits + 1, sizeof *m->units);
  if (!m->units) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
  for (int u = 0; u < m->nunits; u++) {
    shardrt__ck_unit *un = &m->units[u];
    yaml_node_t *n = shardrt__j_at(d, units, (size_t)u);
    const char *name = shardrt__j_str(shardrt__j_get(d, n, "name"));
    yaml_node_t *pcs = shardrt__j_get(d, n, "pieces");
    if (!name || !shardrt__j_i64(shardrt__j_get(d, n, "numel"), &un->numel) || un->numel < 0)
      return BAD("'%s': units[%d] needs name and numel", path, u);
    un->name = strdup(name);
    un->npieces = (int)shardrt__j_len(pcs);
    un->pieces = calloc((size_t)un->npieces + 1, sizeof *un->pieces);
    if (!un->name || !un->pieces) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
    int64_t at = 0;
    for (int k = 0; k < un->npieces; k++) {
      yaml_node_t *pc = shardrt__j_at(d, pcs, (size_t)k);
      int64_t f, b, e;
      if (shardrt__j_len(pc) != 3 || !shardrt__j_i64(shardrt__j_at(d, pc, 0), &f) ||
          !shardrt__j_i64(shardrt__j_at(d, pc, 1), &b) || !shardrt__j_i64(shardrt__j_at(d, pc, 2), &e) || f < 0 ||
          f >= m->nfiles || b != at || e <= b)
        return BAD("'%s': unit '%s' piece %d is not [file, begin, end] continuing at %lld", path, name, k, (long long)at);
      un->pieces[k] = (shardrt__ck_piece){.file = (int)f, .begin = b, .end = e};
      at = e;
    }
    if (at != un->numel) return BAD("'%s': the pieces of unit '%s' cover %lld of %lld elements", path, name, (long long)at, (long long)un->numel);
  }

  yaml_node_t *params = shardrt__j_get(d, root, "params");
  m->nparams = (int)shardrt__j_len(params);
  m->params = calloc((size_t)m->nparams + 1, sizeof *m->params);
  if (!m->params) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
  for (int i = 0; i < m->nparams; i++) {
    shardrt__ck_param *p = &m->params[i];
    yaml_node_t *n = shardrt__j_at(d, params, (size_t)i);
    const char *name = shardrt__j_str(shardrt__j_get(d, n, "name"));
    yaml_node_t *shape = shardrt__j_get(d, n, "shape");
    int64_t unit;
    if (!name || !shardrt__j_i64(shardrt__j_get(d, n, "unit"), &unit) || unit < 0 || unit >= m->nunits ||
        !shardrt__j_i64(shardrt__j_get(d, n, "offset"), &p->offset) || p->offset < 0 || shardrt__j_len(shape) > 8)
      return BAD("'%s': params[%d] needs name, unit, offset, shape", path, i);
    p->name = strdup(name);
    if (!p->name) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", path);
    p->unit = (int)unit;
    p->ndim = (int)shardrt__j_len(shape);
    p->numel = 1;
    for (int k = 0; k < p->ndim; k++) {
      if (!shardrt__j_i64(shardrt__j_at(d, shape, (size_t)k), &p->shape[k]) || p->shape[k] < 0)
        return BAD("'%s': parameter '%s' has a bad shape", path, name);
      p->numel *= p->shape[k];
    }
    if (p->offset + p->numel > m->units[p->unit].numel)
      return BAD("'%s': parameter '%s' ends past its unit '%s'", path, name, m->units[p->unit].name);
  }

  const char *hex = shardrt__j_str(shardrt__j_get(d, root, "user_blob"));
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
  shardrt__jdoc d;
  rc = shardrt__jdoc_parse(&d, text, len, path);
  free(text);
  if (rc != SHARDRT_OK) return rc;
  rc = parse(&d, path, m);
  shardrt__jdoc_free(&d);
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
