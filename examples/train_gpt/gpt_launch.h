/* SPDX-License-Identifier: Apache-2.0 */
/* Launch shapes of the GPT's low-precision kernels as pure host functions
 * (tests/gpt/test_gpt_lt_host.c checks them on the CPU). Element-wise
 * kernels run a grid-stride loop, so the grid is capped and any n is
 * covered; row kernels give each row a warp (short rows) or a block. */
#ifndef GPT_LAUNCH_H
#define GPT_LAUNCH_H

#include <stdint.h>

#define GPT_EW_THREADS 256
#define GPT_EW_MAX_BLOCKS 65536 /* ~8 waves on 132 SMs; threads loop beyond */
#define GPT_ROWS_PER_BLOCK 8    /* warp-per-row kernels: 8 warps a block */

/* Blocks of an element-wise grid-stride kernel over n elements: one
 * element a thread up to the cap, never 0 (an empty grid is a launch
 * error; the kernel does nothing when n is 0). */
static inline unsigned gpt_ew_blocks(int64_t n) {
  int64_t want = (n + GPT_EW_THREADS - 1) / GPT_EW_THREADS;
  if (want > GPT_EW_MAX_BLOCKS) want = GPT_EW_MAX_BLOCKS;
  return want > 0 ? (unsigned)want : 1u;
}

/* Blocks for `rows` rows at `per` rows a block (never 0). */
static inline unsigned gpt_row_blocks(int64_t rows, int per) {
  int64_t want = (rows + per - 1) / per;
  return want > 0 ? (unsigned)want : 1u;
}

#endif
