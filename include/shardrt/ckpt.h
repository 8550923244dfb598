/* SPDX-License-Identifier: Apache-2.0 */
/* Checkpoints and model loading (safetensors).
 *
 * Two checkpoint layouts, both written into one directory (by convention
 * ROOT/step_<N>/, see shardrt_ckpt_maybe_save):
 *
 *  - SHARDED (plan.state_dict_type SHARDED_STATE_DICT or LOCAL_STATE_DICT):
 *    every rank writes the ranges of the optimizer's parameter copy and of
 *    the optimizer moments it owns, in their stored dtype, into
 *    rank_<r>.safetensors. No tensor data crosses ranks. A checkpoint can be
 *    loaded at any world size and strategy (each rank reads the overlapping
 *    ranges it needs) and consolidated offline (shardrt_merge_checkpoint).
 *  - FULL (FULL_STATE_DICT, DeepSpeed zero3_save_16bit_model): parameters
 *    are gathered unit by unit to rank 0 and streamed into model.safetensors
 *    (fp32, or the 16-bit compute dtype with save_16bit_model); the
 *    optimizer moments are still written per rank.
 *
 * Every file is written to "<name>.tmp.<pid>", fsync'ed and renamed; every
 * file carries CRC32C checksums verified on load; meta.json is written by
 * rank 0 last, so a directory without a valid meta.json is incomplete and is
 * never chosen by shardrt_latest_checkpoint. Checkpoint directories must be
 * on a filesystem every rank sees (or rank-local with world size 1).
 *
 * Functions taking a ctx are collective: every rank calls them, in the same
 * order, with the same paths. They return the same status on every rank
 * (a rank that did not fail itself reports which rank did). */
#ifndef SHARDRT_CKPT_H
#define SHARDRT_CKPT_H

#include "shardrt/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum shardrt_ckpt_format {
  SHARDRT_CKPT_FROM_PLAN = 0, /* plan.state_dict_type (LOCAL counts as SHARDED) */
  SHARDRT_CKPT_SHARDED,
  SHARDRT_CKPT_FULL,
} shardrt_ckpt_format;

typedef struct shardrt_ckpt_opts {
  uint32_t struct_size;       /* sizeof(shardrt_ckpt_opts), set by the defaults function */
  shardrt_ckpt_format format; /* default FROM_PLAN */
  /* FULL only: dtype of model.safetensors. -1 (default) = the plan's:
   * save_16bit_model with bf16/fp16 compute -> that dtype, else fp32. When
   * the model file is lossy, the exact parameters also go to the rank files
   * so resuming stays exact. */
  int full_dtype;
  /* The program's own state (data position, RNG, ...), stored verbatim and
   * returned by shardrt_load_checkpoint. Rank 0's copy is saved. May be NULL. */
  const void *user_blob;
  size_t user_len;
} shardrt_ckpt_opts;

SHARDRT_API void shardrt_ckpt_opts_default(shardrt_ckpt_opts *o);

/* Collective. Saves parameters, optimizer state, step / loss-scale state and
 * the user blob into directory `dir` (created if needed; a complete
 * checkpoint already there is replaced: its meta.json is removed first).
 * opts may be NULL (defaults). */
SHARDRT_API shardrt_status shardrt_save_checkpoint(shardrt_ctx *ctx, const char *dir,
                                                   const shardrt_ckpt_opts *opts);

/* Collective. Restores what shardrt_save_checkpoint saved. `path` is a
 * checkpoint directory, or a root holding step_<N>/ directories (the newest
 * complete one is loaded). The model must register the same parameter names
 * and shapes; world size, strategy and unit layout may differ (re-sharded
 * on load). With the same world size and plan the continuation is
 * bit-identical. The user blob is copied into user_buf (at most cap bytes;
 * user_buf may be NULL) and its full length stored in *user_len (may be
 * NULL). On failure the context's parameters and optimizer state are
 * unspecified (reload or re-initialise them). */
SHARDRT_API shardrt_status shardrt_load_checkpoint(shardrt_ctx *ctx, const char *path,
                                                   void *user_buf, size_t cap, size_t *user_len);

/* Not collective. Writes into buf the path of the newest complete
 * checkpoint (ROOT/step_<N> with the largest N whose meta.json is valid and
 * whose files all exist with their recorded sizes). SHARDRT_ERR_NOT_FOUND
 * when there is none; SHARDRT_ERR_INVALID_ARGUMENT when buf is too small. */
SHARDRT_API shardrt_status shardrt_latest_checkpoint(const char *root, char *buf, size_t len);

/* Collective. The one call a training loop makes after each step (for
 * `--save_dir DIR --save_every N`): when every > 0 and step % every == 0,
 * saves ROOT/step_<step> with default options plus the user blob; otherwise
 * does nothing. *saved (may be NULL) says whether it saved. */
SHARDRT_API shardrt_status shardrt_ckpt_maybe_save(shardrt_ctx *ctx, const char *root, int64_t step,
                                                   int64_t every, const void *user_blob,
                                                   size_t user_len, bool *saved);

/* Collective. Writes the full parameters (names as registered) to one
 * safetensors file in `dtype`, gathered unit by unit to rank 0 (rank 0 holds
 * at most one unit beyond its write buffer). Readable by the Python
 * `safetensors` package. */
SHARDRT_API shardrt_status shardrt_save_weights(shardrt_ctx *ctx, const char *path, shardrt_dtype dtype);

/* Collective. Loads parameters from a safetensors file (F32, BF16 or F16
 * tensors). Every registered parameter must be present with its shape, and
 * the file must hold no other tensor; errors name the tensor. With
 * plan.cpu_ram_efficient_loading (DeepSpeed zero3_init_flag) and
 * plan.sync_module_states only rank 0 reads the file and the other ranks
 * receive only the parts they own (host memory O(shard)); otherwise every
 * rank maps the file. A path ending in ".json" is a sharded checkpoint's
 * index (Hugging Face's model.safetensors.index.json: "weight_map" from
 * tensor name to shard file, relative to the index's directory): its shards
 * are read as one file; a missing shard, a tensor absent from the shard the
 * index names, or a shard tensor the index does not map to it is an error. */
SHARDRT_API shardrt_status shardrt_load_weights(shardrt_ctx *ctx, const char *path);

/* Name/layout mapping between the registered parameters and a weights file
 * written by another framework (e.g. Hugging Face transformers, whose GPT-2
 * Conv1D layers store [in, out] and whose names carry a "transformer."
 * prefix). The runtime stays model-agnostic: the program supplies the map.
 *
 * to_file: for registered parameter `param`, writes the file's tensor name
 *   into out (cap bytes) and sets *transpose when a 2-D parameter [R, C] is
 *   stored as [C, R] in the file. `has(file, name)` tells whether the file
 *   (when loading) holds a tensor of that name, so a map can pick between
 *   spellings (a tied head: lm_head.weight absent -> read wte.weight); when
 *   saving, has is NULL. Several parameters may read the same file tensor.
 *   Returns false on a name it cannot map (an error naming the parameter).
 * ignore (may be NULL): true for a file tensor that no parameter reads and
 *   that is not an error (e.g. attention-mask buffers). Loading only. */
typedef bool (*shardrt_weight_has_fn)(const void *file, const char *name);
typedef struct shardrt_weight_map {
  bool (*to_file)(void *arg, const char *param, shardrt_weight_has_fn has, const void *file, char *out,
                  size_t cap, bool *transpose);
  bool (*ignore)(void *arg, const char *file_tensor);
  void *arg;
} shardrt_weight_map;

/* Collective. shardrt_load_weights through a map (NULL: identity). */
SHARDRT_API shardrt_status shardrt_load_weights_mapped(shardrt_ctx *ctx, const char *path,
                                                       const shardrt_weight_map *map);
/* Collective. shardrt_save_weights through a map (NULL: identity): file
 * names and layouts as the map says; two parameters mapped to one name is
 * an error. */
SHARDRT_API shardrt_status shardrt_save_weights_mapped(shardrt_ctx *ctx, const char *path, shardrt_dtype dtype,
                                                       const shardrt_weight_map *map);

/* Offline consolidation (no MPI, no context): streams a checkpoint written
 * at any world size into one safetensors file of full tensors in `dtype`,
 * one piece at a time, so peak memory stays far below the model size. With
 * `optimizer`, also writes "<param>.exp_avg" / "<param>.exp_avg_sq" (those
 * the optimizer has). stats may be NULL. */
typedef struct shardrt_merge_stats {
  int num_tensors;       /* tensors written */
  uint64_t model_bytes;  /* parameter bytes of the model in fp32 */
  uint64_t bytes_read;   /* tensor bytes read from the checkpoint */
  uint64_t bytes_written;/* size of the output file */
} shardrt_merge_stats;
SHARDRT_API shardrt_status shardrt_merge_checkpoint(const char *ckpt_dir, const char *out_path,
                                                    shardrt_dtype dtype, bool optimizer,
                                                    shardrt_merge_stats *stats);
/* Offline consolidation into another framework's layout, as an export spec
 * says (a JSON file the training program writes; see docs/checkpoints.md):
 * out_dir/<weights_file> with the spec's tensor names, 2-D parameters
 * transposed where it says so, its metadata, and its extra files (e.g. a
 * config.json) next to it. Every parameter must be listed. dtype -1 writes
 * the dtype the checkpoint holds. Streams like shardrt_merge_checkpoint
 * except that a transposed tensor is held whole once. */
SHARDRT_API shardrt_status shardrt_merge_checkpoint_export(const char *ckpt_dir, const char *out_dir,
                                                           const char *spec_path, int dtype,
                                                           shardrt_merge_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
