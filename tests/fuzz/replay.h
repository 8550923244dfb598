/* SPDX-License-Identifier: Apache-2.0 */
/* The fuzz targets' replay without libFuzzer: each seed file as is,
 * truncated, with bytes flipped and with tokens spliced in, all
 * deterministic (a fixed xorshift sequence), through LLVMFuzzerTestOneInput;
 * then whatever pathological shapes the driver adds. Any crash, hang (ctest
 * timeout) or unknown status fails the test. Used by replay_main.c (config
 * loaders, a mode byte in front) and replay_plain.c (checkpoint readers). */
#ifndef SHARDRT_FUZZ_REPLAY_H
#define SHARDRT_FUZZ_REPLAY_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct replay_cfg {
  uint64_t rng_seed;
  /* > 0: every input is fed once per mode behind a mode byte 0..modes-1;
   * 0: fed as is (mode -1) */
  int modes;
  size_t cut_parts;   /* a truncation every 1 + n/cut_parts bytes */
  int flips;          /* byte-flipped variants per mode (1..4 flips each) */
  const char *const *splices;
  size_t nsplices;
  int splice_reps;    /* insertions of each splice, at random offsets, per mode */
  size_t max_seed;    /* bytes read from each seed file */
  int need_files;     /* a usage error without FILE arguments */
  /* After the seeds: the shapes no seed has (replay_feed_repeat). May be NULL. */
  void (*extra)(void);
} replay_cfg;

/* One input; mode < 0: no mode byte. Exits 2 when out of memory. */
void replay_feed(int mode, const uint8_t *data, size_t n);
/* `n` bytes repeating `pattern` (deep nesting: "[" or "{"; long documents). */
void replay_feed_repeat(int mode, const char *pattern, size_t n);
/* main() of a replay driver: usage: PROG FILE... */
int replay_main(const replay_cfg *cfg, int argc, char **argv);

#endif
