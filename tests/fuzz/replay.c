/* SPDX-License-Identifier: Apache-2.0 */
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng;
static long runs;

static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

void replay_feed(int mode, const uint8_t *data, size_t n) {
  size_t pre = mode >= 0 ? 1 : 0;
  /* exact size (one byte for an empty input): ASan sees any overread */
  uint8_t *buf = malloc(n + pre > 0 ? n + pre : 1);
  if (!buf) exit(2);
  if (pre) buf[0] = (uint8_t)mode;
  if (n) memcpy(buf + pre, data, n);
  LLVMFuzzerTestOneInput(buf, n + pre);
  free(buf);
  runs++;
}

void replay_feed_repeat(int mode, const char *pattern, size_t n) {
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) exit(2);
  size_t l = strlen(pattern);
  for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)pattern[i % l];
  replay_feed(mode, buf, n);
  free(buf);
}

static void mutate_all(const replay_cfg *c, const uint8_t *seed, size_t n) {
  uint8_t *buf = malloc(n + 64);
  if (!buf) exit(2);
  int first = c->modes > 0 ? 0 : -1, end = c->modes > 0 ? c->modes : 0;
  for (int mode = first; mode < end; mode++) {
    replay_feed(mode, seed, n);
    for (size_t cut = 0; cut < n; cut += 1 + n / c->cut_parts) replay_feed(mode, seed, cut);
    for (int k = 0; k < c->flips; k++) {
      memcpy(buf, seed, n);
      for (int f = 0; f < 1 + k % 4 && n; f++) buf[next_rand() % n] ^= (uint8_t)(1u << (next_rand() % 8));
      replay_feed(mode, buf, n);
    }
    for (size_t s = 0; s < c->nsplices; s++)
      for (int rep = 0; rep < c->splice_reps; rep++) {
        size_t at = n ? next_rand() % n : 0, l = strlen(c->splices[s]);
        uint8_t *sp = malloc(n + l);
        if (!sp) exit(2);
        memcpy(sp, seed, at);
        memcpy(sp + at, c->splices[s], l);
        memcpy(sp + at + l, seed + at, n - at);
        replay_feed(mode, sp, n + l);
        free(sp);
      }
  }
  free(buf);
}

int replay_main(const replay_cfg *c, int argc, char **argv) {
  if (c->need_files && argc < 2) {
    fprintf(stderr, "usage: %s FILE...\n", argv[0]);
    return 2;
  }
  rng = c->rng_seed;
  uint8_t *seed = malloc(c->max_seed);
  if (!seed) return 2;
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      fprintf(stderr, "cannot open %s\n", argv[i]);
      free(seed);
      return 1;
    }
    size_t n = fread(seed, 1, c->max_seed, f);
    fclose(f);
    mutate_all(c, seed, n);
  }
  free(seed);
  if (c->extra) c->extra();
  printf("replayed %ld inputs without a crash\n", runs);
  return 0;
}
