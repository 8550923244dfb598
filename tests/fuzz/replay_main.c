/* SPDX-License-Identifier: Apache-2.0 */
/* The fuzz target without libFuzzer: replays seed files, then thousands of
 * deterministic mutations of them (truncations, byte flips, spliced tokens,
 * deep nesting), through LLVMFuzzerTestOneInput in every mode. Any crash,
 * hang (ctest timeout) or unknown status fails the test.
 * usage: fuzz_config_replay FILE... */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)rng;
}

static long runs;
static void feed(uint8_t mode, const uint8_t *data, size_t n) {
  uint8_t *buf = malloc(n + 1);
  if (!buf) exit(2);
  buf[0] = mode;
  memcpy(buf + 1, data, n);
  LLVMFuzzerTestOneInput(buf, n + 1);
  free(buf);
  runs++;
}

static const char *const splices[] = {
    "\n  fsdp_sharding_strategy: 9\n", ": [", "{{{{", "\"auto\"", "&a [*a]", "\t", "\xff\xfe", "1e400", "-1",
    "\n---\n", "zero_optimization", "\\u0000", ": !!binary AA==", "\n  stage: auto\n", "?", "%YAML 1.1\n",
    "99999999999999999999", "NaN", ",]", "\"\\0\"", "deepspeed_config_file: /dev/null\n",
};

static void mutate_all(const uint8_t *seed, size_t n) {
  uint8_t *buf = malloc(n + 64);
  if (!buf) exit(2);
  for (uint8_t mode = 0; mode < 3; mode++) {
    feed(mode, seed, n);
    for (size_t cut = 0; cut < n; cut += 1 + n / 40) feed(mode, seed, cut); /* truncations */
    for (int k = 0; k < 60; k++) {                                          /* byte flips */
      memcpy(buf, seed, n);
      for (int f = 0; f < 1 + k % 4 && n; f++) buf[next_rand() % n] ^= (uint8_t)(1u << (next_rand() % 8));
      feed(mode, buf, n);
    }
    for (size_t s = 0; s < sizeof splices / sizeof splices[0]; s++) { /* spliced tokens */
      size_t at = n ? next_rand() % n : 0, l = strlen(splices[s]);
      uint8_t *sp = malloc(n + l);
      if (!sp) exit(2);
      memcpy(sp, seed, at);
      memcpy(sp + at, splices[s], l);
      memcpy(sp + at + l, seed + at, n - at);
      feed(mode, sp, n + l);
      free(sp);
    }
  }
  free(buf);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE...\n", argv[0]);
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) {
      fprintf(stderr, "cannot open %s\n", argv[i]);
      return 1;
    }
    static uint8_t seed[1 << 16];
    size_t n = fread(seed, 1, sizeof seed, f);
    fclose(f);
    mutate_all(seed, n);
  }
  /* Pathological shapes no seed has. */
  size_t big = 200000;
  uint8_t *deep = malloc(big);
  if (!deep) return 2;
  memset(deep, '[', big);
  feed(0, deep, big);
  feed(1, deep, big);
  memset(deep, '{', big);
  feed(1, deep, big);
  for (size_t i = 0; i < big; i++) deep[i] = (uint8_t)("a: 1\n"[i % 5]);
  feed(0, deep, big);
  free(deep);
  printf("replayed %ld inputs without a crash\n", runs);
  return 0;
}
