/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration: accelerate-style YAML (and DeepSpeed JSON) files, the C
 * plugin structs that mirror Accelerate's FullyShardedDataParallelPlugin and
 * DeepSpeedPlugin, and `accelerate launch`-style command-line overrides, all
 * turned into one shardrt_plan. */
#ifndef SHARDRT_CONFIG_H
#define SHARDRT_CONFIG_H

#include "shardrt/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Loads an accelerate config file (.yaml/.yml, or .json) into plan's input
 * fields (plan must have been set by shardrt_plan_default first). Unknown
 * keys are errors naming file:line:column and the closest valid key.
 * Does not resolve the plan. */
SHARDRT_API shardrt_status shardrt_config_load(const char *path, shardrt_plan *plan);

/* The one call every program makes: reads `--config_file FILE` (if present)
 * and every accelerate-launch override flag from argv (`--flag value` or
 * `--flag=value`), applies file then flags (flags win) then the
 * SHARDRT_CONFIG_FILE / SHARDRT_OVERRIDES environment set by `shardrt
 * launch`, and REMOVES the consumed arguments from argv, updating *argc, so
 * the program parses what is left. The plan is reset to defaults first.
 * Does not resolve the plan. */
SHARDRT_API shardrt_status shardrt_plan_from_args(int *argc, char **argv, shardrt_plan *plan);

/* Fills the values a config left "auto" that depend on the program:
 * hidden_size (bucket and persistence sizes), micro_batch (per rank) and
 * world_size (train_batch_size). Pass 0 for unknown. */
SHARDRT_API shardrt_status shardrt_plan_set_program_hints(shardrt_plan *plan, int64_t hidden_size,
                                                          int64_t micro_batch, int world_size);

#ifdef __cplusplus
}
#endif
#endif
