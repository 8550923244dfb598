/* SPDX-License-Identifier: Apache-2.0 */
/* shardrt__cfg_set: the one place that turns a textual value (from YAML,
 * JSON, a flag or the launch environment) into a typed setting, with the
 * error text every front end shares. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "src/config/config_internal.h"

void shardrt__cfg_init(shardrt__cfg *c, const shardrt_plan *base) {
  memset(c, 0, sizeof *c);
  if (base) c->plan = *base;
  else shardrt_plan_default(&c->plan);
  shardrt_fsdp_plugin_default(&c->fsdp);
  shardrt_deepspeed_plugin_default(&c->ds);
  shardrt_plan d;
  shardrt_plan_default(&d);
  c->optim = d.optimizer;
  c->sched = d.scheduler;
  c->adam_w_mode = true;
}

shardrt_status shardrt__cfg_invalid(const shardrt__val *v, const char *allowed, const char *suggest) {
  if (suggest)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: invalid value '%.100s' (allowed: %s); did you mean '%s'?",
                          v->where, v->key, v->text, allowed, suggest);
  return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: invalid value '%.100s' (allowed: %s)", v->where, v->key,
                        v->text, allowed);
}

static shardrt_status get_bool(const shardrt__val *v, bool *out) {
  if (!shardrt__parse_bool(v->text, out)) return shardrt__cfg_invalid(v, "true or false", NULL);
  return SHARDRT_OK;
}

static shardrt_status get_int(const shardrt__val *v, int64_t lo, int64_t hi, int64_t *out) {
  if (!shardrt__parse_i64(v->text, out)) {
    char allowed[96];
    snprintf(allowed, sizeof allowed, "an integer from %lld to %lld", (long long)lo, (long long)hi);
    return shardrt__cfg_invalid(v, allowed, NULL);
  }
  if (*out < lo || *out > hi)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: %lld is out of range (allowed: %lld to %lld)", v->where,
                          v->key, (long long)*out, (long long)lo, (long long)hi);
  return SHARDRT_OK;
}

static shardrt_status get_double(const shardrt__val *v, double lo, bool lo_open, double *out) {
  if (!shardrt__parse_double(v->text, out)) return shardrt__cfg_invalid(v, "a number", NULL);
  if (*out < lo || (lo_open && *out == lo))
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: %g is out of range (allowed: %s %g)", v->where, v->key,
                          *out, lo_open ? ">" : ">=", lo);
  return SHARDRT_OK;
}

/* false_index >= 0: a YAML 1.1 boolean false (unquoted NO/no/off) means
 * names[false_index] — files in the wild write `mixed_precision: no`. */
static shardrt_status get_enum(const shardrt__val *v, const char *const *names, int n, bool one_based,
                               int false_index, int *out) {
  int i = shardrt__enum_find(v->text, names, n, one_based);
  bool b;
  if (i < 0 && false_index >= 0 && shardrt__parse_bool(v->text, &b) && !b) i = false_index;
  if (i >= 0) return *out = i, SHARDRT_OK;
  char allowed[512];
  shardrt__join(allowed, sizeof allowed, names, n);
  if (one_based) {
    size_t l = strlen(allowed);
    snprintf(allowed + l, sizeof allowed - l, "; or 1-%d for those in order", n);
  }
  return shardrt__cfg_invalid(v, allowed, shardrt__closest(v->text, names, n));
}

static shardrt_status get_path(const shardrt__val *v, char *dst, size_t cap) {
  if (!v->text[0]) return shardrt__cfg_invalid(v, "a non-empty path", NULL);
  if (!shardrt__copy_str(dst, cap, v->text))
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: path is longer than %zu bytes", v->where, v->key, cap - 1);
  return SHARDRT_OK;
}

static bool field_takes_auto(shardrt__field f) {
  switch (f) {
    case SHARDRT__F_ZERO_STAGE: case SHARDRT__F_OPT_DEV: case SHARDRT__F_PARAM_DEV: case SHARDRT__F_OPT_NVME:
    case SHARDRT__F_PARAM_NVME: case SHARDRT__F_ACCUM: case SHARDRT__F_CLIP: case SHARDRT__F_Z3_SAVE:
    case SHARDRT__F_FP16_EN: case SHARDRT__F_BF16_EN: case SHARDRT__F_PREFETCH_BUCKET:
    case SHARDRT__F_PERSISTENCE: case SHARDRT__F_REDUCE_BUCKET: case SHARDRT__F_MICRO_BATCH:
    case SHARDRT__F_TRAIN_BATCH: case SHARDRT__F_OPT_LR: case SHARDRT__F_OPT_BETAS: case SHARDRT__F_OPT_EPS:
    case SHARDRT__F_OPT_WD: case SHARDRT__F_OPT_MOMENTUM: case SHARDRT__F_SCHED_MIN_LR: case SHARDRT__F_SCHED_MAX_LR:
    case SHARDRT__F_SCHED_WARMUP_STEPS: case SHARDRT__F_SCHED_TOTAL:
      return true;
    default: return false;
  }
}

/* "auto": the value stays a marker resolved later (cfg_finish, the
 * DeepSpeed conversion, or shardrt_plan_set_program_hints). */
static void set_auto(shardrt__cfg *c, shardrt__field f) {
  shardrt_deepspeed_plugin *d = &c->ds;
  switch (f) {
    case SHARDRT__F_ZERO_STAGE: d->zero_stage = SHARDRT_AUTO; break;
    case SHARDRT__F_OPT_DEV: d->offload_optimizer_device = SHARDRT_OFFLOAD_NONE; break;
    case SHARDRT__F_PARAM_DEV: d->offload_param_device = SHARDRT_OFFLOAD_NONE; break;
    case SHARDRT__F_OPT_NVME: d->offload_optimizer_nvme_path[0] = '\0'; break;
    case SHARDRT__F_PARAM_NVME: d->offload_param_nvme_path[0] = '\0'; break;
    case SHARDRT__F_ACCUM: d->gradient_accumulation_steps = SHARDRT_AUTO; break;
    case SHARDRT__F_CLIP: d->gradient_clipping = SHARDRT_AUTO; break;
    case SHARDRT__F_Z3_SAVE: d->zero3_save_16bit_model = false; break;
    case SHARDRT__F_FP16_EN: d->fp16_enabled = SHARDRT_AUTO; break;
    case SHARDRT__F_BF16_EN: d->bf16_enabled = SHARDRT_AUTO; break;
    case SHARDRT__F_PREFETCH_BUCKET: d->stage3_prefetch_bucket_size = SHARDRT_AUTO; break;
    case SHARDRT__F_PERSISTENCE: d->stage3_param_persistence_threshold = SHARDRT_AUTO; break;
    case SHARDRT__F_REDUCE_BUCKET: d->reduce_bucket_size = SHARDRT_AUTO; break;
    case SHARDRT__F_MICRO_BATCH: d->train_micro_batch_size_per_gpu = SHARDRT_AUTO; break;
    case SHARDRT__F_TRAIN_BATCH: d->train_batch_size = SHARDRT_AUTO; break;
    default: break;
  }
}

static const char *const dist_names[] = {"NO", "MULTI_CPU", "MULTI_GPU", "FSDP", "DEEPSPEED"};
static const char *const dist_foreign[] = {"XLA", "TPU", "MEGATRON_LM", "MULTI_NPU", "MULTI_XPU", "MULTI_MLU",
                                           "MULTI_SDAA", "MULTI_MUSA", "MULTI_HPU", "MULTI_NEURON"};
static const char *const mp_names[] = {"no", "fp16", "bf16"};
static const char *const fsdp_strategy_names[] = {"FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD",
                                                  "HYBRID_SHARD_ZERO2"};
static const shardrt_strategy fsdp_strategy_values[] = {SHARDRT_FULL_SHARD, SHARDRT_SHARD_GRAD_OP,
                                                        SHARDRT_NO_SHARD, SHARDRT_HYBRID_SHARD,
                                                        SHARDRT_HYBRID_SHARD_ZERO2};
static const char *const prefetch_names[] = {"BACKWARD_PRE", "BACKWARD_POST", "NO_PREFETCH"};
static const shardrt_backward_prefetch prefetch_values[] = {SHARDRT_PREFETCH_BACKWARD_PRE,
                                                            SHARDRT_PREFETCH_BACKWARD_POST, SHARDRT_PREFETCH_NONE};
static const char *const wrap_names[] = {"TRANSFORMER_BASED_WRAP", "SIZE_BASED_WRAP", "NO_WRAP"};
static const shardrt_wrap_policy wrap_values[] = {SHARDRT_WRAP_TRANSFORMER_BASED, SHARDRT_WRAP_SIZE_BASED,
                                                  SHARDRT_WRAP_NO_WRAP};
static const char *const sdt_names[] = {"FULL_STATE_DICT", "LOCAL_STATE_DICT", "SHARDED_STATE_DICT"};
static const char *const offload_names[] = {"none", "cpu", "nvme"};
static const char *const dtype_names[] = {"fp32", "bf16", "fp16"};
static const char *const accum_names[] = {"auto", "reduce_each", "no_sync"};

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static shardrt_status get_dtype(const shardrt__val *v, shardrt_dtype *out) {
  if (shardrt_dtype_parse(v->text, out)) return SHARDRT_OK;
  return shardrt__cfg_invalid(v, "fp32, bf16, fp16", shardrt__closest(v->text, dtype_names, N(dtype_names)));
}

static shardrt_status check_gpu_ids(const shardrt__val *v) {
  if (strcasecmp(v->text, "all") == 0) return SHARDRT_OK;
  const char *p = v->text;
  bool digit = false;
  for (; *p; p++) {
    if (*p >= '0' && *p <= '9') digit = true;
    else if (*p == ',' && digit) digit = false;
    else if (*p != ' ') return shardrt__cfg_invalid(v, "all, or a comma list of GPU indices such as 0,1", NULL);
  }
  if (!digit) return shardrt__cfg_invalid(v, "all, or a comma list of GPU indices such as 0,1", NULL);
  return SHARDRT_OK;
}

static shardrt_status set_value(shardrt__cfg *c, shardrt__field f, const shardrt__val *v) {
  shardrt_plan *p = &c->plan;
  shardrt_fsdp_plugin *fs = &c->fsdp;
  shardrt_deepspeed_plugin *d = &c->ds;
  int64_t i = 0;
  double x = 0;
  bool b = false;
  int e = 0;
  switch (f) {
    case SHARDRT__F_DIST: {
      int k = shardrt__enum_find(v->text, dist_foreign, N(dist_foreign), false);
      if (k >= 0)
        return shardrt__error(SHARDRT_ERR_CONFIG,
                              "%s: %s: %s is not supported by libshardrt (allowed: NO, MULTI_CPU, MULTI_GPU, "
                              "FSDP, DEEPSPEED)", v->where, v->key, dist_foreign[k]);
      SHARDRT__CHECK(get_enum(v, dist_names, N(dist_names), false, 0, &e));
      p->distributed_type = (shardrt_dist_type)e;
      c->saw_dist = true;
      return SHARDRT_OK;
    }
    case SHARDRT__F_MP:
      if (strcasecmp(v->text, "fp8") == 0)
        return shardrt__error(SHARDRT_ERR_CONFIG,
                              "%s: %s: fp8 is not supported by libshardrt, which has no fp8 kernels "
                              "(allowed: no, fp16, bf16; bf16 is the closest)", v->where, v->key);
      SHARDRT__CHECK(get_enum(v, mp_names, N(mp_names), false, 0, &e));
      p->mixed_precision = (shardrt_mixed_precision)e;
      return SHARDRT_OK;
    case SHARDRT__F_FP16_LEGACY: SHARDRT__CHECK(get_bool(v, &c->fp16_legacy)); return SHARDRT_OK;
    case SHARDRT__F_NUM_PROC:
      SHARDRT__CHECK(get_int(v, -1, 1 << 20, &i));
      if (i == 0) return shardrt__cfg_invalid(v, "-1 (take the launch's world size) or a count >= 1", NULL);
      p->num_processes = (int)i;
      return SHARDRT_OK;
    case SHARDRT__F_NUM_MACH: SHARDRT__CHECK(get_int(v, 1, 1 << 16, &i)); p->num_machines = (int)i; return SHARDRT_OK;
    case SHARDRT__F_MACH_RANK: SHARDRT__CHECK(get_int(v, 0, 1 << 16, &i)); p->machine_rank = (int)i; return SHARDRT_OK;
    case SHARDRT__F_IP:
      if (!shardrt__copy_str(p->main_process_ip, sizeof p->main_process_ip, v->text))
        return shardrt__cfg_invalid(v, "a host name or address shorter than 128 bytes", NULL);
      return SHARDRT_OK;
    case SHARDRT__F_PORT: SHARDRT__CHECK(get_int(v, 0, 65535, &i)); p->main_process_port = (int)i; return SHARDRT_OK;
    case SHARDRT__F_GPU_IDS:
      SHARDRT__CHECK(check_gpu_ids(v));
      if (strlen(v->text) >= sizeof p->gpu_ids) return shardrt__cfg_invalid(v, "a list shorter than 128 bytes", NULL);
      { /* stored without spaces: it becomes CUDA_VISIBLE_DEVICES */
        size_t o = 0;
        for (const char *q = v->text; *q; q++)
          if (*q != ' ') p->gpu_ids[o++] = *q;
        p->gpu_ids[o] = '\0';
      }
      return SHARDRT_OK;
    case SHARDRT__F_USE_CPU: return get_bool(v, &p->use_cpu);
    case SHARDRT__F_HOSTFILE: return get_path(v, p->mpirun_hostfile, sizeof p->mpirun_hostfile);
    case SHARDRT__F_PARAM_DTYPE: return get_dtype(v, &p->load_dtype);
    case SHARDRT__F_REDUCE_DTYPE:
      SHARDRT__CHECK(get_dtype(v, &p->reduce_dtype));
      p->reduce_dtype_set = true;
      return SHARDRT_OK;
    case SHARDRT__F_ACCUM_MODE:
      SHARDRT__CHECK(get_enum(v, accum_names, N(accum_names), false, -1, &e));
      p->accum_mode = (shardrt_accum_mode)e;
      return SHARDRT_OK;
    case SHARDRT__F_SHARD_GROUP:
      SHARDRT__CHECK(get_int(v, 0, 1 << 20, &i));
      p->shard_group_size = (int)i;
      return SHARDRT_OK;
    case SHARDRT__F_COMPUTE_ENV:
      if (strcmp(v->text, "LOCAL_MACHINE") != 0)
        return shardrt__cfg_invalid(v, "LOCAL_MACHINE (libshardrt does not launch on AMAZON_SAGEMAKER)", NULL);
      return SHARDRT_OK;

    case SHARDRT__F_FSDP_VERSION: SHARDRT__CHECK(get_int(v, 1, 2, &i)); fs->fsdp_version = (int)i; return SHARDRT_OK;
    case SHARDRT__F_STRATEGY:
      SHARDRT__CHECK(get_enum(v, fsdp_strategy_names, N(fsdp_strategy_names), true, -1, &e));
      fs->sharding_strategy = fsdp_strategy_values[e];
      return SHARDRT_OK;
    case SHARDRT__F_RESHARD: {
      /* FSDP2 writes a bool; accelerate's questionnaire writes an FSDP1
       * strategy name here. "1" reads the same either way (FULL_SHARD). */
      if (shardrt__parse_bool(v->text, &b) && strcmp(v->text, "1") != 0) {
        fs->reshard_after_forward = b;
        return SHARDRT_OK;
      }
      int k = shardrt__enum_find(v->text, fsdp_strategy_names, N(fsdp_strategy_names), true);
      if (k < 0) {
        static const char *const forms[] = {"true", "false", "FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD",
                                            "HYBRID_SHARD", "HYBRID_SHARD_ZERO2"};
        return shardrt__cfg_invalid(v, "true or false (fsdp_version 2), or a sharding strategy name",
                       shardrt__closest(v->text, forms, N(forms)));
      }
      if (c->from[SHARDRT__F_STRATEGY] == SHARDRT__FROM_NONE) fs->sharding_strategy = fsdp_strategy_values[k];
      else if (fs->sharding_strategy != fsdp_strategy_values[k])
        shardrt__warn("%s: %s: %s differs from fsdp_sharding_strategy %s, which wins", v->where, v->key,
                      fsdp_strategy_names[k], shardrt_strategy_name(fs->sharding_strategy));
      return SHARDRT_OK;
    }
    case SHARDRT__F_OFFLOAD: return get_bool(v, &fs->cpu_offload);
    case SHARDRT__F_WRAP:
      SHARDRT__CHECK(get_enum(v, wrap_names, N(wrap_names), false, 2, &e));
      fs->auto_wrap_policy = wrap_values[e];
      return SHARDRT_OK;
    case SHARDRT__F_CLS:
      if (!shardrt__copy_str(fs->transformer_cls_names_to_wrap, sizeof fs->transformer_cls_names_to_wrap, v->text))
        return shardrt__cfg_invalid(v, "a comma list of class names shorter than 2048 bytes", NULL);
      return SHARDRT_OK;
    case SHARDRT__F_MIN_PARAMS: return get_int(v, 0, INT64_MAX / 2, &fs->min_num_params);
    case SHARDRT__F_BPREFETCH:
      SHARDRT__CHECK(get_enum(v, prefetch_names, N(prefetch_names), true, 2, &e));
      fs->backward_prefetch = prefetch_values[e];
      return SHARDRT_OK;
    case SHARDRT__F_FPREFETCH: return get_bool(v, &fs->forward_prefetch);
    case SHARDRT__F_SDT:
      SHARDRT__CHECK(get_enum(v, sdt_names, N(sdt_names), true, -1, &e));
      fs->state_dict_type = e;
      return SHARDRT_OK;
    case SHARDRT__F_ORIG_PARAMS: return get_bool(v, &fs->use_orig_params);
    case SHARDRT__F_RAM_EFFICIENT: return get_bool(v, &fs->cpu_ram_efficient_loading);
    case SHARDRT__F_SYNC: return get_bool(v, &fs->sync_module_states);
    case SHARDRT__F_ACT_CKPT: return get_bool(v, &fs->activation_checkpointing);
    case SHARDRT__F_IGNORED:
      if (!shardrt__copy_str(fs->ignored_modules, sizeof fs->ignored_modules, v->text))
        return shardrt__cfg_invalid(v, "a regular expression shorter than 256 bytes", NULL);
      return SHARDRT_OK;

    case SHARDRT__F_ZERO_STAGE: SHARDRT__CHECK(get_int(v, 0, 3, &i)); d->zero_stage = (int)i; return SHARDRT_OK;
    case SHARDRT__F_OPT_DEV:
    case SHARDRT__F_PARAM_DEV:
      SHARDRT__CHECK(get_enum(v, offload_names, N(offload_names), false, 0, &e));
      *(f == SHARDRT__F_OPT_DEV ? &d->offload_optimizer_device : &d->offload_param_device) = (shardrt_offload)e;
      return SHARDRT_OK;
    case SHARDRT__F_OPT_NVME:
      return get_path(v, d->offload_optimizer_nvme_path, sizeof d->offload_optimizer_nvme_path);
    case SHARDRT__F_PARAM_NVME: return get_path(v, d->offload_param_nvme_path, sizeof d->offload_param_nvme_path);
    case SHARDRT__F_ACCUM:
      SHARDRT__CHECK(get_int(v, 1, 1 << 30, &i));
      d->gradient_accumulation_steps = (int)i;
      return SHARDRT_OK;
    case SHARDRT__F_CLIP: return get_double(v, 0, false, &d->gradient_clipping);
    case SHARDRT__F_Z3_INIT: SHARDRT__CHECK(get_bool(v, &b)); d->zero3_init_flag = b; return SHARDRT_OK;
    case SHARDRT__F_Z3_SAVE: return get_bool(v, &d->zero3_save_16bit_model);
    case SHARDRT__F_DS_FILE: return get_path(v, d->hf_ds_config, sizeof d->hf_ds_config);
    case SHARDRT__F_PREFETCH_BUCKET: return get_int(v, 0, INT64_MAX / 2, &d->stage3_prefetch_bucket_size);
    case SHARDRT__F_PERSISTENCE: return get_int(v, 0, INT64_MAX / 2, &d->stage3_param_persistence_threshold);
    case SHARDRT__F_MAX_LIVE: return get_int(v, 0, INT64_MAX / 2, &d->stage3_max_live_parameters);
    case SHARDRT__F_MAX_REUSE: return get_int(v, 0, INT64_MAX / 2, &d->stage3_max_reuse_distance);
    case SHARDRT__F_REDUCE_BUCKET: return get_int(v, 0, INT64_MAX / 2, &d->reduce_bucket_size);
    case SHARDRT__F_AG_BUCKET: return get_int(v, 0, INT64_MAX / 2, &d->allgather_bucket_size);
    case SHARDRT__F_OVERLAP: SHARDRT__CHECK(get_bool(v, &b)); d->overlap_comm = b; return SHARDRT_OK;
    case SHARDRT__F_CONTIGUOUS: return get_bool(v, &d->contiguous_gradients);
    case SHARDRT__F_HPZ: SHARDRT__CHECK(get_int(v, 1, 1 << 20, &i)); d->zero_hpz_partition_size = (int)i; return SHARDRT_OK;
    case SHARDRT__F_FP16_EN: SHARDRT__CHECK(get_bool(v, &b)); d->fp16_enabled = b; return SHARDRT_OK;
    case SHARDRT__F_BF16_EN: SHARDRT__CHECK(get_bool(v, &b)); d->bf16_enabled = b; return SHARDRT_OK;
    case SHARDRT__F_LOSS_SCALE: return get_double(v, 0, false, &d->loss_scale);
    case SHARDRT__F_SCALE_POWER: SHARDRT__CHECK(get_int(v, 0, 63, &i)); d->initial_scale_power = (int)i; return SHARDRT_OK;
    case SHARDRT__F_SCALE_WINDOW: SHARDRT__CHECK(get_int(v, 1, 1 << 30, &i)); d->loss_scale_window = (int)i; return SHARDRT_OK;
    case SHARDRT__F_HYSTERESIS: SHARDRT__CHECK(get_int(v, 1, 1 << 30, &i)); d->hysteresis = (int)i; return SHARDRT_OK;
    case SHARDRT__F_MIN_SCALE: SHARDRT__CHECK(get_double(v, 0, true, &x)); d->min_loss_scale = x; return SHARDRT_OK;
    case SHARDRT__F_MICRO_BATCH: return get_int(v, 1, INT64_MAX / 2, &d->train_micro_batch_size_per_gpu);
    case SHARDRT__F_TRAIN_BATCH: return get_int(v, 1, INT64_MAX / 2, &d->train_batch_size);
    case SHARDRT__F_OPTIM_TYPE: case SHARDRT__F_OPT_LR: case SHARDRT__F_OPT_BETAS: case SHARDRT__F_OPT_EPS:
    case SHARDRT__F_OPT_WD: case SHARDRT__F_OPT_MOMENTUM: case SHARDRT__F_OPT_ADAM_W_MODE:
    case SHARDRT__F_OPT_BIAS_CORRECTION: case SHARDRT__F_OPT_AMSGRAD: case SHARDRT__F_OPT_NESTEROV:
    case SHARDRT__F_OPT_DAMPENING: case SHARDRT__F_OPT_MAX_GRAD_NORM: case SHARDRT__F_SCHED_TYPE:
    case SHARDRT__F_SCHED_MIN_LR: case SHARDRT__F_SCHED_MAX_LR: case SHARDRT__F_SCHED_WARMUP_STEPS:
    case SHARDRT__F_SCHED_WARMUP_TYPE: case SHARDRT__F_SCHED_TOTAL: case SHARDRT__F_SCHED_MIN_RATIO:
    case SHARDRT__F_SCHED_COS_MIN_RATIO:
      return shardrt__cfg_set_optim(c, f, v);
    case SHARDRT__F_COUNT_: break;
  }
  return shardrt__error(SHARDRT_ERR_INTERNAL, "%s: %s: no setter for field %d", v->where, v->key, (int)f);
}

shardrt_status shardrt__cfg_set(shardrt__cfg *c, shardrt__field f, const shardrt__val *v) {
  if (f < 0 || f >= SHARDRT__F_COUNT_)
    return shardrt__error(SHARDRT_ERR_INTERNAL, "config: field %d out of range", (int)f);
  bool is_auto = strcasecmp(v->text, "auto") == 0;
  if (is_auto && !field_takes_auto(f) && v->from == SHARDRT__FROM_JSON && f >= SHARDRT__F_PREFETCH_BUCKET &&
      f <= SHARDRT__F_MIN_SCALE) {
    /* DeepSpeedConfigModel drops "auto" entries before validation, so the
     * key takes DeepSpeed's default: as if absent. */
    shardrt__note("%s: \"auto\" that nothing fills; DeepSpeed's default applies", v->key);
    return SHARDRT_OK;
  }
  if (is_auto && !field_takes_auto(f))
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "%s: %s: \"auto\" cannot be resolved here (libshardrt fills \"auto\" only for "
                          "gradient_accumulation_steps, gradient_clipping, zero_optimization.stage, "
                          "offload_*.device, offload_*.nvme_path, stage3_gather_16bit_weights_on_model_save, "
                          "fp16.enabled, bf16.enabled, reduce_bucket_size, stage3_prefetch_bucket_size, "
                          "stage3_param_persistence_threshold, train_micro_batch_size_per_gpu, train_batch_size, "
                          "optimizer.params lr, betas, eps, weight_decay, momentum, scheduler.params "
                          "warmup_min_lr, warmup_max_lr, warmup_num_steps, total_num_steps); give a value",
                          v->where, v->key);
  shardrt_deepspeed_plugin before = c->ds;
  shardrt_status rc;
  if (is_auto) {
    set_auto(c, f);
    rc = SHARDRT_OK;
  } else {
    rc = set_value(c, f, v);
  }
  if (rc != SHARDRT_OK) return rc;
  /* An explicit DeepSpeed JSON value is the truth: a flag may fill its
   * "auto" entries or repeat it, never contradict it. */
  if (v->from == SHARDRT__FROM_FLAG && c->from[f] == SHARDRT__FROM_JSON && !c->is_auto[f] &&
      memcmp(&before, &c->ds, sizeof before) != 0) {
    c->ds = before;
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "%s: %s %.100s contradicts the DeepSpeed JSON (%s); change the JSON or write \"auto\" "
                          "there to let flags decide", v->where, v->key, v->text, c->where[f]);
  }
  if (v->from == SHARDRT__FROM_FLAG && c->from[f] == SHARDRT__FROM_JSON && c->is_auto[f] && is_auto) return rc;
  c->from[f] = (unsigned char)v->from;
  c->is_auto[f] = is_auto;
  snprintf(c->where[f], sizeof c->where[f], "%s: %s = %.100s", v->where, v->key, v->text);
  return SHARDRT_OK;
}
