/* SPDX-License-Identifier: Apache-2.0 */
/* The config fuzz target without libFuzzer: replays seed files, then
 * thousands of deterministic mutations of them (truncations, byte flips,
 * spliced tokens, deep nesting; replay.c), through LLVMFuzzerTestOneInput in
 * every mode (the first byte picks YAML, DeepSpeed JSON or flags).
 * usage: fuzz_config_replay FILE... */
#include "replay.h"

static const char *const splices[] = {
    "\n  fsdp_sharding_strategy: 9\n", ": [", "{{{{", "\"auto\"", "&a [*a]", "\t", "\xff\xfe", "1e400", "-1",
    "\n---\n", "zero_optimization", "\\u0000", ": !!binary AA==", "\n  stage: auto\n", "?", "%YAML 1.1\n",
    "99999999999999999999", "NaN", ",]", "\"\\0\"", "deepspeed_config_file: /dev/null\n",
};

#define BIG 200000

/* Pathological shapes no seed has. */
static void pathological(void) {
  replay_feed_repeat(0, "[", BIG);
  replay_feed_repeat(1, "[", BIG);
  replay_feed_repeat(1, "{", BIG);
  replay_feed_repeat(0, "a: 1\n", BIG);
}

int main(int argc, char **argv) {
  const replay_cfg cfg = {
      .rng_seed = 0x9e3779b97f4a7c15ull,
      .modes = 3,
      .cut_parts = 40,
      .flips = 60,
      .splices = splices,
      .nsplices = sizeof splices / sizeof splices[0],
      .splice_reps = 1,
      .max_seed = (size_t)1 << 16,
      .need_files = 1,
      .extra = pathological,
  };
  return replay_main(&cfg, argc, argv);
}
