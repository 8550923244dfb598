/* SPDX-License-Identifier: Apache-2.0 */
/* The plan as JSON (`shardrt plan`) or as an aligned table for people. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "shardrt/plan.h"

typedef struct writer {
  char *buf;
  size_t len, pos;
  bool table, first;
} writer;

static void out(writer *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = w->pos < w->len ? w->len - w->pos : 0;
  int n = vsnprintf(room ? w->buf + w->pos : NULL, room, fmt, ap);
  va_end(ap);
  if (n > 0) w->pos += (size_t)n;
}

static void key(writer *w, const char *k) {
  if (w->table) {
    out(w, "%-28s ", k);
  } else {
    out(w, "%s\n  \"%s\": ", w->first ? "" : ",", k);
    w->first = false;
  }
}
static void end(writer *w) {
  if (w->table) out(w, "\n");
}

/* Writes s as a JSON string (escaped) or plain text in a table. */
static void str(writer *w, const char *k, const char *s) {
  key(w, k);
  if (w->table) {
    out(w, "%s", s);
  } else {
    out(w, "\"");
    for (const char *c = s; *c; c++) {
      if (*c == '"' || *c == '\\') out(w, "\\%c", *c);
      else if ((unsigned char)*c < 0x20) out(w, "\\u%04x", (unsigned char)*c);
      else out(w, "%c", *c);
    }
    out(w, "\"");
  }
  end(w);
}
static void boolean(writer *w, const char *k, bool b) {
  key(w, k);
  out(w, "%s", b ? "true" : "false");
  end(w);
}
static void integer(writer *w, const char *k, long long v) {
  key(w, k);
  out(w, "%lld", v);
  end(w);
}
/* A program-dependent value a config left "auto". */
static void maybe_int(writer *w, const char *k, long long v, bool unresolved) {
  if (unresolved) str(w, k, "auto (set by the program)");
  else integer(w, k, v);
}

static void number(writer *w, const char *k, double v) {
  key(w, k);
  out(w, "%.9g", v);
  end(w);
}
/* A config value, or the program's when the config left it "auto". */
static void maybe_num(writer *w, const char *k, double v, bool given) {
  if (given) number(w, k, v);
  else str(w, k, "auto (set by the program)");
}

/* The DeepSpeed JSON optimizer and scheduler: only what their type uses. */
static void optim_sections(writer *w, const shardrt_plan *p) {
  const shardrt_plan_optimizer *o = &p->optimizer;
  str(w, "optimizer", shardrt_optimizer_type_name(o->type));
  if (o->type != SHARDRT_OPTIMIZER_PROGRAM) {
    maybe_num(w, "optimizer_lr", o->lr, o->given & SHARDRT_GIVEN_LR);
    if (o->type == SHARDRT_OPTIMIZER_ADAMW) {
      if (o->given & SHARDRT_GIVEN_BETAS) {
        key(w, "optimizer_betas");
        out(w, w->table ? "%.9g,%.9g" : "[%.9g, %.9g]", o->beta1, o->beta2);
        end(w);
      } else {
        str(w, "optimizer_betas", "auto (set by the program)");
      }
      maybe_num(w, "optimizer_eps", o->eps, o->given & SHARDRT_GIVEN_EPS);
    } else {
      maybe_num(w, "optimizer_momentum", o->momentum, o->given & SHARDRT_GIVEN_MOMENTUM);
    }
    maybe_num(w, "optimizer_weight_decay", o->weight_decay, o->given & SHARDRT_GIVEN_WEIGHT_DECAY);
  }
  const shardrt_plan_scheduler *s = &p->scheduler;
  str(w, "scheduler", shardrt_lr_schedule_name(s->type));
  if (s->type == SHARDRT_SCHEDULE_NONE) return;
  bool cosine = s->type == SHARDRT_SCHEDULE_WARMUP_COSINE_LR;
  if (!cosine) {
    number(w, "warmup_min_lr", s->warmup_min_lr);
    maybe_num(w, "warmup_max_lr", s->warmup_max_lr, s->given & SHARDRT_GIVEN_WARMUP_MAX_LR);
  }
  maybe_int(w, "warmup_num_steps", s->warmup_num_steps, !(s->given & SHARDRT_GIVEN_WARMUP_NUM_STEPS));
  str(w, "warmup_type", shardrt_warmup_type_name(s->warmup_type));
  if (s->type != SHARDRT_SCHEDULE_WARMUP_LR)
    maybe_int(w, "total_num_steps", s->total_num_steps, !(s->given & SHARDRT_GIVEN_TOTAL_NUM_STEPS));
  if (cosine) {
    number(w, "warmup_min_ratio", s->warmup_min_ratio);
    number(w, "cos_min_ratio", s->cos_min_ratio);
  }
}

int shardrt_plan_format(const shardrt_plan *p, bool table, char *buf, size_t len) {
  writer w = {.buf = buf, .len = len, .table = table, .first = true};
  if (len) buf[0] = '\0';
  if (!table) out(&w, "{");
  str(&w, "distributed_type", shardrt_dist_type_name(p->distributed_type));
  str(&w, "flavor", p->flavor == SHARDRT_FLAVOR_DEEPSPEED ? "deepspeed" : "fsdp");
  str(&w, "strategy", shardrt_strategy_name(p->strategy));
  integer(&w, "zero_stage", p->zero_stage);
  boolean(&w, "shard_params", p->shard_params);
  boolean(&w, "shard_grads", p->shard_grads);
  boolean(&w, "shard_optimizer", p->shard_optimizer);
  boolean(&w, "reshard_after_forward", p->reshard_after_forward);
  integer(&w, "shard_group_size", p->shard_group_size);
  str(&w, "mixed_precision", shardrt_mixed_precision_name(p->mixed_precision));
  str(&w, "load_dtype", shardrt_dtype_name(p->load_dtype));
  str(&w, "flat_param_dtype", shardrt_dtype_name(p->flat_param_dtype));
  str(&w, "compute_dtype", shardrt_dtype_name(p->compute_dtype));
  str(&w, "reduce_dtype", shardrt_dtype_name(p->reduce_dtype));
  /* default: the compute dtype, as accelerate's FSDP policy and DeepSpeed */
  str(&w, "reduce_dtype_from", p->reduce_dtype_set ? "config" : "default");
  str(&w, "optimizer_dtype", shardrt_dtype_name(p->optimizer_dtype));
  boolean(&w, "master_weights", p->master_weights);
  boolean(&w, "loss_scaling", p->loss_scaling);
  str(&w, "offload_params", shardrt_offload_name(p->offload_params));
  str(&w, "offload_param_nvme_path", p->offload_param_nvme_path);
  str(&w, "offload_optimizer", shardrt_offload_name(p->offload_optimizer));
  str(&w, "offload_optimizer_nvme_path", p->offload_optimizer_nvme_path);
  boolean(&w, "forward_prefetch", p->forward_prefetch);
  str(&w, "backward_prefetch", shardrt_backward_prefetch_name(p->backward_prefetch));
  maybe_int(&w, "prefetch_bucket_size", p->prefetch_bucket_size, p->unresolved & SHARDRT_UNRESOLVED_PREFETCH_BUCKET);
  maybe_int(&w, "param_persistence_threshold", p->param_persistence_threshold,
            p->unresolved & SHARDRT_UNRESOLVED_PERSISTENCE);
  integer(&w, "max_live_parameters", p->max_live_parameters);
  integer(&w, "max_reuse_distance", p->max_reuse_distance);
  maybe_int(&w, "reduce_bucket_size", p->reduce_bucket_size, p->unresolved & SHARDRT_UNRESOLVED_REDUCE_BUCKET);
  integer(&w, "allgather_bucket_size", p->allgather_bucket_size);
  boolean(&w, "overlap_comm", p->overlap_comm);
  boolean(&w, "contiguous_gradients", p->contiguous_gradients);
  str(&w, "wrap_policy", shardrt_wrap_policy_name(p->wrap_policy));
  key(&w, "wrap_classes");
  out(&w, table ? "" : "[");
  for (int i = 0; i < p->num_wrap_classes; i++)
    out(&w, table ? "%s%s" : "%s\"%s\"", i ? (table ? "," : ", ") : "", p->wrap_classes[i]);
  if (!table) out(&w, "]");
  else if (p->num_wrap_classes == 0 && p->wrap_policy == SHARDRT_WRAP_TRANSFORMER_BASED)
    out(&w, "(the program's block classes)");
  end(&w);
  /* TRANSFORMER_BASED_WRAP without names wraps the program's declared
   * block classes, as accelerate wraps _no_split_modules. */
  str(&w, "wrap_classes_from",
      p->wrap_policy != SHARDRT_WRAP_TRANSFORMER_BASED ? "none" : p->num_wrap_classes ? "config" : "program");
  str(&w, "ignored_modules", p->ignored_modules);
  integer(&w, "min_num_params", p->min_num_params);
  integer(&w, "gradient_accumulation_steps", p->gradient_accumulation_steps);
  str(&w, "accum_mode", shardrt_accum_mode_name(p->accum_mode));
  key(&w, "gradient_clipping");
  out(&w, "%g", p->gradient_clipping);
  end(&w);
  str(&w, "state_dict_type", shardrt_state_dict_type_name(p->state_dict_type));
  boolean(&w, "save_16bit_model", p->save_16bit_model);
  boolean(&w, "cpu_ram_efficient_loading", p->cpu_ram_efficient_loading);
  boolean(&w, "sync_module_states", p->sync_module_states);
  boolean(&w, "activation_checkpointing", p->activation_checkpointing);
  boolean(&w, "use_orig_params", p->use_orig_params);
  integer(&w, "fsdp_version", p->fsdp_version);
  if (p->loss_scaling) {
    number(&w, "loss_scale", p->loss_scale);
    integer(&w, "initial_scale_power", p->initial_scale_power);
    integer(&w, "loss_scale_window", p->loss_scale_window);
    integer(&w, "hysteresis", p->hysteresis);
    number(&w, "min_loss_scale", p->min_loss_scale);
  }
  maybe_int(&w, "train_micro_batch_size_per_gpu", p->train_micro_batch_size_per_gpu,
            p->unresolved & SHARDRT_UNRESOLVED_MICRO_BATCH);
  maybe_int(&w, "train_batch_size", p->train_batch_size, p->unresolved & SHARDRT_UNRESOLVED_TRAIN_BATCH);
  optim_sections(&w, p);
  integer(&w, "num_processes", p->num_processes);
  integer(&w, "num_machines", p->num_machines);
  integer(&w, "machine_rank", p->machine_rank);
  boolean(&w, "use_cpu", p->use_cpu);
  str(&w, "main_process_ip", p->main_process_ip);
  integer(&w, "main_process_port", p->main_process_port);
  str(&w, "mpirun_hostfile", p->mpirun_hostfile);
  str(&w, "gpu_ids", p->gpu_ids);
  if (!table) out(&w, "\n}\n");
  return (int)w.pos;
}
