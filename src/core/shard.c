/* SPDX-License-Identifier: Apache-2.0 */
#include "src/core/shard.h"

shardrt__shard shardrt__shard_of(int64_t numel, int group, int rank, int64_t align) {
  shardrt__shard s = {0, 0, 0};
  if (numel <= 0 || group <= 0 || align <= 0) return s;
  int64_t quantum = (int64_t)group * align;
  s.padded = (numel + quantum - 1) / quantum * quantum;
  s.size = s.padded / group;
  s.offset = (int64_t)rank * s.size;
  return s;
}

int64_t shardrt__overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1, int64_t *start) {
  int64_t lo = a0 > b0 ? a0 : b0;
  int64_t hi = a1 < b1 ? a1 : b1;
  *start = lo;
  return hi > lo ? hi - lo : 0;
}
