/* SPDX-License-Identifier: Apache-2.0 */
/* The safetensors format: 8-byte little-endian header length N, N bytes of
 * JSON {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets":
 * [begin, end]}} padded with spaces to 8-byte alignment, then the tensor
 * bytes (offsets relative to the end of the header).
 *
 * Files written here put "shardrt.header_crc32c" first in __metadata__ (the
 * CRC32C of the 8 length bytes and the header, with that value's 8 hex
 * digits read as '0') and "crc32c:<tensor>" per tensor (CRC32C of its
 * bytes). Readers verify them when present; files from other writers (no
 * such keys) are checked for structure only. */
#ifndef SHARDRT_CKPT_SAFETENSORS_H
#define SHARDRT_CKPT_SAFETENSORS_H

#include <stdbool.h>
#include <stdint.h>

#include "shardrt/types.h"
#include "src/ckpt/durable.h"

#define SHARDRT__ST_MAX_DIMS 8

typedef struct shardrt__st_tensor {
  char *name;          /* owned by the writer / reader */
  shardrt_dtype dtype;
  int ndim;
  int64_t shape[SHARDRT__ST_MAX_DIMS];
  uint64_t begin, end; /* byte offsets relative to the data start */
  bool has_crc;
  uint32_t crc;
} shardrt__st_tensor;

/* "F32" / "BF16" / "F16". */
const char *shardrt__st_dtype_name(shardrt_dtype dt);

/* ---- streaming writer: declare every tensor, then append their bytes in
 * declaration order. ---- */
typedef struct shardrt__st_writer {
  shardrt__wfile f;
  int n;
  shardrt__st_tensor *t;
  uint64_t data_start, data_bytes, written;
  int cur;          /* tensor receiving bytes */
  uint32_t cur_crc;
  char *header;     /* header bytes (8-byte length + JSON), patched at finish */
  size_t header_len;
  size_t hdr_crc_pos;   /* offset of the header crc digits in header */
  size_t *crc_pos;      /* per tensor: offset of its crc digits */
  bool open;
  bool mid_done;     /* the mid-data crash point has fired */
  uint32_t header_crc; /* after a successful finish: the header checksum written */
} shardrt__st_writer;

/* Each tensor needs name, dtype, ndim, shape (offsets are computed).
 * meta: n_meta "key", "value" string pairs for __metadata__ (may be 0).
 * Creates path.tmp.<pid>; nothing appears at path before finish. */
shardrt_status shardrt__stw_begin(shardrt__st_writer *w, const char *path, const shardrt__st_tensor *tensors,
                                  int n, const char *const *meta, int n_meta);
/* Appends tensor bytes (may span tensor boundaries). */
shardrt_status shardrt__stw_write(shardrt__st_writer *w, const void *data, size_t bytes);
/* Checks every declared byte was written, patches checksums, commits the
 * file durably. The writer is released either way. */
shardrt_status shardrt__stw_finish(shardrt__st_writer *w);
/* Removes the temporary file and releases the writer (NULL-safe, idempotent). */
void shardrt__stw_abort(shardrt__st_writer *w);

/* ---- reader ---- */
typedef struct shardrt__st_file {
  int fd;
  char path[4096];
  uint64_t file_size, data_start;
  int n;
  shardrt__st_tensor *t;
  int *by_name;        /* tensor indices sorted by name (unique) */
  int n_meta;
  char **meta_key, **meta_val;
  bool has_header_crc; /* the header carried (and passed) its checksum */
  uint32_t header_crc; /* CRC32C of the length and header as computed (== stored when present) */
  const unsigned char *map; /* whole-file mapping, after shardrt__st_map */
} shardrt__st_file;

/* Opens and validates: header size, JSON, dtypes, shapes against byte
 * sizes, offsets inside the file, file size == header + data (truncation),
 * header checksum. Errors name the file (and tensor). */
shardrt_status shardrt__st_open(shardrt__st_file *f, const char *path);
void shardrt__st_close(shardrt__st_file *f); /* NULL-safe, idempotent */
/* Index of a tensor by name, -1 when absent. */
int shardrt__st_find(const shardrt__st_file *f, const char *name);
/* Value of a __metadata__ key, NULL when absent. */
const char *shardrt__st_meta(const shardrt__st_file *f, const char *key);
/* Raw bytes [byte_begin, byte_begin+n) of tensor i (no checksum check). */
shardrt_status shardrt__st_read_raw(shardrt__st_file *f, int i, uint64_t byte_begin, size_t n, void *out);

/* Streams tensor i in chunks of at most chunk_bytes through cb(elem_offset,
 * data, n_elems, arg) and verifies its checksum at the end (a mismatch is
 * SHARDRT_ERR_CORRUPT naming file and tensor; cb has then already seen the
 * bad bytes, so callers treat the whole load as failed). */
typedef shardrt_status (*shardrt__st_chunk_fn)(uint64_t elem_offset, const void *data, size_t n_elems, void *arg);
shardrt_status shardrt__st_stream(shardrt__st_file *f, int i, void *scratch, size_t chunk_bytes,
                                  shardrt__st_chunk_fn cb, void *arg);

/* Maps the whole file read-only (f->map); tensor i's bytes are at
 * f->map + f->data_start + t[i].begin. Released by close. */
shardrt_status shardrt__st_map(shardrt__st_file *f);
/* Verifies tensor i's checksum over the mapping (no-op without one). */
shardrt_status shardrt__st_verify_mapped(shardrt__st_file *f, int i);

#endif
