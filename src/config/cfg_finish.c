/* SPDX-License-Identifier: Apache-2.0 */
/* From collected settings to the plan: the cross-key rules that need to know
 * where each value came from, then the plugin conversions. Also the public
 * entry points that wrap a cfg (config_load, the DeepSpeed plugin with a
 * JSON) and the program hints that fill "auto" sizes. */
#include <stdlib.h>
#include <string.h>

#include "src/config/config_internal.h"

static const shardrt__field obsolete_v2[] = {SHARDRT__F_BPREFETCH, SHARDRT__F_ORIG_PARAMS, SHARDRT__F_SYNC};

static shardrt_status check_fsdp(shardrt__cfg *c, shardrt_fsdp_plugin *fs) {
  /* `accelerate launch` defaults both to true (commands/launch.py,
   * --fsdp_cpu_ram_efficient_loading / --fsdp_sync_module_states), and the
   * file and flag front ends are that launcher. */
  if (!c->from[SHARDRT__F_RAM_EFFICIENT]) fs->cpu_ram_efficient_loading = true;
  if (!c->from[SHARDRT__F_SYNC]) fs->sync_module_states = true;
  if (fs->fsdp_version == 2) {
    if (fs->forward_prefetch)
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "%s: not available with fsdp_version 2 (allowed: false); FSDP2 has no forward prefetch",
                            c->where[SHARDRT__F_FPREFETCH]);
    for (size_t k = 0; k < sizeof obsolete_v2 / sizeof obsolete_v2[0]; k++)
      if (c->from[obsolete_v2[k]]) {
        shardrt__warn("%s: obsolete with fsdp_version 2, ignored", c->where[obsolete_v2[k]]);
        shardrt__note("%s: obsolete with fsdp_version 2, ignored", c->where[obsolete_v2[k]]);
      }
    /* FullyShardedDataParallelPlugin.__post_init__ reads the strategy only
     * under version 1; version 2 shards fully and only
     * fsdp_reshard_after_forward (default true) picks the degree. */
    if (c->from[SHARDRT__F_STRATEGY]) {
      shardrt__warn("%s: ignored with fsdp_version 2 (accelerate reads only fsdp_reshard_after_forward there)",
                    c->where[SHARDRT__F_STRATEGY]);
      shardrt__note("%s: ignored with fsdp_version 2", c->where[SHARDRT__F_STRATEGY]);
    }
    fs->sharding_strategy = SHARDRT_FULL_SHARD;
    if (fs->reshard_after_forward == SHARDRT_AUTO) fs->reshard_after_forward = 1;
  } else if (c->from[SHARDRT__F_RESHARD]) {
    /* Version 1: `accelerate launch` always passes a sharding strategy
     * (default FULL_SHARD), so the plugin never falls back to
     * fsdp_reshard_after_forward (FullyShardedDataParallelPlugin.__post_init__). */
    /* quiet when it names what runs anyway (the questionnaire writes FULL_SHARD) */
    bool differs = (!c->from[SHARDRT__F_STRATEGY] && fs->sharding_strategy != SHARDRT_FULL_SHARD) ||
                   fs->reshard_after_forward == 0;
    if (differs)
      shardrt__warn("%s: ignored with fsdp_version 1 (accelerate runs fsdp_sharding_strategy, default FULL_SHARD)",
                    c->where[SHARDRT__F_RESHARD]);
    shardrt__note("%s: ignored with fsdp_version 1", c->where[SHARDRT__F_RESHARD]);
    if (!c->from[SHARDRT__F_STRATEGY]) fs->sharding_strategy = SHARDRT_FULL_SHARD;
    fs->reshard_after_forward = SHARDRT_AUTO;
  }
  if (fs->fsdp_version == 1 && fs->cpu_ram_efficient_loading && !fs->sync_module_states) {
    /* accelerate's launcher refuses this pair (utils/launch.py,
     * prepare_multi_gpu_env) */
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "%s: needs fsdp_sync_module_states true, because rank 0 loads and the others receive "
                          "(but %s)", c->from[SHARDRT__F_RAM_EFFICIENT] ? c->where[SHARDRT__F_RAM_EFFICIENT]
                                                                         : "fsdp_cpu_ram_efficient_loading (default true)",
                          c->where[SHARDRT__F_SYNC]);
  }
  if (fs->transformer_cls_names_to_wrap[0]) {
    if (!c->from[SHARDRT__F_WRAP]) fs->auto_wrap_policy = SHARDRT_WRAP_TRANSFORMER_BASED;
    else if (fs->auto_wrap_policy != SHARDRT_WRAP_TRANSFORMER_BASED)
      shardrt__warn("%s: ignored, the wrap policy is %s (%s)", c->where[SHARDRT__F_CLS],
                    shardrt_wrap_policy_name(fs->auto_wrap_policy), c->where[SHARDRT__F_WRAP]);
  }
  return SHARDRT_OK;
}

/* accelerate's parallelism_config: only data-parallel sizes map onto a plan
 * (dp_replicate x dp_shard = HYBRID_SHARD with shard group dp_shard). */
static shardrt_status apply_parallelism(const shardrt__cfg *c, shardrt_plan *plan) {
  if (!c->pc_where[0]) return SHARDRT_OK;
  const int *odd[] = {&c->pc_tp, &c->pc_cp, &c->pc_sp};
  static const char *const odd_names[] = {"tp_size", "cp_size", "sp_size"};
  for (int i = 0; i < 3; i++)
    if (*odd[i] > 1)
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "%s: %s %d: accelerate's tensor/context/sequence parallelism is not supported by "
                            "libshardrt (allowed: 1; data parallelism via dp_replicate_size x dp_shard_size)",
                            c->pc_where, odd_names[i], *odd[i]);
  /* accelerate's _validate_launch_command refuses a non-empty
   * parallelism_config outside FSDP version 2, whatever the sizes. */
  if (plan->distributed_type != SHARDRT_DIST_FSDP || plan->fsdp_version != 2)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "%s: needs distributed_type FSDP with fsdp_version 2 (the device mesh is FSDP2's; accelerate refuses "
                          "--use_parallelism_config without it)",
                          c->pc_where);
  int rep = c->pc_dp_replicate > 0 ? c->pc_dp_replicate : 1;
  int shard = c->pc_dp_shard;
  if (rep == 1 && shard <= 0) return SHARDRT_OK; /* nothing asked */
  if (shard <= 0 && plan->num_processes > 0) {
    if (plan->num_processes % rep)
      return shardrt__error(SHARDRT_ERR_CONFIG, "%s: dp_replicate_size %d does not divide num_processes %d",
                            c->pc_where, rep, plan->num_processes);
    shard = plan->num_processes / rep;
  }
  if (plan->num_processes > 0 && shard > 0 && rep * shard != plan->num_processes)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "%s: dp_replicate_size %d x dp_shard_size %d is not num_processes %d (allowed: sizes whose "
                          "product is the number of ranks)", c->pc_where, rep, shard, plan->num_processes);
  if (rep > 1) {
    plan->strategy = plan->strategy == SHARDRT_SHARD_GRAD_OP ? SHARDRT_HYBRID_SHARD_ZERO2 : SHARDRT_HYBRID_SHARD;
    if (shard > 0) plan->shard_group_size = shard;
  }
  return SHARDRT_OK;
}

static shardrt_status check_ds_precision(shardrt__cfg *c, shardrt_mixed_precision mp) {
  const shardrt_deepspeed_plugin *d = &c->ds;
  if (d->fp16_enabled == 1 && d->bf16_enabled == 1)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s and %s: only one of fp16 and bf16 may be enabled",
                          c->where[SHARDRT__F_FP16_EN], c->where[SHARDRT__F_BF16_EN]);
  for (int k = 0; k < 2; k++) {
    shardrt__field f = k ? SHARDRT__F_BF16_EN : SHARDRT__F_FP16_EN;
    int en = k ? d->bf16_enabled : d->fp16_enabled;
    shardrt_mixed_precision mine = k ? SHARDRT_MP_BF16 : SHARDRT_MP_FP16;
    const char *mp_where = c->from[SHARDRT__F_MP] ? c->where[SHARDRT__F_MP] : "fp16: true (legacy key)";
    if (en == 1 && mp != SHARDRT_MP_NO && mp != mine)
      return shardrt__error(SHARDRT_ERR_CONFIG, "%s contradicts %s (allowed: mixed_precision %s, or \"auto\" in the "
                            "JSON)", c->where[f], mp_where, shardrt_mixed_precision_name(mine));
    if (en == 0 && mp == mine)
      return shardrt__error(SHARDRT_ERR_CONFIG, "%s contradicts %s (allowed: enable it, or \"auto\" in the JSON)",
                            c->where[f], mp_where);
  }
  return SHARDRT_OK;
}

static void warn_unused_sections(const shardrt__cfg *c, shardrt_dist_type dist) {
  for (int f = SHARDRT__F_FSDP_FIRST; f < SHARDRT__F_COUNT_; f++) {
    bool fsdp = f < SHARDRT__F_DS_FIRST;
    if (!c->from[f] || dist == (fsdp ? SHARDRT_DIST_FSDP : SHARDRT_DIST_DEEPSPEED)) continue;
    /* Accumulation and clipping flags are everyone's business. */
    if ((f == SHARDRT__F_ACCUM || f == SHARDRT__F_CLIP) && c->from[f] == SHARDRT__FROM_FLAG) continue;
    shardrt__warn("%s: ignored, distributed_type is %s", c->where[f], shardrt_dist_type_name(dist));
  }
}

shardrt_status shardrt__cfg_finish(shardrt__cfg *c, shardrt_plan *out) {
  shardrt_plan plan = c->plan;
  shardrt_status rc = SHARDRT_OK;
  if (c->fp16_legacy) {
    if (c->from[SHARDRT__F_MP] && plan.mixed_precision != SHARDRT_MP_FP16 && plan.mixed_precision != SHARDRT_MP_NO)
      return shardrt__error(SHARDRT_ERR_CONFIG, "%s contradicts %s (legacy key; allowed: remove it, or fp16)",
                            c->where[SHARDRT__F_MP], c->where[SHARDRT__F_FP16_LEGACY]);
    if (!c->from[SHARDRT__F_MP] || plan.mixed_precision == SHARDRT_MP_NO) plan.mixed_precision = SHARDRT_MP_FP16;
  }
  /* --cpu / use_cpu on a GPU data-parallel config: the same on the CPU. */
  if (plan.use_cpu && plan.distributed_type == SHARDRT_DIST_MULTI_GPU) plan.distributed_type = SHARDRT_DIST_MULTI_CPU;
  shardrt_dist_type dist = plan.distributed_type;
  warn_unused_sections(c, dist);
  shardrt_fsdp_plugin fs = c->fsdp;
  if (dist == SHARDRT_DIST_FSDP) {
    SHARDRT__CHECK(check_fsdp(c, &fs));
    rc = shardrt_plan_from_fsdp_plugin(&fs, &plan);
  } else if (dist == SHARDRT_DIST_DEEPSPEED) {
    SHARDRT__CHECK(check_ds_precision(c, plan.mixed_precision));
    rc = shardrt__plan_from_ds(&c->ds, &plan);
  } else {
    plan.strategy = SHARDRT_NO_SHARD;
    plan.flavor = SHARDRT_FLAVOR_FSDP;
    if (c->from[SHARDRT__F_ACCUM] == SHARDRT__FROM_FLAG && c->ds.gradient_accumulation_steps != SHARDRT_AUTO)
      plan.gradient_accumulation_steps = c->ds.gradient_accumulation_steps;
    if (c->from[SHARDRT__F_CLIP] == SHARDRT__FROM_FLAG && c->ds.gradient_clipping != SHARDRT_AUTO)
      plan.gradient_clipping = c->ds.gradient_clipping;
  }
  if (dist == SHARDRT_DIST_FSDP) {
    if (c->from[SHARDRT__F_ACCUM] == SHARDRT__FROM_FLAG && c->ds.gradient_accumulation_steps != SHARDRT_AUTO)
      plan.gradient_accumulation_steps = c->ds.gradient_accumulation_steps;
    if (c->from[SHARDRT__F_CLIP] == SHARDRT__FROM_FLAG && c->ds.gradient_clipping != SHARDRT_AUTO)
      plan.gradient_clipping = c->ds.gradient_clipping;
  }
  if (rc == SHARDRT_OK) rc = apply_parallelism(c, &plan);
  if (rc != SHARDRT_OK) {
    if (c->source[0]) return shardrt__error_wrap(rc, "%s", c->source);
    return rc;
  }
  /* The JSON's optimizer and scheduler (their messages name the file). */
  if (dist == SHARDRT_DIST_DEEPSPEED) SHARDRT__CHECK(shardrt__cfg_optim_finish(c, &plan));
  if (c->from[SHARDRT__F_SHARD_GROUP]) plan.shard_group_size = c->plan.shard_group_size;
  bool hybrid = plan.strategy == SHARDRT_HYBRID_SHARD || plan.strategy == SHARDRT_HYBRID_SHARD_ZERO2;
  if (hybrid && plan.shard_group_size == 0 && plan.num_machines > 1 && plan.num_processes > 0) {
    if (plan.num_processes % plan.num_machines)
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "%s: %s shards within a machine, so num_processes %d must be a multiple of "
                            "num_machines %d", c->source[0] ? c->source : "config",
                            shardrt_strategy_name(plan.strategy), plan.num_processes, plan.num_machines);
    plan.shard_group_size = plan.num_processes / plan.num_machines;
  }
  if (plan.num_machines > 1 && plan.machine_rank >= plan.num_machines)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: machine_rank %d is not below num_machines %d (allowed: 0 to %d)",
                          c->from[SHARDRT__F_MACH_RANK] ? c->where[SHARDRT__F_MACH_RANK] : "config",
                          plan.machine_rank, plan.num_machines, plan.num_machines - 1);
  *out = plan;
  return SHARDRT_OK;
}

shardrt_status shardrt_config_load(const char *path, shardrt_plan *plan) {
  if (!path || !plan) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_config_load: NULL argument");
  shardrt__cfg *c = malloc(sizeof *c);
  if (!c) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "shardrt_config_load: out of memory");
  shardrt__cfg_init(c, plan);
  shardrt_status rc = shardrt__cfg_load_file(c, path);
  if (rc == SHARDRT_OK) rc = shardrt__cfg_finish(c, plan);
  free(c);
  return rc;
}

/* A plugin field that differs from its default was set by the program: it
 * fills a JSON "auto" (or an absent key) and must match an explicit value. */
#define MERGE(F, m, same)                                                                                     \
  do {                                                                                                        \
    if (!same(p->m, def.m)) {                                                                                 \
      if (c->from[F] == SHARDRT__FROM_JSON && !c->is_auto[F] && !same(p->m, c->ds.m)) {                       \
        rc = shardrt__error(SHARDRT_ERR_CONFIG, "deepspeed plugin: field " #m " contradicts the DeepSpeed JSON (%s)", \
                            c->where[F]);                                                                     \
        goto done;                                                                                            \
      }                                                                                                       \
      memcpy(&c->ds.m, &p->m, sizeof c->ds.m);                                                                \
    }                                                                                                         \
  } while (0)
#define SAME_NUM(a, b) ((a) == (b))
#define SAME_STR(a, b) (strcmp((a), (b)) == 0)

shardrt_status shardrt_plan_from_deepspeed_plugin(const shardrt_deepspeed_plugin *p, shardrt_plan *plan) {
  if (!p || !plan)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_plan_from_deepspeed_plugin: NULL argument");
  if (memchr(p->hf_ds_config, '\0', sizeof p->hf_ds_config) == NULL)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "deepspeed plugin: hf_ds_config is not NUL-terminated");
  if (!p->hf_ds_config[0]) return shardrt__plan_from_ds(p, plan);
  shardrt__cfg *c = malloc(sizeof *c);
  if (!c) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "deepspeed plugin: out of memory");
  shardrt__cfg_init(c, plan);
  shardrt_deepspeed_plugin def;
  shardrt_deepspeed_plugin_default(&def);
  shardrt_status rc = shardrt__cfg_load_file(c, p->hf_ds_config);
  if (rc != SHARDRT_OK) goto done;
  MERGE(SHARDRT__F_ZERO_STAGE, zero_stage, SAME_NUM);
  MERGE(SHARDRT__F_ACCUM, gradient_accumulation_steps, SAME_NUM);
  MERGE(SHARDRT__F_CLIP, gradient_clipping, SAME_NUM);
  MERGE(SHARDRT__F_OPT_DEV, offload_optimizer_device, SAME_NUM);
  MERGE(SHARDRT__F_PARAM_DEV, offload_param_device, SAME_NUM);
  MERGE(SHARDRT__F_OPT_NVME, offload_optimizer_nvme_path, SAME_STR);
  MERGE(SHARDRT__F_PARAM_NVME, offload_param_nvme_path, SAME_STR);
  MERGE(SHARDRT__F_Z3_INIT, zero3_init_flag, SAME_NUM);
  MERGE(SHARDRT__F_Z3_SAVE, zero3_save_16bit_model, SAME_NUM);
  MERGE(SHARDRT__F_PREFETCH_BUCKET, stage3_prefetch_bucket_size, SAME_NUM);
  MERGE(SHARDRT__F_PERSISTENCE, stage3_param_persistence_threshold, SAME_NUM);
  MERGE(SHARDRT__F_MAX_LIVE, stage3_max_live_parameters, SAME_NUM);
  MERGE(SHARDRT__F_MAX_REUSE, stage3_max_reuse_distance, SAME_NUM);
  MERGE(SHARDRT__F_REDUCE_BUCKET, reduce_bucket_size, SAME_NUM);
  MERGE(SHARDRT__F_AG_BUCKET, allgather_bucket_size, SAME_NUM);
  MERGE(SHARDRT__F_OVERLAP, overlap_comm, SAME_NUM);
  MERGE(SHARDRT__F_CONTIGUOUS, contiguous_gradients, SAME_NUM);
  MERGE(SHARDRT__F_HPZ, zero_hpz_partition_size, SAME_NUM);
  MERGE(SHARDRT__F_FP16_EN, fp16_enabled, SAME_NUM);
  MERGE(SHARDRT__F_BF16_EN, bf16_enabled, SAME_NUM);
  MERGE(SHARDRT__F_LOSS_SCALE, loss_scale, SAME_NUM);
  MERGE(SHARDRT__F_SCALE_POWER, initial_scale_power, SAME_NUM);
  MERGE(SHARDRT__F_SCALE_WINDOW, loss_scale_window, SAME_NUM);
  MERGE(SHARDRT__F_HYSTERESIS, hysteresis, SAME_NUM);
  MERGE(SHARDRT__F_MIN_SCALE, min_loss_scale, SAME_NUM);
  MERGE(SHARDRT__F_MICRO_BATCH, train_micro_batch_size_per_gpu, SAME_NUM);
  MERGE(SHARDRT__F_TRAIN_BATCH, train_batch_size, SAME_NUM);
  rc = check_ds_precision(c, plan->mixed_precision);
  shardrt_plan out = *plan;
  if (rc == SHARDRT_OK) rc = shardrt__plan_from_ds(&c->ds, &out);
  if (rc == SHARDRT_OK) rc = shardrt__cfg_optim_finish(c, &out);
  if (rc == SHARDRT_OK) *plan = out;
done:
  free(c);
  return rc;
}

shardrt_status shardrt_plan_set_program_hints(shardrt_plan *plan, int64_t hidden_size, int64_t micro_batch,
                                              int world_size) {
  if (!plan) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_plan_set_program_hints: plan is NULL");
  if (hidden_size < 0 || hidden_size > (1ll << 31) || micro_batch < 0 || world_size < 0)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT,
                          "shardrt_plan_set_program_hints: hidden_size %lld, micro_batch %lld, world_size %d "
                          "(allowed: 0 for unknown, else hidden_size <= 2^31, micro_batch >= 1, world_size >= 1)",
                          (long long)hidden_size, (long long)micro_batch, world_size);
  uint32_t u = plan->unresolved;
  int64_t accum = plan->gradient_accumulation_steps > 0 ? plan->gradient_accumulation_steps : 1;
  if (hidden_size > 0) {
    /* DeepSpeed's "auto" rules from the model's hidden size h. */
    if (u & SHARDRT_UNRESOLVED_REDUCE_BUCKET) plan->reduce_bucket_size = hidden_size * hidden_size;
    if (u & SHARDRT_UNRESOLVED_PREFETCH_BUCKET)
      plan->prefetch_bucket_size = (int64_t)(0.9 * (double)hidden_size * (double)hidden_size);
    if (u & SHARDRT_UNRESOLVED_PERSISTENCE) plan->param_persistence_threshold = 10 * hidden_size;
    u &= ~(uint32_t)(SHARDRT_UNRESOLVED_REDUCE_BUCKET | SHARDRT_UNRESOLVED_PREFETCH_BUCKET |
                     SHARDRT_UNRESOLVED_PERSISTENCE);
  }
  if (micro_batch > 0) {
    if (u & SHARDRT_UNRESOLVED_MICRO_BATCH) {
      plan->train_micro_batch_size_per_gpu = micro_batch;
      u &= ~(uint32_t)SHARDRT_UNRESOLVED_MICRO_BATCH;
    } else if (plan->train_micro_batch_size_per_gpu > 0 && plan->train_micro_batch_size_per_gpu != micro_batch) {
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "program hints: the program's micro batch %lld differs from the config's "
                            "train_micro_batch_size_per_gpu %lld (make them agree or write \"auto\")",
                            (long long)micro_batch, (long long)plan->train_micro_batch_size_per_gpu);
    }
  }
  if (world_size > 0 && (u & SHARDRT_UNRESOLVED_MICRO_BATCH) && !(u & SHARDRT_UNRESOLVED_TRAIN_BATCH) &&
      plan->train_batch_size > 0) {
    int64_t per = accum * world_size;
    if (plan->train_batch_size % per)
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "program hints: train_batch_size %lld is not divisible by gradient_accumulation_steps "
                            "%lld x world size %d", (long long)plan->train_batch_size, (long long)accum, world_size);
    plan->train_micro_batch_size_per_gpu = plan->train_batch_size / per;
    u &= ~(uint32_t)SHARDRT_UNRESOLVED_MICRO_BATCH;
  }
  if (world_size > 0 && (u & SHARDRT_UNRESOLVED_TRAIN_BATCH) && !(u & SHARDRT_UNRESOLVED_MICRO_BATCH) &&
      plan->train_micro_batch_size_per_gpu > 0) {
    plan->train_batch_size = plan->train_micro_batch_size_per_gpu * accum * world_size;
    u &= ~(uint32_t)SHARDRT_UNRESOLVED_TRAIN_BATCH;
  }
  if (world_size > 0 && !(u & (SHARDRT_UNRESOLVED_MICRO_BATCH | SHARDRT_UNRESOLVED_TRAIN_BATCH)) &&
      plan->train_batch_size > 0 && plan->train_micro_batch_size_per_gpu > 0 &&
      plan->train_batch_size != plan->train_micro_batch_size_per_gpu * accum * world_size)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "program hints: train_batch_size %lld != train_micro_batch_size_per_gpu %lld x "
                          "gradient_accumulation_steps %lld x world size %d",
                          (long long)plan->train_batch_size, (long long)plan->train_micro_batch_size_per_gpu,
                          (long long)accum, world_size);
  plan->unresolved = u;
  return SHARDRT_OK;
}
