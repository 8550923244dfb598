/* SPDX-License-Identifier: Apache-2.0 */
/* Replay driver for the file-reader fuzz targets without libFuzzer: each
 * seed file as is, truncated, with bytes flipped, with tokens spliced in
 * (duplicate keys, deep nesting, huge numbers, YAML-isms), plus a few
 * pathological inputs no seed has (replay.c). usage: REPLAY FILE... */
#include <stdlib.h>
#include <string.h>

#include "replay.h"

static const char *const splices[] = {
    "\"__metadata__\":{\"a\":\"b\"},", "\"__metadata__\":[],", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "99999999999999999999",
    "-1", "1e999", "NaN", ",}", "a: 1\n", "\n---\n", "!!str ", "\"\\u0000\"", "\"shape\":[4294967296,4294967296],",
    "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", "\"loss_scale\":-1,", "\"name\":\"x\",", "\xff\xfe",
};

#define BIG 300000

static void pathological(void) {
  replay_feed_repeat(-1, "[", BIG);
  replay_feed_repeat(-1, "{", BIG);
  /* A safetensors length prefix in front of a deep header. */
  uint8_t *deep = malloc(BIG);
  if (!deep) exit(2);
  memset(deep, '{', BIG);
  uint64_t hl = BIG - 8;
  for (int k = 0; k < 8; k++) deep[k] = (uint8_t)(hl >> (8 * k));
  replay_feed(-1, deep, BIG);
  free(deep);
}

int main(int argc, char **argv) {
  const replay_cfg cfg = {
      .rng_seed = 0x2545f4914f6cdd1dull,
      .modes = 0,
      .cut_parts = 60,
      .flips = 200,
      .splices = splices,
      .nsplices = sizeof splices / sizeof splices[0],
      .splice_reps = 4,
      .max_seed = (size_t)1 << 20,
      .extra = pathological,
  };
  return replay_main(&cfg, argc, argv);
}
