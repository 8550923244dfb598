/* SPDX-License-Identifier: Apache-2.0 */
/* A weights source of one or several safetensors files seen as one set of
 * named tensors: a single .safetensors file, or a sharded checkpoint's
 * index (Hugging Face's "model.safetensors.index.json": {"metadata": {...},
 * "weight_map": {tensor: shard file}}, shard names relative to the index's
 * directory). The index is the authority: each tensor it lists must be in
 * the shard it names, and a shard must hold no tensor the index does not
 * map to it, so a stale or mixed-up shard is an error naming it rather than
 * weights silently taken from the wrong file. Only headers are read when
 * opening; tensor bytes are read (or mapped) per file on demand. */
#ifndef SHARDRT_CKPT_ST_SET_H
#define SHARDRT_CKPT_ST_SET_H

#include <stdbool.h>

#include "src/ckpt/safetensors.h"

typedef struct shardrt__st_ref {
  int file; /* index into files */
  int idx;  /* tensor index in that file */
} shardrt__st_ref;

typedef struct shardrt__st_set {
  char path[4096];          /* what was opened: a .safetensors file or an index */
  bool indexed;             /* path is an index */
  int nfiles;
  shardrt__st_file *files;  /* headers open; mapped on demand */
  int n;                    /* tensors over all files */
  shardrt__st_ref *ref;     /* sorted by tensor name */
} shardrt__st_set;

/* True when path names an index (ends in ".json"). */
bool shardrt__sts_is_index(const char *path);
/* Opens a .safetensors file, or an index and every shard it lists. Errors:
 * SHARDRT_ERR_CORRUPT for an index that is not valid JSON or lacks a
 * "weight_map" object of string values, SHARDRT_ERR_NOT_FOUND for a missing
 * shard file or a tensor absent from the shard the index names, each naming
 * the index, the shard and the tensor. */
shardrt_status shardrt__sts_open(shardrt__st_set *s, const char *path);
void shardrt__sts_close(shardrt__st_set *s); /* NULL-safe, idempotent */
/* Index (0..n-1) of a tensor by name, -1 when absent. */
int shardrt__sts_find(const shardrt__st_set *s, const char *name);
/* Tensor g and the file holding it. */
const shardrt__st_tensor *shardrt__sts_tensor(const shardrt__st_set *s, int g);
shardrt__st_file *shardrt__sts_file(shardrt__st_set *s, int g);

#endif
