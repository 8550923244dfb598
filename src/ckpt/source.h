/* SPDX-License-Identifier: Apache-2.0 */
/* Reading a checkpoint directory: its metadata, its rank files (opened on
 * first use) and the streaming of a unit's role to whoever needs which
 * elements. Shared by the re-sharding loader and offline consolidation. */
#ifndef SHARDRT_CKPT_SOURCE_H
#define SHARDRT_CKPT_SOURCE_H

#include "src/ckpt/meta.h"
#include "src/ckpt/safetensors.h"

typedef struct shardrt__ck_src {
  char dir[4096];
  shardrt__ck_meta meta;
  shardrt__st_file *files; /* meta.nfiles, fd < 0 until opened */
  shardrt__st_file model;  /* model.fd < 0 until opened */
  void *scratch;           /* one raw chunk */
  size_t scratch_bytes;
  uint64_t bytes_read;
} shardrt__ck_src;

/* Checks that f, opened from the checkpoint's file `file` (-1: the model
 * file), belongs to this checkpoint: it carries a header checksum equal to
 * the one meta.json recorded, the checkpoint's id, and (rank files) its
 * rank and pieces. A swapped, duplicated or stale file is
 * SHARDRT_ERR_CORRUPT naming it and what it is instead. */
shardrt_status shardrt__ck_verify_file(const shardrt__ck_meta *m, int file, const shardrt__st_file *f);
/* Opens the header of every file m lists under dir and verifies it. */
shardrt_status shardrt__ck_verify_all(const char *dir, const shardrt__ck_meta *m);

/* Reads and checks dir/meta.json and that every listed file is present
 * with its recorded size; each file is verified when first opened. */
shardrt_status shardrt__src_open(shardrt__ck_src *s, const char *dir);
void shardrt__src_close(shardrt__ck_src *s); /* NULL-safe */
/* Index of a parameter in s->meta.params, -1 when absent. */
int shardrt__src_find_param(const shardrt__ck_src *s, const char *name);
/* The model file (FULL checkpoints), opened on first use. */
shardrt_status shardrt__src_model(shardrt__ck_src *s, shardrt__st_file **out);

/* A run of a unit's coordinates somebody wants: [begin, end) of the old
 * unit; `tag` is passed back to the sink. */
typedef struct shardrt__ck_need {
  int64_t begin, end;
  int64_t tag;
} shardrt__ck_need;

/* Receives elements [off, off+n) of need `need` (offsets relative to the
 * need's begin), as n values of dtype dt at data. */
typedef shardrt_status (*shardrt__ck_sink)(const shardrt__ck_need *need, int64_t off, const void *data,
                                           shardrt_dtype dt, size_t n, void *arg);

/* Streams role r of unit u: every piece overlapping a need is read whole
 * (its checksum verified) in chunks, and the overlaps go to sink in
 * increasing coordinate order. needs must be sorted by begin and disjoint.
 * Pieces no need touches are not read. */
shardrt_status shardrt__src_stream_unit(shardrt__ck_src *s, int u, shardrt__role r, const shardrt__ck_need *needs,
                                        int nneeds, shardrt__ck_sink sink, void *arg);

#endif
