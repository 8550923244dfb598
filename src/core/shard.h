/* SPDX-License-Identifier: Apache-2.0 */
/* Shard math: pure functions, tested on their own (tests/unit/test_shard.c). */
#ifndef SHARDRT_SHARD_H
#define SHARDRT_SHARD_H

#include <stdint.h>

/* Elements every shard is a multiple of: 32 elements = 64 bytes of 16-bit
 * data, so each rank's shard starts on a cache line / vector boundary. */
#define SHARDRT__ALIGN_ELEMS 32

typedef struct shardrt__shard {
  int64_t padded;  /* numel rounded up to group * align (>= group * align when numel > 0) */
  int64_t size;    /* padded / group */
  int64_t offset;  /* rank * size */
} shardrt__shard;

/* The shard of `rank` in a group of `group` ranks over a flat buffer of
 * `numel` elements. Pads rather than refuses sizes that do not divide. */
shardrt__shard shardrt__shard_of(int64_t numel, int group, int rank, int64_t align);

/* Intersection of [a0, a1) and [b0, b1); returns its length (0 if empty)
 * and its start in *start. */
int64_t shardrt__overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1, int64_t *start);

#endif
