/* SPDX-License-Identifier: Apache-2.0 */
/* The plan: defaults, and the one place where sharding degree and the
 * precision rules of the two flavours are derived. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "shardrt/plan.h"
#include "src/core/error.h"

void shardrt_plan_default(shardrt_plan *p) {
  memset(p, 0, sizeof *p);
  p->struct_size = sizeof *p;
  p->distributed_type = SHARDRT_DIST_NO;
  p->flavor = SHARDRT_FLAVOR_FSDP;
  p->strategy = SHARDRT_FULL_SHARD;
  p->num_processes = -1;
  p->num_machines = 1;
  p->mixed_precision = SHARDRT_MP_NO;
  p->load_dtype = SHARDRT_F32;
  p->backward_prefetch = SHARDRT_PREFETCH_NONE; /* accelerate passes none unless asked */
  /* DeepSpeed's defaults for its ZeRO-3 knobs. */
  p->prefetch_bucket_size = 50000000;
  p->param_persistence_threshold = 100000;
  p->max_live_parameters = 1000000000;
  p->max_reuse_distance = 1000000000;
  p->reduce_bucket_size = 500000000;
  p->allgather_bucket_size = 500000000;
  p->overlap_comm = true;
  p->contiguous_gradients = true;
  p->wrap_policy = SHARDRT_WRAP_NO_WRAP;
  p->min_num_params = 100000000;
  p->gradient_accumulation_steps = 1;
  p->accum_mode = SHARDRT_ACCUM_AUTO;
  p->state_dict_type = SHARDRT_FULL_STATE_DICT;
  p->use_orig_params = true;
  p->fsdp_version = 1;
  p->initial_scale_power = 16;
  p->loss_scale_window = 1000;
  p->hysteresis = 2;
  p->min_loss_scale = 1.0;
  /* DeepSpeed's optimizer and scheduler defaults (used when a config names
   * the section; "given" says which values it wrote). */
  p->optimizer.type = SHARDRT_OPTIMIZER_PROGRAM;
  p->optimizer.lr = 1e-3;
  p->optimizer.beta1 = 0.9;
  p->optimizer.beta2 = 0.999;
  p->optimizer.eps = 1e-8;
  p->scheduler.type = SHARDRT_SCHEDULE_NONE;
  p->scheduler.warmup_max_lr = 1e-3;
  p->scheduler.warmup_num_steps = 1000;
  p->scheduler.warmup_type = SHARDRT_WARMUP_LOG;
  p->scheduler.cos_min_ratio = 1e-4;
}

/* The optimizer and scheduler sections of a plan built in code get the same
 * range checks as the config files' values. */
static shardrt_status check_optim_sections(const shardrt_plan *p) {
  const shardrt_plan_optimizer *o = &p->optimizer;
  const shardrt_plan_scheduler *s = &p->scheduler;
  if (o->type < SHARDRT_OPTIMIZER_PROGRAM || o->type > SHARDRT_OPTIMIZER_SGD)
    return shardrt__error(SHARDRT_ERR_CONFIG, "plan: optimizer.type %d is not an optimizer (0 program, 1 AdamW, 2 SGD)",
                          (int)o->type);
  uint32_t g = o->type == SHARDRT_OPTIMIZER_PROGRAM ? 0 : o->given;
  if (((g & SHARDRT_GIVEN_LR) && !(o->lr >= 0)) || ((g & SHARDRT_GIVEN_WEIGHT_DECAY) && !(o->weight_decay >= 0)) ||
      ((g & SHARDRT_GIVEN_MOMENTUM) && !(o->momentum >= 0)) || ((g & SHARDRT_GIVEN_EPS) && !(o->eps > 0)) ||
      ((g & SHARDRT_GIVEN_BETAS) && !(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1)))
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "plan: optimizer hyper-parameters out of range (lr %g, betas %g/%g, eps %g, weight_decay %g, "
                          "momentum %g): lr, weight_decay, momentum >= 0, betas in [0,1), eps > 0",
                          o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, o->momentum);
  if (s->type < SHARDRT_SCHEDULE_NONE || s->type > SHARDRT_SCHEDULE_WARMUP_COSINE_LR)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "plan: scheduler.type %d is not a schedule (0 none, 1 WarmupLR, 2 WarmupDecayLR, "
                          "3 WarmupCosineLR)", (int)s->type);
  if (s->type == SHARDRT_SCHEDULE_NONE) return SHARDRT_OK;
  if (s->warmup_type != SHARDRT_WARMUP_LOG && s->warmup_type != SHARDRT_WARMUP_LINEAR)
    return shardrt__error(SHARDRT_ERR_CONFIG, "plan: scheduler.warmup_type %d (allowed: 0 log, 1 linear)",
                          (int)s->warmup_type);
  g = s->given;
  if (!(s->warmup_min_lr >= 0) || ((g & SHARDRT_GIVEN_WARMUP_MAX_LR) && !(s->warmup_max_lr >= 0)) ||
      ((g & SHARDRT_GIVEN_WARMUP_NUM_STEPS) && s->warmup_num_steps < 1) ||
      ((g & SHARDRT_GIVEN_TOTAL_NUM_STEPS) && s->total_num_steps < 1) || !(s->warmup_min_ratio >= 0) ||
      !(s->cos_min_ratio >= 0))
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "plan: %s parameters out of range (warmup_min_lr %g, warmup_max_lr %g, warmup_num_steps "
                          "%lld, total_num_steps %lld, warmup_min_ratio %g, cos_min_ratio %g): lrs and ratios >= 0, "
                          "step counts >= 1", shardrt_lr_schedule_name(s->type), s->warmup_min_lr, s->warmup_max_lr,
                          (long long)s->warmup_num_steps, (long long)s->total_num_steps, s->warmup_min_ratio,
                          s->cos_min_ratio);
  return SHARDRT_OK;
}

static int stage_of(shardrt_strategy s) {
  switch (s) {
    case SHARDRT_NO_SHARD: return 0;
    case SHARDRT_ZERO1: return 1;
    case SHARDRT_SHARD_GRAD_OP: case SHARDRT_HYBRID_SHARD_ZERO2: return 2;
    default: return 3;
  }
}

shardrt_status shardrt_plan_resolve(shardrt_plan *p, int world) {
  if (p->strategy < 0 || p->strategy >= SHARDRT_STRATEGY_COUNT_)
    return shardrt__error(SHARDRT_ERR_CONFIG, "plan: strategy %d is not a strategy (0..%d)", (int)p->strategy,
                          SHARDRT_STRATEGY_COUNT_ - 1);
  if (p->gradient_accumulation_steps < 1)
    return shardrt__error(SHARDRT_ERR_CONFIG, "plan: gradient_accumulation_steps is %d; it must be >= 1",
                          p->gradient_accumulation_steps);
  if (p->gradient_clipping < 0)
    return shardrt__error(SHARDRT_ERR_CONFIG, "plan: gradient_clipping is %g; it must be >= 0 (0 disables)",
                          p->gradient_clipping);
  if (p->num_machines < 1)
    return shardrt__error(SHARDRT_ERR_CONFIG, "plan: num_machines is %d; it must be >= 1", p->num_machines);
  if (world > 0 && p->num_processes > 0 && p->num_processes != world)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "plan: the config says num_processes %d but %d ranks were launched "
                          "(launch %d ranks, or pass --num_processes %d)",
                          p->num_processes, world, p->num_processes, world);

  p->zero_stage = stage_of(p->strategy);
  p->shard_params = p->zero_stage == 3;
  p->shard_grads = p->zero_stage >= 2;
  p->shard_optimizer = p->zero_stage >= 1;
  p->reshard_after_forward = p->zero_stage == 3;
  p->hybrid = p->strategy == SHARDRT_HYBRID_SHARD || p->strategy == SHARDRT_HYBRID_SHARD_ZERO2;

  int procs = world > 0 ? world : p->num_processes;
  if (p->hybrid) {
    if (p->shard_group_size <= 0 && p->num_machines > 1 && procs > 0) {
      if (procs % p->num_machines)
        return shardrt__error(SHARDRT_ERR_CONFIG,
                              "plan: %s needs num_processes (%d) divisible by num_machines (%d)",
                              shardrt_strategy_name(p->strategy), procs, p->num_machines);
      p->shard_group_size = procs / p->num_machines;
    }
  } else if (p->shard_group_size > 0 && procs > 0 && p->shard_group_size != procs) {
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "plan: shard group size %d is only meaningful for HYBRID_SHARD / HYBRID_SHARD_ZERO2 "
                          "(strategy is %s)",
                          p->shard_group_size, shardrt_strategy_name(p->strategy));
  }
  if (world > 0) {
    if (p->shard_group_size <= 0 || !p->hybrid) p->shard_group_size = world;
    if (world % p->shard_group_size)
      return shardrt__error(SHARDRT_ERR_CONFIG, "plan: shard group size %d does not divide the world size %d",
                            p->shard_group_size, world);
  }

  /* Precision (the seed's table). */
  shardrt_dtype mp = p->mixed_precision == SHARDRT_MP_BF16 ? SHARDRT_BF16 : SHARDRT_F16;
  bool has_mp = p->mixed_precision != SHARDRT_MP_NO;
  if (p->flavor == SHARDRT_FLAVOR_FSDP) {
    p->flat_param_dtype = has_mp ? SHARDRT_F32 : p->load_dtype;
    p->compute_dtype = has_mp ? mp : p->load_dtype;
    p->optimizer_dtype = p->flat_param_dtype;
    p->master_weights = false;
  } else {
    p->flat_param_dtype = SHARDRT_F32;
    p->compute_dtype = has_mp ? mp : SHARDRT_F32;
    p->optimizer_dtype = SHARDRT_F32;
    p->master_weights = has_mp;
  }
  /* Gradients are reduced in the compute dtype, as both peers do by default:
   * accelerate's FSDP MixedPrecision policy sets reduce_dtype = param_dtype
   * (FullyShardedDataParallelPlugin.set_mixed_precision) and DeepSpeed
   * communicates in the model dtype unless communication_data_type says
   * otherwise (DeepSpeedEngine.communication_data_type). fp32 reduction is an
   * explicit choice (shardrt_reduce_dtype / --reduce_dtype /
   * communication_data_type). */
  if (!p->reduce_dtype_set) p->reduce_dtype = p->compute_dtype;
  p->loss_scaling = p->compute_dtype == SHARDRT_F16;

  /* Offload. FSDP's is all-or-nothing; DeepSpeed offloads params at stage 3 only. */
  if (p->flavor == SHARDRT_FLAVOR_FSDP && p->offload_params != p->offload_optimizer) {
    if (p->offload_params == SHARDRT_OFFLOAD_NONE || p->offload_optimizer == SHARDRT_OFFLOAD_NONE)
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "plan: FSDP offload is all-or-nothing (params %s, optimizer %s): use fsdp_offload_params, "
                            "or the DeepSpeed flavour for separate devices",
                            shardrt_offload_name(p->offload_params), shardrt_offload_name(p->offload_optimizer));
  }
  if (p->flavor == SHARDRT_FLAVOR_DEEPSPEED && p->zero_stage < 3) p->offload_params = SHARDRT_OFFLOAD_NONE;
  if (p->offload_params == SHARDRT_OFFLOAD_NVME && !p->offload_param_nvme_path[0])
    return shardrt__error(SHARDRT_ERR_CONFIG, "plan: offload_param_device is nvme but offload_param_nvme_path is empty");
  if (p->offload_optimizer == SHARDRT_OFFLOAD_NVME && !p->offload_optimizer_nvme_path[0])
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "plan: offload_optimizer_device is nvme but offload_optimizer_nvme_path is empty");
  /* An offloaded optimizer next to on-device params keeps its own
   * optimizer-dtype copy of the parameters (DeepSpeed's CPU master). */
  if (p->offload_optimizer != SHARDRT_OFFLOAD_NONE && p->offload_params == SHARDRT_OFFLOAD_NONE)
    p->master_weights = true;
  /* Offloaded params next to an on-device optimizer: the optimizer keeps its
   * copy on the device and the offloaded params are refreshed from it. */
  if (p->offload_params != SHARDRT_OFFLOAD_NONE && p->offload_optimizer == SHARDRT_OFFLOAD_NONE)
    p->master_weights = true;

  if (p->accum_mode == SHARDRT_ACCUM_AUTO)
    p->accum_mode = p->shard_grads ? SHARDRT_ACCUM_REDUCE_EACH : SHARDRT_ACCUM_NO_SYNC;
  if (p->cpu_ram_efficient_loading && !p->sync_module_states)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "plan: cpu_ram_efficient_loading requires sync_module_states "
                          "(rank 0 loads, the others receive): set fsdp_sync_module_states: true");
  /* TRANSFORMER_BASED_WRAP without class names wraps the block classes the
   * program declares (shardrt_set_block_classes), as accelerate wraps the
   * model's _no_split_modules; shardrt_finalize checks there are some. */
  if (p->wrap_policy == SHARDRT_WRAP_SIZE_BASED && p->min_num_params < 1)
    return shardrt__error(SHARDRT_ERR_CONFIG, "plan: SIZE_BASED_WRAP needs fsdp_min_num_params >= 1 (got %lld)",
                          (long long)p->min_num_params);
  if (p->initial_scale_power < 0 || p->initial_scale_power > 62)
    return shardrt__error(SHARDRT_ERR_CONFIG, "plan: initial_scale_power is %d; it must be in 0..62",
                          p->initial_scale_power);
  if (p->loss_scale < 0 || p->min_loss_scale <= 0 || p->loss_scale_window < 1 || p->hysteresis < 1)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "plan: fp16 loss scaling needs loss_scale >= 0, min_loss_scale > 0, loss_scale_window >= 1 "
                          "and hysteresis >= 1");
  SHARDRT__CHECK(check_optim_sections(p));
  p->resolved = true;
  return SHARDRT_OK;
}

/* ---- names ---- */

static const char *const strategy_names[] = {"NO_SHARD", "ZERO1", "SHARD_GRAD_OP", "FULL_SHARD", "HYBRID_SHARD",
                                             "HYBRID_SHARD_ZERO2"};

const char *shardrt_strategy_name(shardrt_strategy s) {
  return (s >= 0 && s < SHARDRT_STRATEGY_COUNT_) ? strategy_names[s] : "?";
}

bool shardrt_strategy_parse(const char *s, shardrt_strategy *out) {
  if (!s) return false;
  for (int i = 0; i < SHARDRT_STRATEGY_COUNT_; i++)
    if (strcasecmp(s, strategy_names[i]) == 0) {
      *out = (shardrt_strategy)i;
      return true;
    }
  static const struct { const char *n; shardrt_strategy s; } alias[] = {
      {"ZERO0", SHARDRT_NO_SHARD}, {"ZERO2", SHARDRT_SHARD_GRAD_OP}, {"ZERO3", SHARDRT_FULL_SHARD},
      {"DDP", SHARDRT_NO_SHARD},
  };
  for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
    if (strcasecmp(s, alias[i].n) == 0) {
      *out = alias[i].s;
      return true;
    }
  return false;
}

const char *shardrt_offload_name(shardrt_offload o) {
  return o == SHARDRT_OFFLOAD_CPU ? "cpu" : o == SHARDRT_OFFLOAD_NVME ? "nvme" : "none";
}
const char *shardrt_mixed_precision_name(shardrt_mixed_precision m) {
  return m == SHARDRT_MP_BF16 ? "bf16" : m == SHARDRT_MP_FP16 ? "fp16" : "no";
}
const char *shardrt_dist_type_name(shardrt_dist_type d) {
  static const char *const n[] = {"NO", "MULTI_CPU", "MULTI_GPU", "FSDP", "DEEPSPEED"};
  return (d >= 0 && d <= SHARDRT_DIST_DEEPSPEED) ? n[d] : "?";
}
const char *shardrt_wrap_policy_name(shardrt_wrap_policy w) {
  return w == SHARDRT_WRAP_TRANSFORMER_BASED ? "TRANSFORMER_BASED_WRAP"
         : w == SHARDRT_WRAP_SIZE_BASED      ? "SIZE_BASED_WRAP"
                                             : "NO_WRAP";
}
const char *shardrt_backward_prefetch_name(shardrt_backward_prefetch b) {
  return b == SHARDRT_PREFETCH_BACKWARD_PRE ? "BACKWARD_PRE" : b == SHARDRT_PREFETCH_BACKWARD_POST ? "BACKWARD_POST"
                                                                                                 : "NO_PREFETCH";
}
const char *shardrt_state_dict_type_name(shardrt_state_dict_type t) {
  return t == SHARDRT_SHARDED_STATE_DICT ? "SHARDED_STATE_DICT"
         : t == SHARDRT_LOCAL_STATE_DICT ? "LOCAL_STATE_DICT"
                                         : "FULL_STATE_DICT";
}
const char *shardrt_accum_mode_name(shardrt_accum_mode m) {
  return m == SHARDRT_ACCUM_REDUCE_EACH ? "reduce_each" : m == SHARDRT_ACCUM_NO_SYNC ? "no_sync" : "auto";
}
const char *shardrt_optimizer_type_name(shardrt_optimizer_type t) {
  return t == SHARDRT_OPTIMIZER_ADAMW ? "AdamW" : t == SHARDRT_OPTIMIZER_SGD ? "SGD" : "program";
}
const char *shardrt_lr_schedule_name(shardrt_lr_schedule s) {
  static const char *const n[] = {"none", "WarmupLR", "WarmupDecayLR", "WarmupCosineLR"};
  return (s >= SHARDRT_SCHEDULE_NONE && s <= SHARDRT_SCHEDULE_WARMUP_COSINE_LR) ? n[s] : "?";
}
const char *shardrt_warmup_type_name(shardrt_warmup_type t) { return t == SHARDRT_WARMUP_LINEAR ? "linear" : "log"; }
