/* SPDX-License-Identifier: Apache-2.0 */
/* The plugin structs (Accelerate's FullyShardedDataParallelPlugin and
 * DeepSpeedPlugin in C) and their conversion into the plan. The file and
 * flag front ends fill these same structs and call the same conversions. */
#include <ctype.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "src/config/config_internal.h"

void shardrt_fsdp_plugin_default(shardrt_fsdp_plugin *p) {
  memset(p, 0, sizeof *p);
  p->fsdp_version = 1;
  p->sharding_strategy = SHARDRT_FULL_SHARD;
  p->reshard_after_forward = SHARDRT_AUTO;
  p->backward_prefetch = SHARDRT_PREFETCH_NONE;
  p->auto_wrap_policy = SHARDRT_WRAP_NO_WRAP;
  p->min_num_params = 100000000;
  p->state_dict_type = SHARDRT_AUTO;
  p->use_orig_params = true;
}

void shardrt_deepspeed_plugin_default(shardrt_deepspeed_plugin *p) {
  /* DeepSpeed's knob defaults live in one place: the plan's defaults. */
  shardrt_plan d;
  shardrt_plan_default(&d);
  memset(p, 0, sizeof *p);
  p->zero_stage = 2;
  p->gradient_accumulation_steps = d.gradient_accumulation_steps;
  p->stage3_prefetch_bucket_size = d.prefetch_bucket_size;
  p->stage3_param_persistence_threshold = d.param_persistence_threshold;
  p->stage3_max_live_parameters = d.max_live_parameters;
  p->stage3_max_reuse_distance = d.max_reuse_distance;
  p->reduce_bucket_size = d.reduce_bucket_size;
  p->allgather_bucket_size = d.allgather_bucket_size;
  p->overlap_comm = SHARDRT_AUTO;
  p->zero3_init_flag = SHARDRT_AUTO;
  p->gradient_clipping = SHARDRT_AUTO;
  p->contiguous_gradients = d.contiguous_gradients;
  p->zero_hpz_partition_size = 1;
  p->fp16_enabled = SHARDRT_AUTO;
  p->bf16_enabled = SHARDRT_AUTO;
  p->initial_scale_power = d.initial_scale_power;
  p->loss_scale_window = d.loss_scale_window;
  p->hysteresis = d.hysteresis;
  p->min_loss_scale = d.min_loss_scale;
}

/* Splits "A, B,C" into plan->wrap_classes (trimmed, empty items skipped). */
shardrt_status shardrt__parse_wrap_classes(const char *list, shardrt_plan *plan) {
  plan->num_wrap_classes = 0;
  const char *s = list;
  while (*s) {
    while (*s == ' ' || *s == '\t' || *s == ',') s++;
    if (!*s) break;
    const char *e = s;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > s && (t[-1] == ' ' || t[-1] == '\t')) t--;
    size_t n = (size_t)(t - s);
    for (size_t k = 0; k < n; k++)
      if (!(isalnum((unsigned char)s[k]) || s[k] == '_' || s[k] == '.'))
        return shardrt__error(SHARDRT_ERR_CONFIG,
                              "transformer_cls_names_to_wrap: '%.*s' is not a class name (letters, digits, '_' "
                              "and '.'; separate names with commas)", (int)n, s);
    if (n >= SHARDRT_NAME_MAX)
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "transformer_cls_names_to_wrap: class name '%.40s...' is longer than %d bytes", s,
                            SHARDRT_NAME_MAX - 1);
    if (plan->num_wrap_classes == SHARDRT_MAX_WRAP_CLASSES)
      return shardrt__error(SHARDRT_ERR_CONFIG, "transformer_cls_names_to_wrap: more than %d class names",
                            SHARDRT_MAX_WRAP_CLASSES);
    memcpy(plan->wrap_classes[plan->num_wrap_classes], s, n);
    plan->wrap_classes[plan->num_wrap_classes][n] = '\0';
    plan->num_wrap_classes++;
    s = e;
  }
  return SHARDRT_OK;
}

shardrt_status shardrt_plan_from_fsdp_plugin(const shardrt_fsdp_plugin *p, shardrt_plan *plan) {
  if (!p || !plan) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_plan_from_fsdp_plugin: NULL argument");
  if (p->fsdp_version != 1 && p->fsdp_version != 2)
    return shardrt__error(SHARDRT_ERR_CONFIG, "fsdp plugin: fsdp_version is %d (allowed: 1, 2)", p->fsdp_version);
  shardrt_strategy s = p->sharding_strategy;
  if (s < 0 || s >= SHARDRT_STRATEGY_COUNT_)
    return shardrt__error(SHARDRT_ERR_CONFIG, "fsdp plugin: sharding_strategy %d is not a strategy", (int)s);
  if (s == SHARDRT_ZERO1)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "fsdp plugin: ZERO1 has no FSDP twin (allowed: FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, "
                          "HYBRID_SHARD, HYBRID_SHARD_ZERO2); use the DeepSpeed plugin with zero_stage 1");
  if (p->reshard_after_forward != SHARDRT_AUTO) {
    if (p->reshard_after_forward != 0 && p->reshard_after_forward != 1)
      return shardrt__error(SHARDRT_ERR_CONFIG, "fsdp plugin: reshard_after_forward is %d (allowed: -1 auto, 0, 1)",
                            p->reshard_after_forward);
    bool r = p->reshard_after_forward == 1;
    /* FSDP2's switch picks between the two sharded degrees of each family. */
    if (s == SHARDRT_FULL_SHARD || s == SHARDRT_SHARD_GRAD_OP) s = r ? SHARDRT_FULL_SHARD : SHARDRT_SHARD_GRAD_OP;
    else if (s == SHARDRT_HYBRID_SHARD || s == SHARDRT_HYBRID_SHARD_ZERO2)
      s = r ? SHARDRT_HYBRID_SHARD : SHARDRT_HYBRID_SHARD_ZERO2;
    else if (r)
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "fsdp plugin: reshard_after_forward true needs sharded parameters, but "
                            "sharding_strategy is NO_SHARD");
  }
  if (p->fsdp_version == 2 && p->forward_prefetch)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "fsdp plugin: forward_prefetch is not available with fsdp_version 2 (allowed: false)");
  if (p->auto_wrap_policy < SHARDRT_WRAP_NO_WRAP || p->auto_wrap_policy > SHARDRT_WRAP_SIZE_BASED)
    return shardrt__error(SHARDRT_ERR_CONFIG, "fsdp plugin: auto_wrap_policy %d is not a wrap policy",
                          (int)p->auto_wrap_policy);
  if (p->backward_prefetch < SHARDRT_PREFETCH_NONE || p->backward_prefetch > SHARDRT_PREFETCH_BACKWARD_POST)
    return shardrt__error(SHARDRT_ERR_CONFIG, "fsdp plugin: backward_prefetch %d is not a prefetch mode",
                          (int)p->backward_prefetch);
  if (p->state_dict_type != SHARDRT_AUTO &&
      (p->state_dict_type < SHARDRT_FULL_STATE_DICT || p->state_dict_type > SHARDRT_SHARDED_STATE_DICT))
    return shardrt__error(SHARDRT_ERR_CONFIG, "fsdp plugin: state_dict_type %d is not a state dict type",
                          p->state_dict_type);
  if (p->min_num_params < 0)
    return shardrt__error(SHARDRT_ERR_CONFIG, "fsdp plugin: min_num_params is %lld (allowed: >= 0)",
                          (long long)p->min_num_params);
  if (memchr(p->ignored_modules, '\0', sizeof p->ignored_modules) == NULL ||
      memchr(p->transformer_cls_names_to_wrap, '\0', sizeof p->transformer_cls_names_to_wrap) == NULL)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "fsdp plugin: a string field is not NUL-terminated");
  if (p->ignored_modules[0]) {
    regex_t re;
    int rc = regcomp(&re, p->ignored_modules, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char why[128];
      regerror(rc, &re, why, sizeof why);
      return shardrt__error(SHARDRT_ERR_CONFIG, "fsdp plugin: ignored_modules '%s' is not a valid regex: %s",
                            p->ignored_modules, why);
    }
    regfree(&re);
  }

  shardrt_plan out = *plan;
  SHARDRT__CHECK(shardrt__parse_wrap_classes(p->transformer_cls_names_to_wrap, &out));
  out.distributed_type = SHARDRT_DIST_FSDP;
  out.flavor = SHARDRT_FLAVOR_FSDP;
  out.strategy = s;
  out.fsdp_version = p->fsdp_version;
  out.forward_prefetch = p->forward_prefetch;
  out.offload_params = out.offload_optimizer = p->cpu_offload ? SHARDRT_OFFLOAD_CPU : SHARDRT_OFFLOAD_NONE;
  out.wrap_policy = p->auto_wrap_policy;
  out.min_num_params = p->min_num_params;
  memcpy(out.ignored_modules, p->ignored_modules, sizeof out.ignored_modules);
  out.activation_checkpointing = p->activation_checkpointing;
  out.cpu_ram_efficient_loading = p->cpu_ram_efficient_loading;
  if (p->fsdp_version == 2) {
    /* FSDP2 always prefetches the next unit in backward, always keeps the
     * original parameters, and broadcasts when loading is RAM-efficient. */
    out.backward_prefetch = SHARDRT_PREFETCH_BACKWARD_PRE;
    out.use_orig_params = true;
    out.sync_module_states = p->cpu_ram_efficient_loading;
    out.state_dict_type = p->state_dict_type == SHARDRT_AUTO ? SHARDRT_SHARDED_STATE_DICT
                                                             : (shardrt_state_dict_type)p->state_dict_type;
  } else {
    out.backward_prefetch = p->backward_prefetch;
    out.use_orig_params = p->use_orig_params;
    out.sync_module_states = p->sync_module_states;
    if (p->cpu_ram_efficient_loading && !p->sync_module_states) {
      shardrt__warn("fsdp plugin: cpu_ram_efficient_loading needs sync_module_states (rank 0 loads, the others "
                    "receive its weights): turning sync_module_states on");
      out.sync_module_states = true;
    }
    out.state_dict_type = p->state_dict_type == SHARDRT_AUTO ? SHARDRT_FULL_STATE_DICT
                                                             : (shardrt_state_dict_type)p->state_dict_type;
  }
  *plan = out;
  return SHARDRT_OK;
}

static shardrt_status check_size(const char *name, int64_t v, bool auto_ok) {
  if (v >= 0 || (auto_ok && v == SHARDRT_AUTO)) return SHARDRT_OK;
  return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed plugin: %s is %lld (allowed: >= 0%s)", name, (long long)v,
                        auto_ok ? ", or SHARDRT_AUTO" : "");
}

shardrt_status shardrt__plan_from_ds(const shardrt_deepspeed_plugin *p, shardrt_plan *plan) {
  shardrt_plan out = *plan;
  int stage = p->zero_stage == SHARDRT_AUTO ? 2 : p->zero_stage;
  if (stage < 0 || stage > 3)
    return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed plugin: zero_stage is %d (allowed: 0, 1, 2, 3)", stage);
  static const shardrt_strategy by_stage[] = {SHARDRT_NO_SHARD, SHARDRT_ZERO1, SHARDRT_SHARD_GRAD_OP,
                                              SHARDRT_FULL_SHARD};
  out.strategy = by_stage[stage];
  if (p->zero_hpz_partition_size < 1)
    return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed plugin: zero_hpz_partition_size is %d (allowed: >= 1)",
                          p->zero_hpz_partition_size);
  if (p->zero_hpz_partition_size > 1) {
    if (stage == 3) {
      out.strategy = SHARDRT_HYBRID_SHARD;
      out.shard_group_size = p->zero_hpz_partition_size;
    } else {
      shardrt__warn("deepspeed: zero_hpz_partition_size %d only applies to ZeRO stage 3 (stage is %d): ignored",
                    p->zero_hpz_partition_size, stage);
    }
  }
  if (p->gradient_accumulation_steps != SHARDRT_AUTO) {
    if (p->gradient_accumulation_steps < 1)
      return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed plugin: gradient_accumulation_steps is %d (allowed: >= 1)",
                            p->gradient_accumulation_steps);
    out.gradient_accumulation_steps = p->gradient_accumulation_steps;
  }
  if (p->gradient_clipping == SHARDRT_AUTO) {
    /* "auto" follows the program's value; DeepSpeed's usual 1.0 otherwise. */
    if (out.gradient_clipping <= 0) out.gradient_clipping = 1.0;
  } else if (p->gradient_clipping < 0) {
    return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed plugin: gradient_clipping is %g (allowed: >= 0)",
                          p->gradient_clipping);
  } else {
    out.gradient_clipping = p->gradient_clipping;
  }
  for (int k = 0; k < 2; k++) {
    shardrt_offload dev = k ? p->offload_param_device : p->offload_optimizer_device;
    const char *path = k ? p->offload_param_nvme_path : p->offload_optimizer_nvme_path;
    const char *what = k ? "offload_param" : "offload_optimizer";
    if (dev < SHARDRT_OFFLOAD_NONE || dev > SHARDRT_OFFLOAD_NVME)
      return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed plugin: %s_device %d (allowed: none, cpu, nvme)", what,
                            (int)dev);
    if (memchr(path, '\0', SHARDRT_PATH_MAX) == NULL)
      return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "deepspeed plugin: %s_nvme_path is not NUL-terminated",
                            what);
    if (dev == SHARDRT_OFFLOAD_NVME && !path[0])
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "deepspeed: %s_device is nvme but %s_nvme_path is empty (give the folder to use)", what,
                            what);
  }
  out.offload_optimizer = p->offload_optimizer_device;
  out.offload_params = p->offload_param_device;
  if (stage < 3 && p->offload_param_device != SHARDRT_OFFLOAD_NONE) {
    shardrt__warn("deepspeed: offload_param_device %s only applies to ZeRO stage 3 (stage is %d): ignored",
                  shardrt_offload_name(p->offload_param_device), stage);
    out.offload_params = SHARDRT_OFFLOAD_NONE;
  }
  memcpy(out.offload_optimizer_nvme_path, p->offload_optimizer_nvme_path, SHARDRT_PATH_MAX);
  memcpy(out.offload_param_nvme_path, p->offload_param_nvme_path, SHARDRT_PATH_MAX);
  if (p->zero3_init_flag != SHARDRT_AUTO && p->zero3_init_flag != 0 && p->zero3_init_flag != 1)
    return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed plugin: zero3_init_flag is %d (allowed: 0, 1, SHARDRT_AUTO)",
                          p->zero3_init_flag);
  if (p->zero3_init_flag == 1 && stage < 3)
    shardrt__warn("deepspeed: zero3_init_flag only applies to ZeRO stage 3 (stage is %d): ignored", stage);
  /* Absent, accelerate's DeepSpeedPlugin turns it on exactly at stage 3. */
  out.cpu_ram_efficient_loading = out.sync_module_states = p->zero3_init_flag != 0 && stage == 3;
  out.save_16bit_model = p->zero3_save_16bit_model;
  /* ZeRO-3 checkpoints are sharded unless 16-bit consolidation is asked
   * for; below stage 3 every rank holds the whole model anyway. */
  out.state_dict_type = (stage == 3 && !p->zero3_save_16bit_model) ? SHARDRT_SHARDED_STATE_DICT
                                                                    : SHARDRT_FULL_STATE_DICT;

  SHARDRT__CHECK(check_size("stage3_prefetch_bucket_size", p->stage3_prefetch_bucket_size, true));
  SHARDRT__CHECK(check_size("stage3_param_persistence_threshold", p->stage3_param_persistence_threshold, true));
  SHARDRT__CHECK(check_size("reduce_bucket_size", p->reduce_bucket_size, true));
  SHARDRT__CHECK(check_size("stage3_max_live_parameters", p->stage3_max_live_parameters, false));
  SHARDRT__CHECK(check_size("stage3_max_reuse_distance", p->stage3_max_reuse_distance, false));
  SHARDRT__CHECK(check_size("allgather_bucket_size", p->allgather_bucket_size, false));
  SHARDRT__CHECK(check_size("train_micro_batch_size_per_gpu", p->train_micro_batch_size_per_gpu, true));
  SHARDRT__CHECK(check_size("train_batch_size", p->train_batch_size, true));
  out.unresolved = 0;
#define AUTO_OR(field, src, bit)                       \
  do {                                                 \
    if ((src) == SHARDRT_AUTO) out.unresolved |= (bit); \
    else out.field = (src);                            \
  } while (0)
  AUTO_OR(prefetch_bucket_size, p->stage3_prefetch_bucket_size, SHARDRT_UNRESOLVED_PREFETCH_BUCKET);
  AUTO_OR(param_persistence_threshold, p->stage3_param_persistence_threshold, SHARDRT_UNRESOLVED_PERSISTENCE);
  AUTO_OR(reduce_bucket_size, p->reduce_bucket_size, SHARDRT_UNRESOLVED_REDUCE_BUCKET);
  AUTO_OR(train_micro_batch_size_per_gpu, p->train_micro_batch_size_per_gpu, SHARDRT_UNRESOLVED_MICRO_BATCH);
  AUTO_OR(train_batch_size, p->train_batch_size, SHARDRT_UNRESOLVED_TRAIN_BATCH);
#undef AUTO_OR
  out.max_live_parameters = p->stage3_max_live_parameters;
  out.max_reuse_distance = p->stage3_max_reuse_distance;
  out.allgather_bucket_size = p->allgather_bucket_size;
  if (p->overlap_comm != SHARDRT_AUTO && p->overlap_comm != 0 && p->overlap_comm != 1)
    return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed plugin: overlap_comm is %d (allowed: 0, 1, SHARDRT_AUTO)",
                          p->overlap_comm);
  /* DeepSpeedZeroConfig.overlap_comm_valid: absent means on at stage 3 only. */
  out.overlap_comm = p->overlap_comm == SHARDRT_AUTO ? stage == 3 : p->overlap_comm == 1;
  out.contiguous_gradients = p->contiguous_gradients;

  /* Precision: JSON enabled flags against the plan's mixed_precision. */
  if (p->fp16_enabled == 1 && p->bf16_enabled == 1)
    return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed: fp16.enabled and bf16.enabled are both true (allowed: one)");
  shardrt_mixed_precision mp = out.mixed_precision;
  for (int k = 0; k < 2; k++) {
    int en = k ? p->bf16_enabled : p->fp16_enabled;
    shardrt_mixed_precision mine = k ? SHARDRT_MP_BF16 : SHARDRT_MP_FP16;
    const char *name = k ? "bf16" : "fp16";
    if (en == 1) {
      if (mp != SHARDRT_MP_NO && mp != mine)
        return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed: %s.enabled is true but mixed_precision is %s (allowed: "
                              "%s, or \"auto\" in the JSON)", name, shardrt_mixed_precision_name(mp), name);
      mp = mine;
    } else if (en == 0 && out.mixed_precision == mine) {
      return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed: %s.enabled is false but mixed_precision is %s (allowed: "
                            "enable it, or write \"auto\" in the JSON)", name, name);
    } else if (en != 0 && en != SHARDRT_AUTO) {
      return shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed plugin: %s_enabled is %d (allowed: 0, 1, SHARDRT_AUTO)",
                            name, en);
    }
  }
  out.mixed_precision = mp;
  if (p->loss_scale < 0 || p->min_loss_scale <= 0 || p->loss_scale_window < 1 || p->hysteresis < 1 ||
      p->initial_scale_power < 0 || p->initial_scale_power > 63)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "deepspeed plugin: fp16 loss scaling needs loss_scale >= 0, min_loss_scale > 0, "
                          "loss_scale_window >= 1, hysteresis >= 1 and initial_scale_power 0..63");
  out.loss_scale = p->loss_scale;
  out.initial_scale_power = p->initial_scale_power;
  out.loss_scale_window = p->loss_scale_window;
  out.hysteresis = p->hysteresis;
  out.min_loss_scale = p->min_loss_scale;
  out.distributed_type = SHARDRT_DIST_DEEPSPEED;
  out.flavor = SHARDRT_FLAVOR_DEEPSPEED;
  *plan = out;
  return SHARDRT_OK;
}
