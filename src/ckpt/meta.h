/* SPDX-License-Identifier: Apache-2.0 */
/* meta.json: what a checkpoint directory holds. Written by rank 0 last; a
 * directory whose meta.json is missing or fails its checksum is incomplete.
 *
 * A unit's flat coordinates [0, numel) are split into pieces, each stored by
 * one file (rank_<r>.safetensors) as tensors "unit.<u>.<role>" of the
 * piece's length, in the role's stored dtype. Pieces of a unit are disjoint
 * and cover it. Parameters are located by (unit, offset), so a reader with
 * another unit layout maps each parameter through its name. */
#ifndef SHARDRT_CKPT_META_H
#define SHARDRT_CKPT_META_H

#include <stdbool.h>
#include <stdint.h>

#include "shardrt/types.h"
#include "src/core/state.h"

#define SHARDRT__CK_META_FILE "meta.json"
#define SHARDRT__CK_MODEL_FILE "model.safetensors"
#define SHARDRT__CK_VERSION 2 /* 2: checkpoint id, header checksums of every file */

typedef struct shardrt__ck_param {
  char *name;
  int unit;
  int ndim;
  int64_t shape[8];
  int64_t numel, offset; /* offset in the unit's flat coordinates */
} shardrt__ck_param;

typedef struct shardrt__ck_piece {
  int file;            /* index into files (the writing rank) */
  int64_t begin, end;  /* unit flat coordinates */
} shardrt__ck_piece;

typedef struct shardrt__ck_unit {
  char *name;
  int64_t numel;
  int npieces;
  shardrt__ck_piece *pieces; /* sorted by begin */
} shardrt__ck_unit;

typedef struct shardrt__ck_file {
  char name[64];
  uint64_t bytes;
  uint32_t header_crc; /* the file's shardrt.header_crc32c: binds its header, and so its tensor checksums */
} shardrt__ck_file;

typedef struct shardrt__ck_meta {
  char ckpt_id[17];           /* 16 hex digits, random per save; every file of the checkpoint carries it */
  int world_size;
  char strategy[32];
  const char *plan_json;      /* write only: the plan as JSON (NULL: {}) */
  shardrt__train_state ts;
  bool in_shards[SHARDRT__ROLE_COUNT_]; /* role stored in the rank files */
  shardrt_dtype role_dtype[SHARDRT__ROLE_COUNT_];
  char model_file[64];        /* "" when there is none */
  shardrt_dtype model_dtype;
  uint64_t model_bytes;
  uint32_t model_header_crc;
  int nunits;
  shardrt__ck_unit *units;
  int nparams;
  shardrt__ck_param *params;
  int nfiles;
  shardrt__ck_file *files;
  unsigned char *user;
  size_t user_len;
} shardrt__ck_meta;

const char *shardrt__role_name(shardrt__role r); /* "param" "exp_avg" "exp_avg_sq" */
/* Tensor name of a unit's role in a rank file. */
void shardrt__ck_piece_tensor(int unit, shardrt__role r, char *buf, size_t len);
/* Rank file name for rank r. */
void shardrt__ck_rank_file(int r, char *buf, size_t len);

/* The pieces file `file` holds, as "unit:begin:end,..." in unit order: what
 * a rank file records in its __metadata__ ("shardrt.pieces") so that a file
 * put in another rank's place is recognised. malloc'ed; NULL on OOM. */
char *shardrt__ck_pieces_str(const shardrt__ck_meta *m, int file);

/* Durably writes dir/meta.json (the checkpoint's commit point). */
shardrt_status shardrt__meta_write(const shardrt__ck_meta *m, const char *dir);
/* Reads and checks dir/meta.json: checksum, format, version and internal
 * consistency (pieces cover units, params inside units). NOT_FOUND when the
 * file is missing, CORRUPT naming it otherwise. */
shardrt_status shardrt__meta_read(const char *dir, shardrt__ck_meta *m);
/* meta_read + every listed file exists with its recorded size. */
shardrt_status shardrt__meta_check_complete(const char *dir, shardrt__ck_meta *m);
void shardrt__meta_free(shardrt__ck_meta *m); /* frees what meta_read allocated */

#endif
