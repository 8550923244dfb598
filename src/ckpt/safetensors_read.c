/* SPDX-License-Identifier: Apache-2.0 */
/* safetensors reader. Everything a header claims is checked against the
 * file before any tensor is used, so a truncated or damaged file is one
 * clear SHARDRT_ERR_CORRUPT naming it rather than garbage weights. */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/ckpt/crc32c.h"
#include "src/ckpt/json.h"
#include "src/ckpt/safetensors.h"
#include "src/core/error.h"

#define HDR_CRC_PREFIX "{\"__metadata__\":{\"shardrt.header_crc32c\":\""
#define MAX_HEADER (100u << 20) /* the format's own limit */

void shardrt__st_close(shardrt__st_file *f) {
  if (!f) return;
  if (f->map) munmap((void *)f->map, f->file_size);
  f->map = NULL;
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  for (int i = 0; i < f->n; i++) free(f->t[i].name);
  free(f->t);
  free(f->by_name);
  f->t = NULL;
  f->by_name = NULL;
  f->n = 0;
  for (int i = 0; i < f->n_meta; i++) {
    free(f->meta_key[i]);
    free(f->meta_val[i]);
  }
  free(f->meta_key);
  free(f->meta_val);
  f->meta_key = f->meta_val = NULL;
  f->n_meta = 0;
}

static bool parse_hex8(const char *s, uint32_t *out) {
  if (!s || strlen(s) != 8) return false;
  for (int i = 0; i < 8; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F'))) return false;
  char *end;
  unsigned long v = strtoul(s, &end, 16);
  if (*end) return false;
  *out = (uint32_t)v;
  return true;
}

static bool dtype_from(const char *s, shardrt_dtype *dt) {
  if (!s) return false;
  if (strcmp(s, "F32") == 0) *dt = SHARDRT_F32;
  else if (strcmp(s, "BF16") == 0) *dt = SHARDRT_BF16;
  else if (strcmp(s, "F16") == 0) *dt = SHARDRT_F16;
  else return false;
  return true;
}

static int cmp_begin(const void *a, const void *b) {
  const shardrt__st_tensor *x = *(shardrt__st_tensor *const *)a, *y = *(shardrt__st_tensor *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static shardrt_status parse_tensor(shardrt__st_file *f, const char *name, const json_t *v, shardrt__st_tensor *t) {
  const char *p = f->path;
  if (!json_is_object(v))
    return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': header entry '%s' is not an object {\"dtype\", \"shape\", \"data_offsets\"}",
                          p, name);
  const char *dts = shardrt__j_str(shardrt__j_get(v, "dtype"));
  const json_t *shape = shardrt__j_get(v, "shape");
  const json_t *offs = shardrt__j_get(v, "data_offsets");
  if (!dts || !json_is_array(shape) || !json_is_array(offs) || json_array_size(offs) != 2)
    return shardrt__error(SHARDRT_ERR_CORRUPT,
                          "'%s': tensor '%s' needs \"dtype\" (a string), \"shape\" (an array of integers) and "
                          "\"data_offsets\" (an array [begin, end] of two integers)",
                          p, name);
  if (!dtype_from(dts, &t->dtype))
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED, "'%s': tensor '%s' has dtype %s; libshardrt reads F32, BF16 and F16", p,
                          name, dts);
  size_t nd = json_array_size(shape);
  if (nd > SHARDRT__ST_MAX_DIMS)
    return shardrt__error(SHARDRT_ERR_UNSUPPORTED, "'%s': tensor '%s' has %zu dimensions (at most %d)", p, name, nd,
                          SHARDRT__ST_MAX_DIMS);
  t->ndim = (int)nd;
  uint64_t numel = 1;
  for (size_t k = 0; k < nd; k++) {
    int64_t v64;
    if (!shardrt__j_i64(json_array_get(shape, k), &v64) || v64 < 0)
      return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': tensor '%s': shape entry %zu is not an integer >= 0", p, name, k);
    t->shape[k] = v64;
    if (__builtin_mul_overflow(numel, (uint64_t)v64, &numel))
      return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': tensor '%s': the product of its shape overflows 64 bits", p, name);
  }
  int64_t b, e;
  if (!shardrt__j_i64(json_array_get(offs, 0), &b) || !shardrt__j_i64(json_array_get(offs, 1), &e) || b < 0 || e < b)
    return shardrt__error(SHARDRT_ERR_CORRUPT,
                          "'%s': tensor '%s': data_offsets must be two integers 0 <= begin <= end", p, name);
  t->begin = (uint64_t)b;
  t->end = (uint64_t)e;
  uint64_t need;
  if (__builtin_mul_overflow(numel, (uint64_t)shardrt_dtype_size(t->dtype), &need) || need != t->end - t->begin)
    return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': tensor '%s' spans %llu bytes but its shape and dtype need %llu%s", p,
                          name, (unsigned long long)(t->end - t->begin), (unsigned long long)(numel * shardrt_dtype_size(t->dtype)),
                          need / shardrt_dtype_size(t->dtype) != numel ? " (overflow)" : "");
  t->name = strdup(name);
  if (!t->name) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", p);
  return SHARDRT_OK;
}

static shardrt_status parse_metadata(shardrt__st_file *f, const json_t *v) {
  if (!json_is_object(v))
    return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': \"__metadata__\" is not an object of string values", f->path);
  size_t nm = json_object_size(v);
  f->meta_key = calloc(nm ? nm : 1, sizeof(char *));
  f->meta_val = calloc(nm ? nm : 1, sizeof(char *));
  if (!f->meta_key || !f->meta_val) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", f->path);
  const char *mk;
  json_t *mv;
  json_object_foreach((json_t *)v, mk, mv) {
    if (!json_is_string(mv))
      return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': __metadata__ value of '%s' is not a string (only strings are allowed)",
                            f->path, mk);
    int k = f->n_meta;
    f->meta_key[k] = strdup(mk);
    f->meta_val[k] = strdup(json_string_value(mv));
    f->n_meta = k + 1; /* counted before the check: close frees what was set */
    if (!f->meta_key[k] || !f->meta_val[k]) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", f->path);
  }
  return SHARDRT_OK;
}

static int by_name_cmp(const void *a, const void *b, void *arg) {
  const shardrt__st_tensor *t = arg;
  return strcmp(t[*(const int *)a].name, t[*(const int *)b].name);
}

static shardrt_status parse_header(shardrt__st_file *f, const char *hdr, size_t hlen) {
  json_t *root;
  SHARDRT__CHECK(shardrt__json_parse(hdr, hlen, f->path, &root));
  shardrt_status rc = SHARDRT_OK;
  size_t np = json_object_size(root);
  f->t = calloc(np ? np : 1, sizeof *f->t);
  f->by_name = calloc(np ? np : 1, sizeof *f->by_name);
  if (!f->t || !f->by_name) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", f->path);
    goto out;
  }
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (strcmp(key, "__metadata__") == 0) {
      SHARDRT__CHECK_GOTO(parse_metadata(f, v), rc, out);
      continue;
    }
    SHARDRT__CHECK_GOTO(parse_tensor(f, key, v, &f->t[f->n]), rc, out);
    f->by_name[f->n] = f->n;
    f->n++;
  }
  /* Sorted index for lookups (a header may hold a million tensors). The
   * parser already refused duplicate keys; checked again because lookups
   * rely on names being unique. */
  qsort_r(f->by_name, (size_t)f->n, sizeof *f->by_name, by_name_cmp, f->t);
  for (int i = 1; i < f->n; i++)
    if (strcmp(f->t[f->by_name[i - 1]].name, f->t[f->by_name[i]].name) == 0) {
      rc = shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': tensor '%s' appears twice (names must be unique)", f->path,
                          f->t[f->by_name[i]].name);
      goto out;
    }
out:
  json_decref(root);
  return rc;
}

static shardrt_status check_layout(shardrt__st_file *f) {
  shardrt__st_tensor **s = malloc((size_t)(f->n ? f->n : 1) * sizeof *s);
  if (!s) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s'", f->path);
  for (int i = 0; i < f->n; i++) s[i] = &f->t[i];
  qsort(s, (size_t)f->n, sizeof *s, cmp_begin);
  uint64_t at = 0;
  shardrt_status rc = SHARDRT_OK;
  for (int i = 0; i < f->n; i++) {
    if (s[i]->begin != at) {
      rc = shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': tensor '%s' starts at data byte %llu, expected %llu (gap or overlap)",
                          f->path, s[i]->name, (unsigned long long)s[i]->begin, (unsigned long long)at);
      break;
    }
    at = s[i]->end;
  }
  free(s);
  if (rc != SHARDRT_OK) return rc;
  if (f->data_start + at != f->file_size)
    return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s' is %s: its header describes %llu bytes, the file has %llu", f->path,
                          f->data_start + at > f->file_size ? "truncated" : "longer than its header says",
                          (unsigned long long)(f->data_start + at), (unsigned long long)f->file_size);
  /* Tensor checksums: "crc32c:<name>" keys of __metadata__. */
  for (int k = 0; k < f->n_meta; k++) {
    if (strncmp(f->meta_key[k], "crc32c:", 7) != 0) continue;
    int i = shardrt__st_find(f, f->meta_key[k] + 7);
    if (i < 0)
      return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': __metadata__ has checksum '%s' for a tensor the file does not hold",
                            f->path, f->meta_key[k]);
    if (!parse_hex8(f->meta_val[k], &f->t[i].crc))
      return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': checksum of tensor '%s' is \"%s\", not 8 hex digits", f->path,
                            f->t[i].name, f->meta_val[k]);
    f->t[i].has_crc = true;
  }
  return SHARDRT_OK;
}

shardrt_status shardrt__st_open(shardrt__st_file *f, const char *path) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  snprintf(f->path, sizeof f->path, "%s", path);
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0)
    return shardrt__error(errno == ENOENT ? SHARDRT_ERR_NOT_FOUND : SHARDRT_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
  struct stat st;
  if (fstat(f->fd, &st) != 0) {
    shardrt__st_close(f);
    return shardrt__error(SHARDRT_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
  }
  f->file_size = (uint64_t)st.st_size;
  unsigned char lenb[8];
  shardrt_status rc = SHARDRT_OK;
  char *hdr = NULL;
  if (f->file_size < 8) {
    rc = shardrt__error(SHARDRT_ERR_CORRUPT, "'%s' is truncated: %llu bytes, a safetensors file has at least 8", path,
                        (unsigned long long)f->file_size);
    goto fail;
  }
  SHARDRT__CHECK_GOTO(shardrt__pread_full(f->fd, lenb, 8, 0, path), rc, fail);
  uint64_t hlen = 0;
  for (int k = 0; k < 8; k++) hlen |= (uint64_t)lenb[k] << (8 * k);
  if (hlen < 2 || hlen > MAX_HEADER || hlen > f->file_size - 8) {
    rc = shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': header length %llu is impossible for a %llu-byte file (truncated or not safetensors)",
                        path, (unsigned long long)hlen, (unsigned long long)f->file_size);
    goto fail;
  }
  hdr = malloc(hlen + 1);
  if (!hdr) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading the header of '%s'", path);
    goto fail;
  }
  SHARDRT__CHECK_GOTO(shardrt__pread_full(f->fd, hdr, hlen, 8, path), rc, fail);
  hdr[hlen] = '\0';
  f->data_start = 8 + hlen;
  size_t pl = strlen(HDR_CRC_PREFIX);
  if (hlen > pl + 8 && memcmp(hdr, HDR_CRC_PREFIX, pl) == 0) {
    char digits[9];
    memcpy(digits, hdr + pl, 8);
    digits[8] = '\0';
    uint32_t want, got;
    got = shardrt__crc32c(0, lenb, 8);
    got = shardrt__crc32c(got, hdr, pl);
    got = shardrt__crc32c(got, "00000000", 8);
    got = shardrt__crc32c(got, hdr + pl + 8, hlen - pl - 8);
    if (!parse_hex8(digits, &want) || want != got) {
      rc = shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': header checksum mismatch (stored %s, computed %08x): the file is damaged",
                          path, digits, got);
      goto fail;
    }
    f->has_header_crc = true;
    f->header_crc = got;
  }
  SHARDRT__CHECK_GOTO(parse_header(f, hdr, hlen), rc, fail);
  SHARDRT__CHECK_GOTO(check_layout(f), rc, fail);
  free(hdr);
  return SHARDRT_OK;
fail:
  free(hdr);
  shardrt__st_close(f);
  return rc;
}

int shardrt__st_find(const shardrt__st_file *f, const char *name) {
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2, c = strcmp(f->t[f->by_name[mid]].name, name);
    if (c == 0) return f->by_name[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

const char *shardrt__st_meta(const shardrt__st_file *f, const char *key) {
  for (int i = 0; i < f->n_meta; i++)
    if (strcmp(f->meta_key[i], key) == 0) return f->meta_val[i];
  return NULL;
}

shardrt_status shardrt__st_read_raw(shardrt__st_file *f, int i, uint64_t byte_begin, size_t n, void *out) {
  const shardrt__st_tensor *t = &f->t[i];
  if (byte_begin + n > t->end - t->begin)
    return shardrt__error(SHARDRT_ERR_INTERNAL, "'%s': read of bytes [%llu, %llu) past tensor '%s' (%llu bytes)", f->path,
                          (unsigned long long)byte_begin, (unsigned long long)(byte_begin + n), t->name,
                          (unsigned long long)(t->end - t->begin));
  return shardrt__pread_full(f->fd, out, n, f->data_start + t->begin + byte_begin, f->path);
}

static shardrt_status crc_mismatch(shardrt__st_file *f, int i, uint32_t got) {
  return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': checksum mismatch in tensor '%s' (stored %08x, computed %08x): the file is damaged",
                        f->path, f->t[i].name, f->t[i].crc, got);
}

shardrt_status shardrt__st_stream(shardrt__st_file *f, int i, void *scratch, size_t chunk_bytes,
                                  shardrt__st_chunk_fn cb, void *arg) {
  const shardrt__st_tensor *t = &f->t[i];
  size_t es = shardrt_dtype_size(t->dtype);
  chunk_bytes -= chunk_bytes % es;
  if (chunk_bytes == 0) return shardrt__error(SHARDRT_ERR_INTERNAL, "st_stream: chunk smaller than one element");
  uint64_t total = t->end - t->begin;
  uint32_t crc = 0;
  for (uint64_t at = 0; at < total; at += chunk_bytes) {
    size_t n = total - at < chunk_bytes ? (size_t)(total - at) : chunk_bytes;
    SHARDRT__CHECK(shardrt__st_read_raw(f, i, at, n, scratch));
    if (t->has_crc) crc = shardrt__crc32c(crc, scratch, n);
    if (cb) SHARDRT__CHECK(cb(at / es, scratch, n / es, arg));
  }
  if (t->has_crc && crc != t->crc) return crc_mismatch(f, i, crc);
  return SHARDRT_OK;
}

shardrt_status shardrt__st_map(shardrt__st_file *f) {
  if (f->map) return SHARDRT_OK;
  if (f->file_size == 0) return SHARDRT_OK;
  void *m = mmap(NULL, f->file_size, PROT_READ, MAP_SHARED, f->fd, 0);
  if (m == MAP_FAILED) return shardrt__error(SHARDRT_ERR_IO, "cannot map '%s': %s", f->path, strerror(errno));
  f->map = m;
  return SHARDRT_OK;
}

shardrt_status shardrt__st_verify_mapped(shardrt__st_file *f, int i) {
  const shardrt__st_tensor *t = &f->t[i];
  if (!t->has_crc) return SHARDRT_OK;
  if (!f->map) return shardrt__error(SHARDRT_ERR_INTERNAL, "'%s' verified before being mapped", f->path);
  uint32_t got = shardrt__crc32c(0, f->map + f->data_start + t->begin, t->end - t->begin);
  return got == t->crc ? SHARDRT_OK : crc_mismatch(f, i, got);
}
