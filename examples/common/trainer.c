/* SPDX-License-Identifier: Apache-2.0 */
#include "trainer.h"

#include <inttypes.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ex_opts_default(ex_opts *o) {
  memset(o, 0, sizeof *o);
  o->steps = 20;
  o->lr = 1e-3;
  o->seed = 1234;
  o->global_batch = 32;
  o->device = "cpu";
  o->comm = "auto";
  o->optimizer = "adamw";
  o->weight_decay = 0.01;
  o->momentum = 0.9;
}

void ex_print_common_usage(FILE *f) {
  fprintf(f,
          "common flags:\n"
          "  --config_file FILE.yaml   accelerate-style config (plus any accelerate launch override flag)\n"
          "  --steps N                 optimizer steps (default 20); also a DeepSpeed JSON schedule's total_num_steps\n"
          "  --warmup_steps N          warmup steps for a DeepSpeed JSON schedule's \"auto\" warmup_num_steps\n"
          "  --lr X                    learning rate (default 1e-3)\n"
          "  --seed N                  data and init seed (default 1234)\n"
          "  --global_batch N          samples per step across all ranks (default 32)\n"
          "  --device cpu|cuda         compute device (default cpu)\n"
          "  --comm auto|mpi|nccl      collective backend (default auto)\n"
          "  --optimizer adamw|sgd     (default adamw); --weight_decay X; --momentum X (sgd)\n"
          "  --log FILE.jsonl          per-step JSON log (rank 0)\n"
          "  --trace FILE.json         Chrome/Perfetto timeline; %%r in FILE becomes the rank\n"
          "  --weights_out FILE        final weights as raw fp32 (rank 0)\n"
          "  --save_dir DIR --save_every N --resume DIR --load_weights FILE.safetensors\n"
          "  --quiet                   no progress lines\n"
          "  --check_finite            stop at a step whose gradient holds NaN/Inf (unless fp16 loss scaling skips\n"
          "                            it) and refuse NaN/Inf in loaded weights: SHARDRT_CHECK_FINITE=1\n");
}

static int parse_int(const char *flag, const char *v, long lo, long hi, long *out) {
  char *end;
  long x = strtol(v, &end, 10);
  if (!*v || *end || x < lo || x > hi) {
    fprintf(stderr, "error: %s '%s' must be an integer in [%ld, %ld]\n", flag, v, lo, hi);
    return 2;
  }
  *out = x;
  return 0;
}

static int parse_double(const char *flag, const char *v, double *out) {
  char *end;
  double x = strtod(v, &end);
  if (!*v || *end || !isfinite(x) || x < 0) {
    fprintf(stderr, "error: %s '%s' must be a non-negative number\n", flag, v);
    return 2;
  }
  *out = x;
  return 0;
}

int ex_parse_common(int *argc, char **argv, ex_opts *o) {
  int w = 1;
  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    char name[64];
    const char *eq = strchr(a, '=');
    if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
      snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
      val = eq + 1;
    } else {
      snprintf(name, sizeof name, "%s", a);
    }
    static const char *const with_value[] = {"--steps", "--lr", "--seed", "--global_batch", "--device", "--comm",
                                             "--log", "--trace", "--weights_out", "--save_dir", "--save_every",
                                             "--resume", "--load_weights", "--optimizer", "--weight_decay",
                                             "--momentum", "--warmup_steps"};
    bool known = false;
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) known |= strcmp(name, with_value[k]) == 0;
    if (strcmp(name, "--quiet") == 0) {
      o->quiet = true;
      continue;
    }
    if (strcmp(name, "--check_finite") == 0) {
      /* The library reads the variable (src/core/step.c, src/ckpt/load.c);
       * every rank parses the same flags, so every rank sets it. */
      if (setenv("SHARDRT_CHECK_FINITE", "1", 1) != 0) {
        fprintf(stderr, "error: --check_finite: cannot set SHARDRT_CHECK_FINITE\n");
        return 2;
      }
      continue;
    }
    if (!known) {
      argv[w++] = argv[i];
      continue;
    }
    if (!val) {
      if (i + 1 >= *argc) {
        fprintf(stderr, "error: %s needs a value\n", name);
        return 2;
      }
      val = argv[++i];
    }
    /* Zero so a failed parse (rc != 0, x unset) stores a defined value that
     * the caller discards: gcc 14's -Wmaybe-uninitialized flags the read. */
    long x = 0;
    int rc = 0;
    if (!strcmp(name, "--steps")) rc = parse_int(name, val, 0, 100000000, &x), o->steps = (int)x;
    else if (!strcmp(name, "--warmup_steps")) rc = parse_int(name, val, 0, 100000000, &x), o->warmup_steps = (int)x;
    else if (!strcmp(name, "--seed")) rc = parse_int(name, val, 0, 0x7fffffffL, &x), o->seed = (uint64_t)x;
    else if (!strcmp(name, "--global_batch")) rc = parse_int(name, val, 1, 1 << 24, &x), o->global_batch = (int)x;
    else if (!strcmp(name, "--save_every")) rc = parse_int(name, val, 0, 100000000, &x), o->save_every = (int)x;
    else if (!strcmp(name, "--lr")) rc = parse_double(name, val, &o->lr);
    else if (!strcmp(name, "--weight_decay")) rc = parse_double(name, val, &o->weight_decay);
    else if (!strcmp(name, "--momentum")) rc = parse_double(name, val, &o->momentum);
    else if (!strcmp(name, "--device")) {
      if (strcmp(val, "cpu") && strcmp(val, "cuda")) {
        fprintf(stderr, "error: --device '%s' is not a device (allowed: cpu, cuda)\n", val);
        return 2;
      }
      o->device = val;
    } else if (!strcmp(name, "--comm")) {
      if (strcmp(val, "auto") && strcmp(val, "mpi") && strcmp(val, "nccl")) {
        fprintf(stderr, "error: --comm '%s' is not a backend (allowed: auto, mpi, nccl)\n", val);
        return 2;
      }
      o->comm = val;
    } else if (!strcmp(name, "--optimizer")) {
      if (strcmp(val, "adamw") && strcmp(val, "sgd")) {
        fprintf(stderr, "error: --optimizer '%s' is unknown (allowed: adamw, sgd)\n", val);
        return 2;
      }
      o->optimizer = val;
    } else if (!strcmp(name, "--log")) o->log_path = val;
    else if (!strcmp(name, "--trace")) o->trace_path = val;
    else if (!strcmp(name, "--weights_out")) o->weights_out = val;
    else if (!strcmp(name, "--save_dir")) o->save_dir = val;
    else if (!strcmp(name, "--resume")) o->resume_dir = val;
    else if (!strcmp(name, "--load_weights")) o->load_weights = val;
    if (rc) return rc;
  }
  *argc = w;
  argv[w] = NULL;
  if ((o->save_dir != NULL) != (o->save_every > 0)) {
    fprintf(stderr, "error: --save_dir DIR and --save_every N (N >= 1) go together\n");
    return 2;
  }
  return 0;
}

int ex_reject_leftovers(int argc, char **argv, const char *prog) {
  if (argc <= 1) return 0;
  fprintf(stderr, "%s: error: unknown argument '%s' (see --help)\n", prog, argv[1]);
  return 2;
}

int ex_context_create(const char *prog, const ex_opts *o, const shardrt_plan *plan, shardrt_ctx **ctx) {
  shardrt_ctx_params cp;
  shardrt_ctx_params_default(&cp);
  cp.device = o->device;
  cp.comm = o->comm;
  cp.plan = plan;
  *ctx = NULL;
  shardrt_status rc = shardrt_ctx_create(&cp, ctx);
  if (rc) return ex_fail(prog, "creating the context", rc);
  int world = shardrt_world_size(*ctx), A = shardrt_get_plan(*ctx)->gradient_accumulation_steps;
  if (o->global_batch % (A * world) != 0) {
    if (shardrt_rank(*ctx) == 0)
      fprintf(stderr,
              "%s: error: --global_batch %d must be divisible by gradient_accumulation_steps (%d) x world size (%d)\n",
              prog, o->global_batch, A, world);
    shardrt_ctx_destroy(*ctx);
    *ctx = NULL;
    return 2;
  }
  shardrt_optim_params op;
  shardrt_optim_params_default(&op);
  op.kind = strcmp(o->optimizer, "sgd") == 0 ? SHARDRT_OPTIM_SGD : SHARDRT_OPTIM_ADAMW;
  op.lr = o->lr;
  op.weight_decay = o->weight_decay;
  /* SGD's momentum; also what a DeepSpeed JSON SGD's "auto" momentum takes. */
  op.momentum = o->momentum;
  /* The planned run, for a DeepSpeed JSON schedule that leaves total_num_steps
   * or warmup_num_steps "auto" (the whole run's count, also on --resume). */
  const char *what = "optimizer";
  if ((rc = shardrt_set_optimizer(*ctx, &op)) == SHARDRT_OK) {
    what = "shardrt_set_train_steps";
    rc = shardrt_set_train_steps(*ctx, o->steps, o->warmup_steps);
  }
  if (rc) {
    shardrt_ctx_destroy(*ctx);
    *ctx = NULL;
    return ex_fail(prog, what, rc);
  }
  return 0;
}

int ex_fail(const char *prog, const char *what, shardrt_status rc) {
  fprintf(stderr, "%s: error: %s: %s: %s\n", prog, what, shardrt_status_str(rc), shardrt_last_error());
  return 1;
}

uint64_t ex_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull ^ (a + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull ^
               (b + 0x8CB92BA72F3D8DD7ull) * 0x94D049BB133111EBull ^ (c + 0x1F83D9ABFB41BD6Bull);
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

float ex_uniform(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  return (float)((double)(ex_hash(seed, a, b, c) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

float ex_normal(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  double u1 = ((double)(ex_hash(seed, a, b, 2 * c) >> 11) + 0.5) / 9007199254740992.0;
  double u2 = (double)(ex_hash(seed, a, b, 2 * c + 1) >> 11) / 9007199254740992.0;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void ex_view_to_f32(const shardrt_view *v, float *dst) { shardrt_convert(dst, SHARDRT_F32, v->data, v->dtype, (size_t)v->numel); }

void ex_view_add_f32(const shardrt_view *v, const float *src) {
  if (v->dtype == SHARDRT_F32) {
    float *d = v->data;
    for (int64_t i = 0; i < v->numel; i++) d[i] += src[i];
    return;
  }
  uint16_t *d = v->data;
  for (int64_t i = 0; i < v->numel; i++) {
    if (v->dtype == SHARDRT_BF16) d[i] = shardrt_f32_to_bf16(shardrt_bf16_to_f32(d[i]) + src[i]);
    else d[i] = shardrt_f32_to_f16(shardrt_f16_to_f32(d[i]) + src[i]);
  }
}

void ex_log_step(FILE *f, shardrt_ctx *ctx, const ex_step_record *r) {
  if (!f || shardrt_rank(ctx) != 0) return;
  shardrt_comm_stats cs;
  shardrt_mem_stats ms;
  shardrt_comm_stats_get(ctx, &cs);
  shardrt_mem_stats_get(ctx, &ms);
  double comm_time = 0;
  for (int k = 0; k < SHARDRT_COLL_COUNT_; k++) comm_time += cs.time_s[k];
  fprintf(f,
          "{\"step\": %d, \"loss\": %.9g, \"step_time_s\": %.6f, \"num_params\": %lld, \"world_size\": %d, "
          "\"strategy\": \"%s\", \"comm_bytes\": {\"all_gather\": %llu, \"reduce_scatter\": %llu, \"all_reduce\": "
          "%llu, \"broadcast\": %llu}, \"mem\": {\"model_state_bytes\": %llu, \"params_bytes\": %llu, "
          "\"grads_bytes\": %llu, \"master_bytes\": %llu, \"optimizer_bytes\": %llu, \"offloaded_bytes\": %llu, "
          "\"peak_bytes\": %llu}, \"comm_time_s\": %.6f, \"exposed_comm_s\": %.6f, \"grad_norm\": %.9g, "
          "\"loss_scale\": %g, \"skipped\": %s, \"lr\": %.9g",
          r->step, r->loss, r->step_time_s, (long long)r->num_params, shardrt_world_size(ctx),
          shardrt_strategy_name(shardrt_get_plan(ctx)->strategy), (unsigned long long)cs.bytes[0],
          (unsigned long long)cs.bytes[1], (unsigned long long)cs.bytes[2], (unsigned long long)cs.bytes[3],
          (unsigned long long)ms.model_state, (unsigned long long)ms.params, (unsigned long long)ms.grads,
          (unsigned long long)ms.master, (unsigned long long)ms.optimizer, (unsigned long long)ms.offloaded,
          (unsigned long long)ms.peak, comm_time, cs.exposed_s, r->grad_norm, r->loss_scale,
          r->skipped ? "true" : "false", shardrt_last_lr(ctx));
  /* Bytes of collectives on groups that span hosts, by group (multi-host). */
  fprintf(f, ", \"hosts\": %d, \"cross_host_bytes\": {\"world\": %llu, \"shard\": %llu, \"replica\": %llu}",
          shardrt_num_hosts(ctx), (unsigned long long)cs.cross_host_bytes[0],
          (unsigned long long)cs.cross_host_bytes[1], (unsigned long long)cs.cross_host_bytes[2]);
  if (r->tokens_per_s >= 0) fprintf(f, ", \"tokens_per_s\": %.3f", r->tokens_per_s);
  if (r->act_bytes) fprintf(f, ", \"act_peak_bytes\": %llu", (unsigned long long)r->act_bytes);
  fprintf(f, "}\n");
  fflush(f);
}

void ex_progress(shardrt_ctx *ctx, const ex_step_record *r) {
  if (shardrt_rank(ctx) != 0) return;
  shardrt_mem_stats ms;
  shardrt_mem_stats_get(ctx, &ms);
  printf("step %5d | loss %.6f | %7.1f ms", r->step, r->loss, r->step_time_s * 1e3);
  if (r->tokens_per_s >= 0) printf(" | %9.0f tok/s", r->tokens_per_s);
  printf(" | model state %.2f MiB | peak %.2f MiB", (double)ms.model_state / 1048576.0, (double)ms.peak / 1048576.0);
  if (r->act_bytes) printf(" | activations %.2f MiB", (double)r->act_bytes / 1048576.0);
  printf("%s\n", r->skipped ? " | skipped (fp16 overflow)" : "");
  fflush(stdout);
}

shardrt_status ex_write_weights(shardrt_ctx *ctx, const char *path) {
  FILE *f = NULL;
  shardrt_status rc = SHARDRT_OK;
  if (shardrt_rank(ctx) == 0 && !(f = fopen(path, "wb"))) {
    fprintf(stderr, "error: cannot write weights to '%s'\n", path);
    rc = SHARDRT_ERR_IO;
  }
  for (int p = 0; p < shardrt_num_params(ctx); p++) {
    shardrt_param_info info;
    shardrt_param_info_get(ctx, p, &info);
    float *buf = malloc(sizeof(float) * (size_t)info.numel);
    if (!buf) return SHARDRT_ERR_OUT_OF_MEMORY;
    shardrt_status r2 = shardrt_param_get(ctx, p, buf);
    if (r2 != SHARDRT_OK) rc = r2;
    if (f && r2 == SHARDRT_OK) fwrite(buf, sizeof(float), (size_t)info.numel, f);
    free(buf);
  }
  if (f && fclose(f) != 0) rc = SHARDRT_ERR_IO;
  return rc;
}

/* The program state a checkpoint carries: the data order is a pure function
 * of (seed, step), so the step is the data position and the seed the RNG. */
typedef struct ex_blob {
  char magic[8];
  uint64_t seed;
  int64_t step;
} ex_blob;

shardrt_status ex_ckpt_begin(shardrt_ctx *ctx, const ex_opts *o, int *first_step) {
  *first_step = 1;
  if (o->load_weights) {
    shardrt_status rc = shardrt_load_weights(ctx, o->load_weights);
    if (rc) return rc;
  }
  if (!o->resume_dir) return SHARDRT_OK;
  ex_blob b;
  size_t len = 0;
  shardrt_status rc = shardrt_load_checkpoint(ctx, o->resume_dir, &b, sizeof b, &len);
  if (rc) return rc;
  if (len != sizeof b || memcmp(b.magic, "shardrtX", 8) != 0) {
    fprintf(stderr, "error: --resume %s: the checkpoint was not written by this trainer (no data position in it)\n",
            o->resume_dir);
    return SHARDRT_ERR_CORRUPT;
  }
  if (b.seed != o->seed) {
    fprintf(stderr, "error: --resume %s: the checkpoint was trained with --seed %" PRIu64 ", not %" PRIu64 "\n",
            o->resume_dir, b.seed, o->seed);
    return SHARDRT_ERR_INVALID_ARGUMENT;
  }
  *first_step = (int)b.step + 1;
  if (shardrt_rank(ctx) == 0 && !o->quiet) printf("resumed from %s after step %" PRId64 "\n", o->resume_dir, b.step);
  return SHARDRT_OK;
}

shardrt_status ex_ckpt_after_step(shardrt_ctx *ctx, const ex_opts *o, int step) {
  if (!o->save_dir || o->save_every <= 0) return SHARDRT_OK;
  ex_blob b = {.seed = o->seed, .step = step};
  memcpy(b.magic, "shardrtX", 8);
  return shardrt_ckpt_maybe_save(ctx, o->save_dir, step, o->save_every, &b, sizeof b, NULL);
}
