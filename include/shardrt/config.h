/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration: accelerate-style YAML (and DeepSpeed JSON) files, the C
 * plugin structs that mirror Accelerate's FullyShardedDataParallelPlugin and
 * DeepSpeedPlugin, and `accelerate launch`-style command-line overrides, all
 * turned into one shardrt_plan. docs/config.md lists every key. */
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
 * Does not resolve the plan.
 * Precisely: the file is argv's --config_file, else $SHARDRT_CONFIG_FILE;
 * then $SHARDRT_OVERRIDES is applied, then argv's flags (argv wins).
 * argv[0] is never consumed; scanning stops at a literal "--" (kept).
 * Unknown flags that look like config flags (--fsdp_*, --zero*,
 * --offload_*, --deepspeed_*) are errors with the closest valid flag;
 * any other unknown flag is left for the program. */
SHARDRT_API shardrt_status shardrt_plan_from_args(int *argc, char **argv, shardrt_plan *plan);

/* Fills the values a config left "auto" that depend on the program:
 * hidden_size (bucket and persistence sizes), micro_batch (per rank) and
 * world_size (train_batch_size). Pass 0 for unknown. */
SHARDRT_API shardrt_status shardrt_plan_set_program_hints(shardrt_plan *plan, int64_t hidden_size,
                                                          int64_t micro_batch, int world_size);

/* ---- plugin structs ----
 * Plain data mirroring Accelerate's FullyShardedDataParallelPlugin and
 * DeepSpeedPlugin, for programs that configure in code instead of a file.
 * Fill one with its _default() function, change fields, then convert. The
 * file loaders fill these same structs and go through the same conversion.
 * Top-level settings (mixed_precision, num_processes, load_dtype, …) are
 * plan fields: set them on the plan before converting. */

/* Marks a value left "auto" (DeepSpeed JSON): derived from other settings
 * or, for sizes that depend on the model, by shardrt_plan_set_program_hints. */
#define SHARDRT_AUTO (-1)

#define SHARDRT_CLS_LIST_MAX (SHARDRT_MAX_WRAP_CLASSES * SHARDRT_NAME_MAX)

typedef struct shardrt_fsdp_plugin {
  int fsdp_version;                      /* 1 or 2 (default 1) */
  shardrt_strategy sharding_strategy;    /* FULL_SHARD; NO_SHARD, SHARD_GRAD_OP, HYBRID_SHARD(_ZERO2) */
  int reshard_after_forward;             /* SHARDRT_AUTO: follow sharding_strategy; 1: FULL_SHARD,
                                            0: SHARD_GRAD_OP (FSDP2's switch; wins when set) */
  shardrt_backward_prefetch backward_prefetch; /* NO_PREFETCH (accelerate passes none unless asked) */
  bool forward_prefetch;                 /* false; not allowed with fsdp_version 2 */
  bool cpu_offload;                      /* params, grads and optimizer state on the CPU together */
  shardrt_wrap_policy auto_wrap_policy;  /* NO_WRAP */
  char transformer_cls_names_to_wrap[SHARDRT_CLS_LIST_MAX]; /* comma list, case-sensitive */
  int64_t min_num_params;                /* SIZE_BASED_WRAP threshold (1e8) */
  char ignored_modules[SHARDRT_NAME_MAX * 2]; /* regex over module names, "" = none */
  int state_dict_type;                   /* SHARDRT_AUTO: FULL (v1) / SHARDED (v2); else a
                                            shardrt_state_dict_type */
  bool use_orig_params;                  /* true (views of the original params always exist here) */
  bool sync_module_states;               /* false; forced on by cpu_ram_efficient_loading
                                            (config files: true, as `accelerate launch`) */
  bool cpu_ram_efficient_loading;        /* false: rank 0 loads, the others receive
                                            (config files: true, as `accelerate launch`) */
  bool activation_checkpointing;         /* false: recorded for the program */
} shardrt_fsdp_plugin;

typedef struct shardrt_deepspeed_plugin {
  /* A DeepSpeed JSON to read first (Accelerate's hf_ds_config). Its explicit
   * values must agree with any field set here that differs from the default;
   * fields here fill its "auto" entries. "" = none. */
  char hf_ds_config[SHARDRT_PATH_MAX];
  int zero_stage;                        /* 0..3 (default 2); SHARDRT_AUTO = 2 */
  int gradient_accumulation_steps;       /* 1; SHARDRT_AUTO = the plan's value */
  double gradient_clipping;              /* SHARDRT_AUTO (default) = the plan's value, else 1.0
                                            (accelerate fills "auto" with 1.0); 0 = none */
  shardrt_offload offload_optimizer_device; /* none | cpu | nvme */
  shardrt_offload offload_param_device;     /* stage 3 only */
  char offload_optimizer_nvme_path[SHARDRT_PATH_MAX];
  char offload_param_nvme_path[SHARDRT_PATH_MAX];
  int zero3_init_flag;                   /* SHARDRT_AUTO (default): on at stage 3 (accelerate's
                                            DeepSpeedPlugin); 1: rank 0 loads, the others receive */
  bool zero3_save_16bit_model;           /* stage 3: consolidated 16-bit weights on save */
  /* zero_optimization tuning: SHARDRT_AUTO = derived from the hidden size */
  int64_t stage3_prefetch_bucket_size;   /* 5e7 */
  int64_t stage3_param_persistence_threshold; /* 1e5 */
  int64_t stage3_max_live_parameters;    /* 1e9 */
  int64_t stage3_max_reuse_distance;     /* 1e9 */
  int64_t reduce_bucket_size;            /* 5e8 */
  int64_t allgather_bucket_size;         /* 5e8 */
  int overlap_comm;                      /* SHARDRT_AUTO (default): on at stage 3 only
                                            (DeepSpeed's DeepSpeedZeroConfig); 0 / 1 explicit */
  bool contiguous_gradients;             /* true */
  int zero_hpz_partition_size;           /* 1; > 1 at stage 3: HYBRID_SHARD with this group */
  /* precision: SHARDRT_AUTO = from the plan's mixed_precision; 0/1 explicit */
  int fp16_enabled;
  int bf16_enabled;
  double loss_scale;                     /* 0 = dynamic */
  int initial_scale_power;               /* 16 */
  int loss_scale_window;                 /* 1000 */
  int hysteresis;                        /* 2 */
  double min_loss_scale;                 /* 1 */
  int64_t train_micro_batch_size_per_gpu;/* 0 unknown; SHARDRT_AUTO = the program's */
  int64_t train_batch_size;              /* 0 unknown; SHARDRT_AUTO = micro x accum x world */
} shardrt_deepspeed_plugin;

SHARDRT_API void shardrt_fsdp_plugin_default(shardrt_fsdp_plugin *p);
SHARDRT_API void shardrt_deepspeed_plugin_default(shardrt_deepspeed_plugin *p);

/* Sets distributed_type FSDP and every FSDP field of plan from p; keeps the
 * plan's top-level fields (mixed_precision, num_processes, …). Checks the
 * cross-field rules (fsdp_version 2, wrap classes). Does not resolve. */
SHARDRT_API shardrt_status shardrt_plan_from_fsdp_plugin(const shardrt_fsdp_plugin *p, shardrt_plan *plan);

/* Sets distributed_type DEEPSPEED and the ZeRO fields of plan from p (after
 * reading p->hf_ds_config when set). The plan's mixed_precision fills
 * fp16/bf16 "auto" and must agree with explicit ones. Does not resolve. */
SHARDRT_API shardrt_status shardrt_plan_from_deepspeed_plugin(const shardrt_deepspeed_plugin *p,
                                                              shardrt_plan *plan);

#ifdef __cplusplus
}
#endif
#endif
