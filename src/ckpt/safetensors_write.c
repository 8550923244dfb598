/* SPDX-License-Identifier: Apache-2.0 */
/* Streaming safetensors writer. The header (and so every offset) is fixed
 * before the first data byte, so tensors are appended as they are produced
 * (a unit gathered on rank 0, a chunk of a shard) and the file never has to
 * be held in memory. Checksums are only known at the end; their digits are
 * reserved in the header as "00000000" and overwritten in place. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/ckpt/crc32c.h"
#include "src/ckpt/json.h"
#include "src/ckpt/safetensors.h"
#include "src/core/error.h"

#define HDR_CRC_KEY "shardrt.header_crc32c"

const char *shardrt__st_dtype_name(shardrt_dtype dt) {
  switch (dt) {
    case SHARDRT_F32: return "F32";
    case SHARDRT_BF16: return "BF16";
    case SHARDRT_F16: return "F16";
  }
  return "?";
}

static void release(shardrt__st_writer *w) {
  if (w->t)
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
  free(w->t);
  free(w->header);
  free(w->crc_pos);
  w->t = NULL;
  w->header = NULL;
  w->crc_pos = NULL;
  w->open = false;
}

void shardrt__stw_abort(shardrt__st_writer *w) {
  if (!w || !w->open) return;
  shardrt__wfile_abort(&w->f);
  release(w);
}

shardrt_status shardrt__stw_begin(shardrt__st_writer *w, const char *path, const shardrt__st_tensor *tensors,
                                  int n, const char *const *meta, int n_meta) {
  memset(w, 0, sizeof *w);
  w->f.fd = -1;
  if (n < 0 || n_meta < 0) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "safetensors writer: negative count");
  w->t = calloc((size_t)(n ? n : 1), sizeof *w->t);
  w->crc_pos = calloc((size_t)(n ? n : 1), sizeof *w->crc_pos);
  w->n = n;
  w->open = true;
  shardrt__sbuf b = {0};
  shardrt_status rc = SHARDRT_OK;
  if (!w->t || !w->crc_pos) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "safetensors writer for '%s': %d tensors", path, n);
    goto fail;
  }
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    const shardrt__st_tensor *s = &tensors[i];
    if (!s->name || !*s->name || s->ndim < 0 || s->ndim > SHARDRT__ST_MAX_DIMS) {
      rc = shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "safetensors tensor %d for '%s': empty name or ndim %d outside [0, %d]",
                          i, path, s->ndim, SHARDRT__ST_MAX_DIMS);
      goto fail;
    }
    w->t[i] = *s;
    w->t[i].name = strdup(s->name);
    if (!w->t[i].name) {
      rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "safetensors writer: tensor names");
      goto fail;
    }
    uint64_t numel = 1;
    for (int d = 0; d < s->ndim; d++) {
      if (s->shape[d] < 0) {
        rc = shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "tensor '%s': dimension %d is %lld (must be >= 0)", s->name, d,
                            (long long)s->shape[d]);
        goto fail;
      }
      numel *= (uint64_t)s->shape[d];
    }
    w->t[i].begin = off;
    off += numel * shardrt_dtype_size(s->dtype);
    w->t[i].end = off;
  }
  w->data_bytes = off;

  /* Header: the checksum key first so readers find its digits at a fixed place. */
  shardrt__sb_put(&b, "        ", 8); /* length, patched below */
  shardrt__sb_printf(&b, "{\"__metadata__\":{\"" HDR_CRC_KEY "\":\"");
  w->hdr_crc_pos = b.len;
  shardrt__sb_printf(&b, "00000000\"");
  for (int i = 0; i < n_meta; i++) {
    shardrt__sb_put(&b, ",", 1);
    shardrt__sb_json_str(&b, meta[2 * i]);
    shardrt__sb_put(&b, ":", 1);
    shardrt__sb_json_str(&b, meta[2 * i + 1]);
  }
  for (int i = 0; i < n; i++) {
    shardrt__sbuf key = {0};
    shardrt__sb_printf(&key, "crc32c:%s", w->t[i].name);
    shardrt__sb_put(&b, ",", 1);
    shardrt__sb_json_str(&b, key.oom ? "" : key.p);
    shardrt__sb_free(&key);
    shardrt__sb_put(&b, ":\"", 2);
    w->crc_pos[i] = b.len;
    shardrt__sb_put(&b, "00000000\"", 9);
  }
  shardrt__sb_put(&b, "}", 1);
  for (int i = 0; i < n; i++) {
    shardrt__sb_put(&b, ",", 1);
    shardrt__sb_json_str(&b, w->t[i].name);
    shardrt__sb_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", shardrt__st_dtype_name(w->t[i].dtype));
    for (int d = 0; d < w->t[i].ndim; d++) shardrt__sb_printf(&b, d ? ",%lld" : "%lld", (long long)w->t[i].shape[d]);
    shardrt__sb_printf(&b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)w->t[i].begin,
                       (unsigned long long)w->t[i].end);
  }
  shardrt__sb_put(&b, "}", 1);
  while (b.len % 8) shardrt__sb_put(&b, " ", 1);
  if (b.oom) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "safetensors header for '%s'", path);
    goto fail;
  }
  uint64_t hlen = b.len - 8;
  for (int k = 0; k < 8; k++) b.p[k] = (char)((hlen >> (8 * k)) & 0xff);
  w->header = b.p;
  w->header_len = b.len;
  b.p = NULL;
  w->data_start = w->header_len;
  SHARDRT__CHECK_GOTO(shardrt__wfile_open(&w->f, path), rc, fail);
  SHARDRT__CHECK_GOTO(shardrt__wfile_write(&w->f, w->header, w->header_len), rc, fail);
  w->cur = 0;
  w->cur_crc = 0;
  return SHARDRT_OK;
fail:
  shardrt__sb_free(&b);
  if (w->f.fd >= 0) shardrt__wfile_abort(&w->f);
  release(w);
  return rc;
}

shardrt_status shardrt__stw_write(shardrt__st_writer *w, const void *data, size_t bytes) {
  if (!w->open) return shardrt__error(SHARDRT_ERR_STATE, "safetensors writer used after finish/abort");
  if (w->written + bytes > w->data_bytes)
    return shardrt__error(SHARDRT_ERR_INTERNAL, "safetensors '%s': %llu bytes written past the declared %llu", w->f.path,
                          (unsigned long long)(w->written + bytes), (unsigned long long)w->data_bytes);
  /* Split the bytes over tensor boundaries to keep one checksum per tensor. */
  const unsigned char *p = data;
  size_t left = bytes;
  while (left > 0) {
    while (w->cur < w->n && w->written >= w->t[w->cur].end) {
      w->t[w->cur].crc = w->cur_crc;
      w->cur++;
      w->cur_crc = 0;
    }
    uint64_t room = w->t[w->cur].end - w->written;
    size_t take = left < room ? left : (size_t)room;
    w->cur_crc = shardrt__crc32c(w->cur_crc, p, take);
    p += take;
    left -= take;
    w->written += take;
  }
  SHARDRT__CHECK(shardrt__wfile_write(&w->f, data, bytes));
  /* The crash hook fires once, in the middle of the data: a half-written file. */
  if (!w->mid_done && w->written >= w->data_bytes / 2) {
    w->mid_done = true;
    shardrt__crash_point("middle of a tensor file");
  }
  return SHARDRT_OK;
}

static void put_hex(char *dst, uint32_t v) {
  char tmp[9];
  snprintf(tmp, sizeof tmp, "%08x", v);
  memcpy(dst, tmp, 8);
}

shardrt_status shardrt__stw_finish(shardrt__st_writer *w) {
  if (!w->open) return shardrt__error(SHARDRT_ERR_STATE, "safetensors writer finished twice");
  shardrt_status rc = SHARDRT_OK;
  if (w->written != w->data_bytes) {
    rc = shardrt__error(SHARDRT_ERR_INTERNAL, "safetensors '%s': %llu of %llu data bytes written", w->f.path,
                        (unsigned long long)w->written, (unsigned long long)w->data_bytes);
    shardrt__stw_abort(w);
    return rc;
  }
  for (; w->cur < w->n; w->cur++) { /* trailing tensors (and empty ones) */
    w->t[w->cur].crc = w->cur_crc;
    w->cur_crc = 0;
  }
  for (int i = 0; i < w->n; i++) put_hex(w->header + w->crc_pos[i], w->t[i].crc);
  w->header_crc = shardrt__crc32c(0, w->header, w->header_len);
  put_hex(w->header + w->hdr_crc_pos, w->header_crc);
  SHARDRT__CHECK_GOTO(shardrt__wfile_pwrite(&w->f, w->header, w->header_len, 0), rc, fail);
  rc = shardrt__wfile_commit(&w->f);
  release(w);
  return rc;
fail:
  shardrt__stw_abort(w);
  return rc;
}
