/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of the configuration layer. Every source of settings (YAML keys,
 * DeepSpeed JSON keys, command-line flags, the launch environment) writes
 * into one shardrt__cfg through shardrt__cfg_set(), which records where each
 * value came from so cross-key errors can point at both ends. The cfg holds
 * the two public plugin structs; shardrt__cfg_finish() converts them with the
 * same functions a program calling the plugin API uses. */
#ifndef SHARDRT_CONFIG_INTERNAL_H
#define SHARDRT_CONFIG_INTERNAL_H

#include <stdio.h>

#include "shardrt/config.h"
#include "src/core/error.h"

/* One id per settable knob. The order groups them by section; the section
 * of a field decides which distributed_type it belongs to. */
typedef enum shardrt__field {
  /* top level and libshardrt extras */
  SHARDRT__F_DIST = 0, SHARDRT__F_MP, SHARDRT__F_FP16_LEGACY, SHARDRT__F_NUM_PROC, SHARDRT__F_NUM_MACH,
  SHARDRT__F_MACH_RANK, SHARDRT__F_IP, SHARDRT__F_PORT, SHARDRT__F_GPU_IDS, SHARDRT__F_USE_CPU,
  SHARDRT__F_HOSTFILE, SHARDRT__F_PARAM_DTYPE, SHARDRT__F_REDUCE_DTYPE, SHARDRT__F_ACCUM_MODE,
  SHARDRT__F_SHARD_GROUP, SHARDRT__F_COMPUTE_ENV,
  /* fsdp_config */
  SHARDRT__F_FSDP_VERSION, SHARDRT__F_STRATEGY, SHARDRT__F_RESHARD, SHARDRT__F_OFFLOAD, SHARDRT__F_WRAP,
  SHARDRT__F_CLS, SHARDRT__F_MIN_PARAMS, SHARDRT__F_BPREFETCH, SHARDRT__F_FPREFETCH, SHARDRT__F_SDT,
  SHARDRT__F_ORIG_PARAMS, SHARDRT__F_RAM_EFFICIENT, SHARDRT__F_SYNC, SHARDRT__F_ACT_CKPT, SHARDRT__F_IGNORED,
  /* deepspeed_config (YAML) and DeepSpeed JSON */
  SHARDRT__F_ZERO_STAGE, SHARDRT__F_OPT_DEV, SHARDRT__F_PARAM_DEV, SHARDRT__F_OPT_NVME, SHARDRT__F_PARAM_NVME,
  SHARDRT__F_ACCUM, SHARDRT__F_CLIP, SHARDRT__F_Z3_INIT, SHARDRT__F_Z3_SAVE, SHARDRT__F_DS_FILE,
  SHARDRT__F_PREFETCH_BUCKET, SHARDRT__F_PERSISTENCE, SHARDRT__F_MAX_LIVE, SHARDRT__F_MAX_REUSE,
  SHARDRT__F_REDUCE_BUCKET, SHARDRT__F_AG_BUCKET, SHARDRT__F_OVERLAP, SHARDRT__F_CONTIGUOUS, SHARDRT__F_HPZ,
  SHARDRT__F_FP16_EN, SHARDRT__F_BF16_EN, SHARDRT__F_LOSS_SCALE, SHARDRT__F_SCALE_POWER,
  SHARDRT__F_SCALE_WINDOW, SHARDRT__F_HYSTERESIS, SHARDRT__F_MIN_SCALE, SHARDRT__F_MICRO_BATCH,
  SHARDRT__F_TRAIN_BATCH,
  /* DeepSpeed JSON "optimizer" and "scheduler" (cfg_optim.c) */
  SHARDRT__F_OPTIM_TYPE, SHARDRT__F_OPT_LR, SHARDRT__F_OPT_BETAS, SHARDRT__F_OPT_EPS, SHARDRT__F_OPT_WD,
  SHARDRT__F_OPT_MOMENTUM, SHARDRT__F_OPT_ADAM_W_MODE, SHARDRT__F_OPT_BIAS_CORRECTION, SHARDRT__F_OPT_AMSGRAD,
  SHARDRT__F_OPT_NESTEROV, SHARDRT__F_OPT_DAMPENING, SHARDRT__F_OPT_MAX_GRAD_NORM,
  SHARDRT__F_SCHED_TYPE, SHARDRT__F_SCHED_MIN_LR, SHARDRT__F_SCHED_MAX_LR, SHARDRT__F_SCHED_WARMUP_STEPS,
  SHARDRT__F_SCHED_WARMUP_TYPE, SHARDRT__F_SCHED_TOTAL, SHARDRT__F_SCHED_MIN_RATIO, SHARDRT__F_SCHED_COS_MIN_RATIO,
  SHARDRT__F_COUNT_
} shardrt__field;

#define SHARDRT__F_FSDP_FIRST SHARDRT__F_FSDP_VERSION
#define SHARDRT__F_DS_FIRST SHARDRT__F_ZERO_STAGE

typedef enum shardrt__from {
  SHARDRT__FROM_NONE = 0,
  SHARDRT__FROM_YAML,
  SHARDRT__FROM_JSON,
  SHARDRT__FROM_FLAG,
} shardrt__from;

#define SHARDRT__WHERE_MAX 512

/* A value to set, as text, with where it was written. */
typedef struct shardrt__val {
  const char *text;  /* NUL-terminated */
  bool plain;        /* an unquoted YAML scalar (YAML 1.1 booleans) or a flag */
  const char *where; /* "file:line:col" or "command line" or "SHARDRT_OVERRIDES" */
  const char *key;   /* key path or flag for messages: "fsdp_config.fsdp_version", "--zero_stage" */
  shardrt__from from;
} shardrt__val;

typedef struct shardrt__cfg {
  shardrt_plan plan; /* top-level settings land here directly */
  shardrt_fsdp_plugin fsdp;
  shardrt_deepspeed_plugin ds;
  unsigned char from[SHARDRT__F_COUNT_];
  bool is_auto[SHARDRT__F_COUNT_];
  char where[SHARDRT__F_COUNT_][SHARDRT__WHERE_MAX]; /* "where: key = value" */
  char ds_file_abs[SHARDRT_PATH_MAX];                 /* resolved deepspeed_config_file */
  char ds_tried[2 * SHARDRT_PATH_MAX + 128];          /* places looked for it, when none had it */
  bool saw_dist;                                      /* distributed_type was given */
  bool fp16_legacy;                                   /* legacy top-level `fp16: true` */
  char source[SHARDRT_PATH_MAX];                      /* the config file, for messages */
  shardrt_plan_optimizer optim;                       /* DeepSpeed JSON "optimizer" (cfg_optim.c) */
  shardrt_plan_scheduler sched;                       /* DeepSpeed JSON "scheduler" */
  bool optim_adam;                                    /* type "Adam" (not "AdamW"): adam_w_mode applies */
  bool adam_w_mode;                                   /* optimizer.params.adam_w_mode */
  /* accelerate's parallelism_config sizes (0 = not given); cfg_finish maps
   * them onto a plan or refuses them. */
  int pc_dp_replicate, pc_dp_shard, pc_tp, pc_cp, pc_sp;
  char pc_where[SHARDRT__WHERE_MAX];
} shardrt__cfg;

/* ---- cfg_set.c ---- */
void shardrt__cfg_init(shardrt__cfg *c, const shardrt_plan *base);
/* Parses v for field f and stores it, recording the origin. A flag that
 * contradicts an explicit DeepSpeed JSON value is an error; one that meets
 * a JSON "auto" fills it. */
shardrt_status shardrt__cfg_set(shardrt__cfg *c, shardrt__field f, const shardrt__val *v);
/* "<where>: <key>: invalid value '<text>' (allowed: ...)[; did you mean ...]". */
shardrt_status shardrt__cfg_invalid(const shardrt__val *v, const char *allowed, const char *suggest);
/* Cross-key checks, then the plugin conversions into *out. */
shardrt_status shardrt__cfg_finish(shardrt__cfg *c, shardrt_plan *out);

/* ---- cfg_optim.c: the DeepSpeed JSON "optimizer" and "scheduler" ---- */
/* Parses v for one of the SHARDRT__F_OPTIM_* / SHARDRT__F_SCHED_* fields. */
shardrt_status shardrt__cfg_set_optim(shardrt__cfg *c, shardrt__field f, const shardrt__val *v);
/* Checks the sections as a whole (parameters of the named type, Adam's L2
 * mode, DeepSpeed's defaults) and puts them into plan. Leaves plan's
 * sections alone when the JSON had none. */
shardrt_status shardrt__cfg_optim_finish(const shardrt__cfg *c, shardrt_plan *plan);

/* ---- plugin.c / cfg_finish.c ---- */
/* The DeepSpeed conversion proper (p->hf_ds_config is not read here). */
shardrt_status shardrt__plan_from_ds(const shardrt_deepspeed_plugin *p, shardrt_plan *plan);
shardrt_status shardrt__parse_wrap_classes(const char *list, shardrt_plan *plan);

/* ---- cfg_yaml.c: accelerate YAML and DeepSpeed JSON through libyaml ---- */
/* Loads a file (YAML, or DeepSpeed JSON when the name ends in .json). */
shardrt_status shardrt__cfg_load_file(shardrt__cfg *c, const char *path);
/* Loads a DeepSpeed JSON whatever its name (deepspeed_config_file). */
shardrt_status shardrt__cfg_load_ds_json(shardrt__cfg *c, const char *path);
/* Same from memory; name is used in messages and its folder resolves
 * relative paths. json selects the DeepSpeed JSON schema. */
shardrt_status shardrt__cfg_load_buffer(shardrt__cfg *c, const char *name, const char *data, size_t len,
                                        bool json);

/* ---- cfg_args.c ---- */
/* Flag lookup for `shardrt launch` (name without the dashes, nothing after
 * '='): how the flag takes its value, or SHARDRT__FLAG_UNKNOWN. */
enum {
  SHARDRT__FLAG_UNKNOWN = -1,
  SHARDRT__FLAG_SWITCH = 0,    /* --use_fsdp: never a value */
  SHARDRT__FLAG_VALUE = 1,     /* --zero_stage 3 */
  SHARDRT__FLAG_BOOL = 2,      /* --fsdp_offload_params [true|false]: a value only if it reads as a bool */
};
int shardrt__config_flag_kind(const char *name);
/* True for names that are meant as config flags even when unknown
 * (fsdp_*, zero*, offload_*, deepspeed_*): a typo there is an error. */
bool shardrt__config_flag_reserved(const char *name);
/* Encodes/decodes the SHARDRT_OVERRIDES value: space-separated
 * "--flag=value" tokens with '%', space and control bytes percent-encoded. */
shardrt_status shardrt__overrides_append(char *buf, size_t cap, const char *flag, const char *value);

/* ---- cfg_value.c: scalar parsing, names, suggestions, warnings ---- */
bool shardrt__parse_bool(const char *s, bool *out);
bool shardrt__parse_i64(const char *s, int64_t *out); /* exact integers, 1e8 notation too */
bool shardrt__parse_double(const char *s, double *out);
bool shardrt__is_null(const shardrt__val *v);
/* Index of s in names (case-insensitive); with one_based also "N" = names[N-1]. -1 if none. */
int shardrt__enum_find(const char *s, const char *const *names, int n, bool one_based);
/* The name closest to s by edit distance, or NULL when nothing is close. */
const char *shardrt__closest(const char *s, const char *const *names, int n);
/* Writes "A, B, C" into buf. */
void shardrt__join(char *buf, size_t cap, const char *const *names, int n);
/* Prints "shardrt: warning: <msg>" once per distinct message (rank 0 only
 * under mpirun). */
void shardrt__warn(const char *fmt, ...) SHARDRT__PRINTF(1, 2);
/* Test hooks: capture warnings instead of printing, forget printed ones. */
typedef void (*shardrt__warn_sink)(const char *msg, void *user);
void shardrt__warn_set_sink(shardrt__warn_sink fn, void *user);
void shardrt__warn_reset(void);
/* Keys a config wrote that libshardrt accepts but does not act on, as
 * "key: why" (per thread, at most 128, duplicates dropped); `shardrt plan`
 * prints them after the plan. Reset before loading. */
#define SHARDRT__NOTE_MAX 320
void shardrt__note(const char *fmt, ...) SHARDRT__PRINTF(1, 2);
void shardrt__notes_reset(void);
int shardrt__notes_count(void);
const char *shardrt__notes_get(int i);
/* Copies src into dst (cap bytes) or fails when it does not fit. */
bool shardrt__copy_str(char *dst, size_t cap, const char *src);

#endif
