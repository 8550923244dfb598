/* SPDX-License-Identifier: Apache-2.0 */
/* The plan: ONE plain struct that says how a model is sharded, in which
 * precision it trains, what is offloaded, prefetched, wrapped and saved.
 * FSDP strategies and DeepSpeed ZeRO stages are points of this one struct;
 * config files, plugin structs and command-line flags all fill it, and
 * shardrt_plan_resolve() derives the rest (the single home of the precision
 * and sharding rules). */
#ifndef SHARDRT_PLAN_H
#define SHARDRT_PLAN_H

#include "shardrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum shardrt_dist_type {
  SHARDRT_DIST_NO = 0,
  SHARDRT_DIST_MULTI_CPU,
  SHARDRT_DIST_MULTI_GPU,
  SHARDRT_DIST_FSDP,
  SHARDRT_DIST_DEEPSPEED,
} shardrt_dist_type;

/* Sharding degree. Declaration order = increasing sharding. */
typedef enum shardrt_strategy {
  SHARDRT_NO_SHARD = 0,         /* ZeRO-0 / DDP: everything replicated */
  SHARDRT_ZERO1,                /* optimizer state sharded (no FSDP twin) */
  SHARDRT_SHARD_GRAD_OP,        /* ZeRO-2: grads + optimizer state sharded */
  SHARDRT_FULL_SHARD,           /* ZeRO-3: params, grads, optimizer sharded */
  SHARDRT_HYBRID_SHARD,         /* FULL_SHARD in a shard group, replicas across */
  SHARDRT_HYBRID_SHARD_ZERO2,   /* SHARD_GRAD_OP in a shard group, replicas across */
  SHARDRT_STRATEGY_COUNT_
} shardrt_strategy;

/* Which framework's precision semantics apply (the seed's table):
 * FSDP keeps flat params in the load dtype (fp32 when mixed precision is on);
 * DeepSpeed always keeps an fp32 flat copy and an fp32 optimizer. */
typedef enum shardrt_flavor { SHARDRT_FLAVOR_FSDP = 0, SHARDRT_FLAVOR_DEEPSPEED } shardrt_flavor;

typedef enum shardrt_mixed_precision {
  SHARDRT_MP_NO = 0,
  SHARDRT_MP_FP16,
  SHARDRT_MP_BF16,
} shardrt_mixed_precision;

typedef enum shardrt_offload { SHARDRT_OFFLOAD_NONE = 0, SHARDRT_OFFLOAD_CPU, SHARDRT_OFFLOAD_NVME } shardrt_offload;

typedef enum shardrt_backward_prefetch {
  SHARDRT_PREFETCH_NONE = 0, /* NO_PREFETCH */
  SHARDRT_PREFETCH_BACKWARD_PRE,
  SHARDRT_PREFETCH_BACKWARD_POST,
} shardrt_backward_prefetch;

typedef enum shardrt_wrap_policy {
  SHARDRT_WRAP_NO_WRAP = 0,       /* one root unit holds every parameter */
  SHARDRT_WRAP_TRANSFORMER_BASED, /* each module of a listed class is a unit */
  SHARDRT_WRAP_SIZE_BASED,        /* consecutive modules grouped to >= min_num_params */
} shardrt_wrap_policy;

typedef enum shardrt_state_dict_type {
  SHARDRT_FULL_STATE_DICT = 0,
  SHARDRT_LOCAL_STATE_DICT,
  SHARDRT_SHARDED_STATE_DICT,
} shardrt_state_dict_type;

/* How gradients of several micro-batches are accumulated. */
typedef enum shardrt_accum_mode {
  SHARDRT_ACCUM_AUTO = 0,  /* resolve: REDUCE_EACH for sharded grads, NO_SYNC otherwise */
  SHARDRT_ACCUM_REDUCE_EACH, /* reduce every micro-batch into sharded grads: memory-lean */
  SHARDRT_ACCUM_NO_SYNC,     /* accumulate unsharded locally, reduce once: comm-lean */
} shardrt_accum_mode;

#define SHARDRT_MAX_WRAP_CLASSES 16
#define SHARDRT_NAME_MAX 128
#define SHARDRT_PATH_MAX 1024

/* Bits of shardrt_plan.unresolved: values a config left "auto" that only the
 * program can fill (hidden size, batch size). */
enum {
  SHARDRT_UNRESOLVED_REDUCE_BUCKET = 1u << 0,
  SHARDRT_UNRESOLVED_PREFETCH_BUCKET = 1u << 1,
  SHARDRT_UNRESOLVED_PERSISTENCE = 1u << 2,
  SHARDRT_UNRESOLVED_MICRO_BATCH = 1u << 3,
  SHARDRT_UNRESOLVED_TRAIN_BATCH = 1u << 4,
};

/* The DeepSpeed JSON "optimizer" section. The FSDP flavour has none: there
 * the program's shardrt_set_optimizer() decides alone. */
typedef enum shardrt_optimizer_type {
  SHARDRT_OPTIMIZER_PROGRAM = 0, /* no section: the program's optimizer */
  SHARDRT_OPTIMIZER_ADAMW,       /* "AdamW", or "Adam" (DeepSpeed runs Adam in AdamW mode) */
  SHARDRT_OPTIMIZER_SGD,         /* "SGD" (torch.optim.SGD) */
} shardrt_optimizer_type;

/* The DeepSpeed JSON "scheduler" section (deepspeed/runtime/lr_schedules.py). */
typedef enum shardrt_lr_schedule {
  SHARDRT_SCHEDULE_NONE = 0,        /* no section: the program sets the lr (shardrt_set_lr) */
  SHARDRT_SCHEDULE_WARMUP_LR,       /* warm up from warmup_min_lr to warmup_max_lr, then hold */
  SHARDRT_SCHEDULE_WARMUP_DECAY_LR, /* ... then decay linearly to 0 at total_num_steps */
  SHARDRT_SCHEDULE_WARMUP_COSINE_LR,/* ratios of the optimizer's lr: warmup, then cosine to cos_min_ratio */
} shardrt_lr_schedule;

typedef enum shardrt_warmup_type { SHARDRT_WARMUP_LOG = 0, SHARDRT_WARMUP_LINEAR } shardrt_warmup_type;

/* Bits of shardrt_plan_optimizer.given and shardrt_plan_scheduler.given: the
 * values a config wrote. A value not given (absent, or "auto") is the
 * program's: shardrt_set_optimizer / shardrt_set_lr / shardrt_set_train_steps. */
enum {
  SHARDRT_GIVEN_LR = 1u << 0,
  SHARDRT_GIVEN_BETAS = 1u << 1,
  SHARDRT_GIVEN_EPS = 1u << 2,
  SHARDRT_GIVEN_WEIGHT_DECAY = 1u << 3,
  SHARDRT_GIVEN_MOMENTUM = 1u << 4,
  SHARDRT_GIVEN_WARMUP_MAX_LR = 1u << 5,
  SHARDRT_GIVEN_WARMUP_NUM_STEPS = 1u << 6,
  SHARDRT_GIVEN_TOTAL_NUM_STEPS = 1u << 7,
};

typedef struct shardrt_plan_optimizer {
  shardrt_optimizer_type type;
  uint32_t given;                 /* SHARDRT_GIVEN_LR .. _MOMENTUM */
  double lr;
  double beta1, beta2, eps;       /* AdamW */
  double weight_decay;            /* AdamW: decoupled; SGD: L2 added to the gradient */
  double momentum;                /* SGD */
} shardrt_plan_optimizer;

typedef struct shardrt_plan_scheduler {
  shardrt_lr_schedule type;
  uint32_t given;                 /* SHARDRT_GIVEN_WARMUP_MAX_LR .. _TOTAL_NUM_STEPS */
  double warmup_min_lr;           /* WarmupLR, WarmupDecayLR: 0 */
  double warmup_max_lr;           /* WarmupLR, WarmupDecayLR: not given = the program's lr */
  int64_t warmup_num_steps;       /* 1000 (>= 1; DeepSpeed warms up over at least 2) */
  shardrt_warmup_type warmup_type;/* log */
  int64_t total_num_steps;        /* WarmupDecayLR, WarmupCosineLR: not given = the program's */
  double warmup_min_ratio;        /* WarmupCosineLR: 0 */
  double cos_min_ratio;           /* WarmupCosineLR: 0.0001 */
} shardrt_plan_scheduler;

typedef struct shardrt_plan {
  uint32_t struct_size; /* sizeof(shardrt_plan), set by shardrt_plan_default */

  /* ---- inputs (what configs say) ---- */
  shardrt_dist_type distributed_type;
  shardrt_flavor flavor;
  shardrt_strategy strategy;
  int num_processes;  /* -1: take the launch's world size */
  int num_machines;   /* shard group = num_processes / num_machines for hybrid */
  int machine_rank;
  int shard_group_size; /* 0: derive (hybrid: per machine; else world); DS zero_hpz_partition_size */
  shardrt_mixed_precision mixed_precision;
  shardrt_dtype load_dtype;      /* dtype the program loads the model in (torch_dtype) */
  bool reduce_dtype_set;         /* reduce_dtype below was given explicitly */
  shardrt_offload offload_params;
  shardrt_offload offload_optimizer;
  char offload_param_nvme_path[SHARDRT_PATH_MAX];
  char offload_optimizer_nvme_path[SHARDRT_PATH_MAX];
  bool forward_prefetch;
  shardrt_backward_prefetch backward_prefetch;
  int64_t prefetch_bucket_size;       /* stage3_prefetch_bucket_size (elements) */
  int64_t param_persistence_threshold;/* units with fewer params stay replicated */
  int64_t max_live_parameters;        /* cap on gathered elements in flight */
  int64_t max_reuse_distance;
  int64_t reduce_bucket_size;
  int64_t allgather_bucket_size;
  bool overlap_comm;
  bool contiguous_gradients;
  shardrt_wrap_policy wrap_policy;
  int num_wrap_classes;
  char wrap_classes[SHARDRT_MAX_WRAP_CLASSES][SHARDRT_NAME_MAX];
  int64_t min_num_params;
  char ignored_modules[SHARDRT_NAME_MAX * 2]; /* regex over module names, "" = none */
  int gradient_accumulation_steps;
  shardrt_accum_mode accum_mode;
  double gradient_clipping; /* max global L2 norm; <= 0 disables */
  shardrt_state_dict_type state_dict_type;
  bool save_16bit_model;
  bool cpu_ram_efficient_loading;
  bool sync_module_states;
  bool activation_checkpointing;
  bool use_orig_params;
  int fsdp_version;
  /* fp16 dynamic loss scaling (DeepSpeed's knobs). loss_scale > 0: static. */
  double loss_scale;
  int initial_scale_power;
  int loss_scale_window;
  int hysteresis;
  double min_loss_scale;
  int64_t train_micro_batch_size_per_gpu; /* 0: unknown */
  int64_t train_batch_size;               /* 0: unknown */
  uint32_t unresolved;                    /* SHARDRT_UNRESOLVED_* bits */
  /* DeepSpeed JSON "optimizer" and "scheduler": explicit values win over the
   * program's; the runtime applies them at every shardrt_step. */
  shardrt_plan_optimizer optimizer;
  shardrt_plan_scheduler scheduler;
  /* launch settings (read by `shardrt launch`; the runtime ignores them) */
  bool use_cpu;                           /* use_cpu / --cpu: run on the CPU device */
  int main_process_port;                  /* 0: not given; exported as MASTER_PORT when > 0 */
  char main_process_ip[SHARDRT_NAME_MAX]; /* exported as MASTER_ADDR when set */
  char mpirun_hostfile[SHARDRT_PATH_MAX]; /* mpirun_config.mpirun_hostfile (multi-machine) */
  char gpu_ids[SHARDRT_NAME_MAX];         /* "all" / "" or a comma list: CUDA_VISIBLE_DEVICES */

  /* ---- derived by shardrt_plan_resolve ---- */
  int zero_stage;            /* 0..3 */
  bool shard_params;         /* params sharded between uses (stage 3) */
  bool shard_grads;          /* grads sharded (stage >= 2) */
  bool shard_optimizer;      /* optimizer state + master sharded (stage >= 1) */
  bool reshard_after_forward;/* free gathered params after forward */
  bool hybrid;               /* replicas across shard groups */
  shardrt_dtype flat_param_dtype; /* dtype of the stored flat parameter */
  shardrt_dtype compute_dtype;    /* dtype of the param/grad views in fwd/bwd */
  shardrt_dtype reduce_dtype;     /* dtype of gradient collectives */
  shardrt_dtype optimizer_dtype;  /* dtype of moments and of the update */
  bool master_weights;            /* separate optimizer-dtype copy of params */
  bool loss_scaling;              /* fp16 compute: dynamic/static loss scale */
  bool resolved;
} shardrt_plan;

/* Defaults: NO distributed type, FULL_SHARD, fp32, no offload, NO_WRAP,
 * BACKWARD_PRE prefetch, DeepSpeed bucket defaults, 1 accumulation step. */
SHARDRT_API void shardrt_plan_default(shardrt_plan *plan);

/* Derives every field in the "derived" block from the inputs and checks the
 * combination. world_size > 0 also checks the shard group divides it.
 * Idempotent. On failure returns SHARDRT_ERR_CONFIG with shardrt_last_error(). */
SHARDRT_API shardrt_status shardrt_plan_resolve(shardrt_plan *plan, int world_size);

/* Writes the plan as one JSON object (the `shardrt plan` output) or, with
 * table=true, as aligned "key  value" lines. Returns the length that was
 * (or would have been) written, snprintf-style. */
SHARDRT_API int shardrt_plan_format(const shardrt_plan *plan, bool table, char *buf, size_t len);

/* Names used in configs and in plan output. */
SHARDRT_API const char *shardrt_strategy_name(shardrt_strategy s);
SHARDRT_API bool shardrt_strategy_parse(const char *s, shardrt_strategy *out);
SHARDRT_API const char *shardrt_offload_name(shardrt_offload o);
SHARDRT_API const char *shardrt_mixed_precision_name(shardrt_mixed_precision m);
SHARDRT_API const char *shardrt_dist_type_name(shardrt_dist_type d);
SHARDRT_API const char *shardrt_wrap_policy_name(shardrt_wrap_policy w);
SHARDRT_API const char *shardrt_backward_prefetch_name(shardrt_backward_prefetch p);
SHARDRT_API const char *shardrt_state_dict_type_name(shardrt_state_dict_type t);
SHARDRT_API const char *shardrt_accum_mode_name(shardrt_accum_mode m);
SHARDRT_API const char *shardrt_optimizer_type_name(shardrt_optimizer_type t); /* "program", "AdamW", "SGD" */
SHARDRT_API const char *shardrt_lr_schedule_name(shardrt_lr_schedule s);      /* "none", "WarmupLR", ... */
SHARDRT_API const char *shardrt_warmup_type_name(shardrt_warmup_type t);      /* "log", "linear" */

#ifdef __cplusplus
}
#endif
#endif
