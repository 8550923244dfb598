/* SPDX-License-Identifier: Apache-2.0 */
/* Launch shape of the flat-buffer kernels as pure host functions (C and
 * CUDA), so a CPU test (tests/kernels/test_launch.c) can check it without a
 * GPU. Every kernel runs two grid-stride loops over n elements:
 *   for (vi = t; vi < nvec; vi += stride)           elements 4vi .. 4vi+3
 *   for (i = 4*nvec + t; i < n; i += stride)        element i
 * with t the global thread index and stride = grid * SHARDRT__K_THREADS. */
#ifndef SHARDRT_KERNELS_LAUNCH_H
#define SHARDRT_KERNELS_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>

#define SHARDRT__K_THREADS 256     /* threads per block */
#define SHARDRT__K_BLOCKS_PER_SM 8 /* 2048 resident threads per SM */

/* Groups of 4 moved as one access: all of them when every buffer is
 * aligned for it, none otherwise. */
static inline size_t shardrt__k_nvec(size_t n, bool aligned) { return aligned ? n / 4 : 0; }

/* Work items: one per group of 4, one per element left over. */
static inline size_t shardrt__k_items(size_t n, size_t nvec) { return nvec + (n - nvec * 4); }

/* Blocks for `items`: enough for one item a thread, at most
 * SHARDRT__K_BLOCKS_PER_SM per SM (threads then loop), never 0 (an empty
 * grid is a launch error). */
static inline unsigned shardrt__k_grid(size_t items, int sms) {
  size_t want = items / SHARDRT__K_THREADS + (items % SHARDRT__K_THREADS != 0);
  size_t cap = (size_t)(sms > 0 ? sms : 1) * SHARDRT__K_BLOCKS_PER_SM;
  if (want > cap) want = cap;
  return want ? (unsigned)want : 1u;
}

#endif
