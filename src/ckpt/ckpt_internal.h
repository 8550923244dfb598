/* SPDX-License-Identifier: Apache-2.0 */
/* Pieces shared by checkpoint save and load over a live context: agreeing on
 * a status across ranks, and describing the context's model as checkpoint
 * metadata. */
#ifndef SHARDRT_CKPT_INTERNAL_H
#define SHARDRT_CKPT_INTERNAL_H

#include "shardrt/ckpt.h"
#include "src/ckpt/meta.h"
#include "src/core/state.h"

/* Collective: every rank passes its own status; every rank returns the
 * first failing rank's status, with that rank's message (prefixed by its
 * rank) as the last error. */
shardrt_status shardrt__ck_agree(shardrt_ctx *ctx, shardrt_status rc);
/* Elements of the largest unit (unpadded): the size of a one-unit buffer. */
int64_t shardrt__ck_max_unit_numel(const shardrt_ctx *ctx);
/* Collective: every rank's `bytes` bytes, concatenated in rank order. */
shardrt_status shardrt__ck_allgather(shardrt_ctx *ctx, const void *send, void *recv, size_t bytes);
/* Collective: broadcasts rank 0's NUL-terminated string (len bytes buffer). */
shardrt_status shardrt__ck_bcast_str(shardrt_ctx *ctx, char *buf, size_t len);

/* Fills world size, strategy, plan JSON (malloc'ed into *plan_json), train
 * state, units (names, numel) and params of m from the context. */
shardrt_status shardrt__ck_describe(shardrt_ctx *ctx, shardrt__ck_meta *m, char **plan_json);
/* Frees what ck_describe allocated (m's arrays; not read-side fields). */
void shardrt__ck_describe_free(shardrt__ck_meta *m, char *plan_json);

/* shardrt_latest_checkpoint among steps < below. Damaged ones are skipped
 * with a warning naming what is wrong (SHARDRT_CKPT_FALLBACK=0: an error);
 * incomplete ones (no meta.json) are skipped. No context needed. */
bool shardrt__ckpt_fallback_on(void); /* SHARDRT_CKPT_FALLBACK is not 0/off/false */
shardrt_status shardrt__latest_checkpoint_below(const char *root, int64_t below, char *buf, size_t len);
/* After a successful save of `keep` (ROOT/step_<N>): removes the stale
 * *.tmp.<pid> files of crashed saves in every ROOT/step_<M>, and the step
 * folders without meta.json (crashed saves), touching only file names a
 * save writes. Best effort; errors are ignored. */
void shardrt__ckpt_cleanup(const char *root, const char *keep);

/* "[3, 4]" */
void shardrt__ck_shape_str(int ndim, const int64_t *shape, char *buf, size_t len);

/* Collective: gathers the parameters unit by unit to rank 0 and streams
 * them into a safetensors file at path in dtype, names and layouts through
 * map (NULL: as registered). ckpt_id (may be NULL) goes into its
 * __metadata__; *bytes and *header_crc (rank 0, may be NULL) get the file
 * size and header checksum. */
shardrt_status shardrt__ck_save_full(shardrt_ctx *ctx, const char *path, shardrt_dtype dtype, const char *ckpt_id,
                                     uint64_t *bytes, uint32_t *header_crc, const shardrt_weight_map *map);

#endif
