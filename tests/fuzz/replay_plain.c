/* SPDX-License-Identifier: Apache-2.0 */
/* Replay driver for the file-reader fuzz targets without libFuzzer: each
 * seed file as is, truncated, with bytes flipped, with tokens spliced in
 * (duplicate keys, deep nesting, huge numbers, YAML-isms), plus a few
 * pathological inputs no seed has. Any crash, hang (ctest timeout) or
 * unknown status fails the test. usage: REPLAY FILE... */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

static long runs;
static void feed(const uint8_t *d, size_t n) {
  uint8_t *copy = malloc(n + 1); /* exact size: ASan sees any overread */
  if (!copy) exit(2);
  memcpy(copy, d, n);
  LLVMFuzzerTestOneInput(copy, n);
  free(copy);
  runs++;
}

static const char *const splices[] = {
    "\"__metadata__\":{\"a\":\"b\"},", "\"__metadata__\":[],", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "99999999999999999999",
    "-1", "1e999", "NaN", ",}", "a: 1\n", "\n---\n", "!!str ", "\"\\u0000\"", "\"shape\":[4294967296,4294967296],",
    "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", "\"loss_scale\":-1,", "\"name\":\"x\",", "\xff\xfe",
};

static void mutate_all(const uint8_t *seed, size_t n) {
  uint8_t *buf = malloc(n + 64);
  if (!buf) exit(2);
  feed(seed, n);
  for (size_t cut = 0; cut < n; cut += 1 + n / 60) feed(seed, cut);
  for (int k = 0; k < 200; k++) {
    memcpy(buf, seed, n);
    for (int f = 0; f < 1 + k % 4 && n; f++) buf[next_rand() % n] ^= (uint8_t)(1u << (next_rand() % 8));
    feed(buf, n);
  }
  for (size_t s = 0; s < sizeof splices / sizeof splices[0]; s++)
    for (int rep = 0; rep < 4; rep++) {
      size_t at = n ? next_rand() % n : 0, l = strlen(splices[s]);
      uint8_t *sp = malloc(n + l);
      if (!sp) exit(2);
      memcpy(sp, seed, at);
      memcpy(sp + at, splices[s], l);
      memcpy(sp + at + l, seed + at, n - at);
      feed(sp, n + l);
      free(sp);
    }
  free(buf);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      fprintf(stderr, "cannot open %s\n", argv[i]);
      return 1;
    }
    static uint8_t seed[1 << 20];
    size_t n = fread(seed, 1, sizeof seed, f);
    fclose(f);
    mutate_all(seed, n);
  }
  size_t big = 300000;
  uint8_t *deep = malloc(big);
  if (!deep) return 2;
  memset(deep, '[', big);
  feed(deep, big);
  memset(deep, '{', big);
  feed(deep, big);
  /* A safetensors length prefix in front of a deep header. */
  uint64_t hl = big - 8;
  for (int k = 0; k < 8; k++) deep[k] = (uint8_t)(hl >> (8 * k));
  deep[8] = '{';
  feed(deep, big);
  free(deep);
  printf("replayed %ld inputs without a crash\n", runs);
  return 0;
}
