/* SPDX-License-Identifier: Apache-2.0 */
/* train_gpt: trains a GPT-2-style byte-level language model with
 * libshardrt, on the CPU (OpenBLAS) or one GPU per rank (cuBLAS + kernels).
 * The global batch is the same sequences at every world size (each rank
 * takes its slice; the loss is the mean over every token of the global
 * batch), so any world size, strategy and wrap policy must reproduce the
 * same losses up to float rounding. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/blas_kernel.h"
#include "../common/trainer.h"
#include "gpt_data.h"
#include "gpt_hf.h"
#include "gpt_model.h"
#include "gpt_run.h"
#include "gpt_sample.h"

static const char *prog = "train_gpt";

#ifndef GPT_DEFAULT_DATA
#define GPT_DEFAULT_DATA "examples/data/corpus.txt"
#endif

typedef struct gpt_flags {
  const char *preset;
  int n_layer, n_embd, n_head, seq_len, vocab; /* 0: from the preset */
  const char *data;
  const char *param_dtype;
  bool tf32, flash;
  bool act_ckpt; /* --activation_checkpointing: recompute whatever the config says */
  const char *init_from; /* a Hugging Face GPT-2 directory */
  const char *export_hf; /* write the final model as a Hugging Face directory */
  int sample;            /* --sample N: tokens to generate after training */
  const char *prompt, *prompt_ids, *temperature, *top_k, *tokenizer;
  bool help;
} gpt_flags;

static int usage(FILE *f) {
  fprintf(f,
          "usage: train_gpt [--config_file FILE] [flags]\n"
          "model flags:\n"
          "  --preset tiny|small|gpt2   model shape (default tiny: 2 layers, 32 wide, 2 heads, seq 32, vocab 256;\n"
          "                             small: 4x256, 4 heads, seq 128; gpt2: the 124M shape, 12x768, seq 1024, vocab 50257)\n"
          "  --n_layer N --n_embd N --n_head N --seq_len N --vocab N   override the preset\n"
          "  --data FILE|GLOB           training tokens: raw bytes (default %s), or llm.c .bin shards\n"
          "                             (one file or a quoted glob, read in sorted order; vocab defaults to 50257)\n"
          "  --param_dtype fp32|bf16|fp16  dtype the model is loaded in (the plan's load_dtype)\n"
          "  --tf32                     fp32 runs on a GPU: let matrix products use TF32 tensor cores\n"
          "                             (default off; bf16/fp16 mixed precision uses 16-bit tensor cores anyway)\n"
          "  --flash_attention          bf16/fp16 on a GPU: fused flash-style attention instead of materialised\n"
          "                             scores (head size 16, 32, 64 or 128)\n"
          "  --activation_checkpointing  recompute each block's forward in its backward, keeping only the block\n"
          "                             inputs (as fsdp_activation_checkpointing: true; for configs without that\n"
          "                             key, e.g. DeepSpeed, whose activation_checkpointing section only tunes\n"
          "                             checkpoints the model itself makes)\n"
          "  --init_from DIR            start from a Hugging Face GPT-2 directory (config.json + model.safetensors,\n"
          "                             or a sharded model.safetensors.index.json and its shards);\n"
          "                             the shape comes from config.json\n"
          "  --export_hf DIR            after training, write DIR/config.json + DIR/model.safetensors that\n"
          "                             transformers' GPT2LMHeadModel.from_pretrained(DIR) loads\n"
          "  --sample N                 after training, generate N tokens (rank 0 prints them)\n"
          "  --prompt TEXT              the prompt, for raw-byte data (default: the data's first tokens)\n"
          "  --prompt_ids I,J,...       the prompt as token ids (any vocab)\n"
          "  --temperature T            0: greedy; else softmax(logits / T) (default 1)\n"
          "  --top_k K                  sample among the K most likely tokens (default 0: all)\n"
          "  --tokenizer FILE           llm.c tokenizer.bin to print tokens as text (default: tokenizer.bin\n"
          "                             next to llm.c shards, when there is one)\n"
          "  --global_batch counts sequences of seq_len tokens\n",
          GPT_DEFAULT_DATA);
  ex_print_common_usage(f);
  return f == stderr ? 2 : 0;
}

static int parse_model(int *argc, char **argv, gpt_flags *fl) {
  int w = 1;
  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i], *val = NULL;
    char name[32];
    const char *eq = strchr(a, '=');
    if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
      snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
      val = eq + 1;
    } else {
      snprintf(name, sizeof name, "%s", a);
    }
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
      fl->help = true;
      continue;
    }
    if (!strcmp(name, "--tf32") && !val) {
      fl->tf32 = true;
      continue;
    }
    if (!strcmp(name, "--flash_attention") && !val) {
      fl->flash = true;
      continue;
    }
    if (!strcmp(name, "--activation_checkpointing") && !val) {
      fl->act_ckpt = true;
      continue;
    }
    int *ival = !strcmp(name, "--n_layer") ? &fl->n_layer : !strcmp(name, "--n_embd") ? &fl->n_embd
                : !strcmp(name, "--n_head") ? &fl->n_head : !strcmp(name, "--seq_len") ? &fl->seq_len
                : !strcmp(name, "--vocab") ? &fl->vocab : !strcmp(name, "--sample") ? &fl->sample : NULL;
    const char **sval = !strcmp(name, "--preset") ? &fl->preset : !strcmp(name, "--data") ? &fl->data
                        : !strcmp(name, "--param_dtype") ? &fl->param_dtype
                        : !strcmp(name, "--init_from") ? &fl->init_from : !strcmp(name, "--export_hf") ? &fl->export_hf
                        : !strcmp(name, "--prompt") ? &fl->prompt : !strcmp(name, "--prompt_ids") ? &fl->prompt_ids
                        : !strcmp(name, "--temperature") ? &fl->temperature : !strcmp(name, "--top_k") ? &fl->top_k
                        : !strcmp(name, "--tokenizer") ? &fl->tokenizer
                        : NULL;
    if (!ival && !sval) {
      argv[w++] = argv[i];
      continue;
    }
    if (!val) {
      if (i + 1 >= *argc) {
        fprintf(stderr, "%s: error: %s needs a value\n", prog, name);
        return 2;
      }
      val = argv[++i];
    }
    if (sval) {
      *sval = val;
      continue;
    }
    char *end;
    long v = strtol(val, &end, 10);
    if (!*val || *end || v < 1 || v > (1L << 24)) {
      fprintf(stderr, "%s: error: %s '%s' must be an integer in [1, %ld]\n", prog, name, val, 1L << 24);
      return 2;
    }
    *ival = (int)v;
  }
  *argc = w;
  argv[w] = NULL;
  return 0;
}

/* From --init_from's config.json, where the shape flags may only repeat it. */
static int config_from_hf(const gpt_flags *fl, gpt_config *cfg) {
  char err[4600];
  int tied;
  if (gpt_hf_read_config(fl->init_from, cfg, &tied, err, sizeof err)) {
    fprintf(stderr, "%s: error: --init_from: %s\n", prog, err);
    return 2;
  }
  const struct { const char *flag; int given, have; } f[] = {
      {"--n_layer", fl->n_layer, cfg->n_layer}, {"--n_embd", fl->n_embd, cfg->n_embd},
      {"--n_head", fl->n_head, cfg->n_head},    {"--seq_len", fl->seq_len, cfg->seq_len},
      {"--vocab", fl->vocab, cfg->vocab}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (f[i].given && f[i].given != f[i].have) {
      fprintf(stderr, "%s: error: %s %d disagrees with --init_from's config.json (%d)\n", prog, f[i].flag, f[i].given,
              f[i].have);
      return 2;
    }
  if (gpt_config_validate(cfg, err, sizeof err)) {
    fprintf(stderr, "%s: error: --init_from: %s\n", prog, err);
    return 2;
  }
  return 0;
}

/* Preset first, then the explicit shape flags. */
static int resolve_config(const gpt_flags *fl, gpt_config *cfg) {
  char err[256];
  if (fl->init_from) return config_from_hf(fl, cfg);
  if (gpt_preset(fl->preset, cfg, err, sizeof err)) {
    fprintf(stderr, "%s: error: --preset: %s\n", prog, err);
    return 2;
  }
  if (fl->n_layer) cfg->n_layer = fl->n_layer;
  if (fl->n_embd) cfg->n_embd = fl->n_embd;
  if (fl->n_head) cfg->n_head = fl->n_head;
  if (fl->seq_len) cfg->seq_len = fl->seq_len;
  if (fl->vocab) cfg->vocab = fl->vocab;
  if (gpt_config_validate(cfg, err, sizeof err)) {
    fprintf(stderr, "%s: error: %s\n", prog, err);
    return 2;
  }
  return 0;
}

static int check_options(const ex_opts *o, const gpt_flags *fl, shardrt_plan *plan) {
  if (fl->param_dtype && !shardrt_dtype_parse(fl->param_dtype, &plan->load_dtype)) {
    fprintf(stderr, "%s: error: --param_dtype '%s' is not a dtype (allowed: fp32, bf16, fp16)\n", prog,
            fl->param_dtype);
    return 2;
  }
  return 0;
}

/* Collective: config.json from rank 0, then the weights in transformers'
 * names and layouts, in the dtype the model was loaded in. */
static int export_hf(shardrt_ctx *ctx, const gpt_config *cfg, const char *dir, shardrt_dtype dt) {
  char err[4600];
  double bad = 0;
  if (shardrt_rank(ctx) == 0 && gpt_hf_write_config(dir, cfg, dt, err, sizeof err)) {
    fprintf(stderr, "%s: error: --export_hf: %s\n", prog, err);
    bad = 1;
  }
  shardrt_status rc = shardrt_allreduce_sum_f64(ctx, &bad, 1);
  if (rc) return ex_fail(prog, "export_hf", rc);
  if (bad) return 1;
  char path[4200];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  shardrt_weight_map map = gpt_hf_map();
  if ((rc = shardrt_save_weights_mapped(ctx, path, dt, &map))) return ex_fail(prog, "export_hf", rc);
  return 0;
}

/* mkdir -p: the checkpoint code creates the directory only at the first save. */
static int mkdir_p(const char *dir) {
  char p[4096];
  snprintf(p, sizeof p, "%s", dir);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = 0;
      if (mkdir(p, 0777) != 0 && errno != EEXIST) return -1;
      *s = '/';
    }
  return mkdir(p, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* Collective. With --save_dir: SAVE_DIR/export_hf.json, the export spec
 * with which `shardrt merge-weights` writes any checkpoint of this run as a
 * Hugging Face directory (the runtime knows no GPT-2; the spec carries the
 * names, transposes and config.json). */
static int write_export_spec(shardrt_ctx *ctx, const gpt_config *cfg, const char *save_dir) {
  char err[4600] = "", path[4200];
  double bad = 0;
  int n = shardrt_num_params(ctx);
  if (shardrt_rank(ctx) == 0) {
    const char **names = malloc(sizeof *names * (size_t)(n + 1));
    shardrt_param_info pi;
    for (int i = 0; names && i < n; i++) names[i] = shardrt_param_info_get(ctx, i, &pi) == SHARDRT_OK ? pi.name : "";
    snprintf(path, sizeof path, "%s/export_hf.json", save_dir);
    if (!names) snprintf(err, sizeof err, "out of memory");
    else if (mkdir_p(save_dir))
      snprintf(err, sizeof err, "cannot create '%s': %s", save_dir, strerror(errno));
    else gpt_hf_write_export_spec(path, cfg, names, n, err, sizeof err);
    if (err[0]) {
      fprintf(stderr, "%s: error: --save_dir: %s\n", prog, err);
      bad = 1;
    }
    free(names);
  }
  shardrt_status rc = shardrt_allreduce_sum_f64(ctx, &bad, 1);
  if (rc) return ex_fail(prog, "export spec", rc);
  return bad ? 1 : 0;
}

/* --sample's options, checked before training so a typo costs no run.
 * Every rank computes the same (the flags and the data are the same). */
static int prepare_sample(const gpt_flags *fl, const gpt_config *cfg, const gpt_data *data, uint64_t seed, bool say,
                          gpt_sample_opts *so, gpt_tokenizer *tok, int **prompt) {
  char err[4600] = "";
  memset(so, 0, sizeof *so);
  if (!fl->sample) {
    if (fl->prompt || fl->prompt_ids || fl->temperature || fl->top_k || fl->tokenizer)
      snprintf(err, sizeof err, "--prompt, --prompt_ids, --temperature, --top_k and --tokenizer go with --sample N");
    goto out;
  }
  so->n = fl->sample;
  so->seed = seed;
  so->temperature = 1.0;
  so->byte_text = !data->shards;
  char *end;
  if (fl->temperature && (so->temperature = strtod(fl->temperature, &end), *end || !*fl->temperature ||
                          !(so->temperature >= 0 && so->temperature <= 100))) {
    snprintf(err, sizeof err, "--temperature '%s' must be a number in [0, 100] (0: greedy)", fl->temperature);
    goto out;
  }
  if (fl->top_k) {
    long k = strtol(fl->top_k, &end, 10);
    if (*end || !*fl->top_k || k < 0 || k > cfg->vocab) {
      snprintf(err, sizeof err, "--top_k '%s' must be an integer in [0, vocab %d] (0: every token)", fl->top_k, cfg->vocab);
      goto out;
    }
    so->top_k = (int)k;
  }
  int cap = cfg->seq_len;
  if (!(*prompt = malloc(sizeof **prompt * (size_t)cap))) {
    snprintf(err, sizeof err, "out of memory");
    goto out;
  }
  if (fl->prompt && fl->prompt_ids) {
    snprintf(err, sizeof err, "--prompt and --prompt_ids exclude each other");
  } else if (fl->prompt_ids) {
    so->nprompt = gpt_parse_ids(fl->prompt_ids, cfg->vocab, *prompt, cap, err, sizeof err);
  } else if (fl->prompt) {
    size_t n = strlen(fl->prompt);
    if (data->shards)
      snprintf(err, sizeof err, "--prompt TEXT needs raw-byte data (its tokens are bytes); with llm.c shards give "
                                "--prompt_ids");
    else if (n == 0 || n > (size_t)cap)
      snprintf(err, sizeof err, "--prompt must hold 1 to seq_len (%d) bytes, not %zu", cap, n);
    for (size_t i = 0; !err[0] && i < n; i++) {
      int c = (unsigned char)fl->prompt[i];
      if (c >= cfg->vocab) snprintf(err, sizeof err, "--prompt byte %zu is %d, not below vocab %d", i, c, cfg->vocab);
      (*prompt)[i] = c;
    }
    so->nprompt = (int)n;
  } else {
    /* the start of the training data: what the model learned to continue */
    so->nprompt = (int)(data->n < cap / 2 ? data->n : cap / 2 > 16 ? 16 : cap / 2 > 0 ? cap / 2 : 1);
    for (int i = 0; i < so->nprompt; i++) (*prompt)[i] = data->tok[i];
  }
  so->prompt = *prompt;
  if (err[0]) goto out;
  char auto_tok[4200] = "";
  if (!fl->tokenizer && data->shards) {
    const char *slash = strrchr(fl->data, '/');
    snprintf(auto_tok, sizeof auto_tok, "%.*stokenizer.bin", slash ? (int)(slash - fl->data + 1) : 0, fl->data);
    FILE *f = fopen(auto_tok, "rb");
    if (f) fclose(f);
    else auto_tok[0] = 0;
  }
  const char *tp = fl->tokenizer ? fl->tokenizer : auto_tok[0] ? auto_tok : NULL;
  if (tp && gpt_tokenizer_load(tok, tp, cfg->vocab, err, sizeof err) == 0) so->tok = tok;
out:
  if (err[0] && say) fprintf(stderr, "%s: error: %s\n", prog, err);
  return err[0] ? 2 : 0;
}

int main(int argc, char **argv) {
  /* first: it may re-execute the program with a better OpenBLAS kernel */
  ex_blas_startup(argv);
  shardrt_plan plan;
  if (shardrt_plan_from_args(&argc, argv, &plan) != SHARDRT_OK) {
    fprintf(stderr, "%s: error: %s\n", prog, shardrt_last_error());
    return 2;
  }
  ex_opts o;
  ex_opts_default(&o);
  gpt_flags fl = {.preset = "tiny", .data = GPT_DEFAULT_DATA};
  if (ex_parse_common(&argc, argv, &o) || parse_model(&argc, argv, &fl)) return 2;
  if (fl.help) return usage(stdout);
  if (ex_reject_leftovers(argc, argv, prog)) return usage(stderr);
  /* llm.c shards hold GPT-2 BPE tokens: their vocab unless told otherwise */
  if (!fl.vocab && !fl.init_from && gpt_data_is_llmc(fl.data)) fl.vocab = GPT_GPT2_VOCAB;
  gpt_config cfg;
  if (resolve_config(&fl, &cfg) || check_options(&o, &fl, &plan)) return 2;

  shardrt_ctx *ctx = NULL;
  int code = ex_context_create(prog, &o, &plan, &ctx);
  if (code) return code;
  const int world = shardrt_world_size(ctx), rank = shardrt_rank(ctx);
  const shardrt_plan *pl = shardrt_get_plan(ctx);
  const int A = pl->gradient_accumulation_steps, T = cfg.seq_len;
  gpt_registry reg = {0};
  gpt_data data = {0};
  gpt_run run = {0};
  int *rt_pid = NULL, *tokens = NULL, *targets = NULL, *prompt = NULL;
  gpt_sample_opts sample = {0};
  gpt_tokenizer tok = {0};
  FILE *log = NULL;
  char err[512];

  /* every rank reads the same file, so every rank takes the same branch */
  if (gpt_data_load(&data, fl.data, T, cfg.vocab, err, sizeof err) ||
      gpt_registry_init(&reg, &cfg, err, sizeof err)) {
    if (rank == 0) fprintf(stderr, "%s: error: %s\n", prog, err);
    code = 2;
    goto done;
  }
  if ((code = prepare_sample(&fl, &cfg, &data, o.seed, rank == 0, &sample, &tok, &prompt))) goto done;
  const int rows = o.global_batch / (A * world); /* sequences per rank per micro-batch */
  rt_pid = malloc(sizeof(int) * (size_t)reg.num_params);
  tokens = malloc(sizeof(int) * (size_t)rows * T);
  targets = malloc(sizeof(int) * (size_t)rows * T);
  if (!rt_pid || !tokens || !targets) {
    fprintf(stderr, "%s: error: out of host memory for a batch of %d x %d tokens\n", prog, rows, T);
    code = 1;
    goto done;
  }
  shardrt_status rc = gpt_run_register(ctx, &reg, rt_pid);
  if (rc == SHARDRT_OK) rc = shardrt_finalize(ctx);
  if (rc == SHARDRT_OK)
    rc = gpt_run_init(&run, ctx, &reg, rt_pid, rows, T, fl.tf32, fl.flash, fl.act_ckpt || pl->activation_checkpointing);
  if (rc == SHARDRT_OK) rc = gpt_run_set_weights(&run, o.seed, pl->sync_module_states);
  int first_step = 1;
  if (rc == SHARDRT_OK && fl.init_from) {
    char wpath[4200];
    shardrt_weight_map map = gpt_hf_map();
    if (gpt_hf_weights_path(fl.init_from, wpath, sizeof wpath, err, sizeof err)) {
      if (rank == 0) fprintf(stderr, "%s: error: --init_from: %s\n", prog, err);
      code = 2;
      goto done;
    }
    /* a file that is not the model is bad input (exit 2), as a bad config.json is */
    if ((rc = shardrt_load_weights_mapped(ctx, wpath, &map))) {
      if (rank == 0)
        fprintf(stderr, "%s: error: --init_from: %s: %s\n", prog, shardrt_status_str(rc), shardrt_last_error());
      code = 2;
      goto done;
    }
  }
  if (rc == SHARDRT_OK && o.save_dir && (code = write_export_spec(ctx, &cfg, o.save_dir))) goto done;
  if (rc == SHARDRT_OK) rc = ex_ckpt_begin(ctx, &o, &first_step);
  if (rc == SHARDRT_OK && o.trace_path) rc = shardrt_trace_start(ctx, o.trace_path);
  if (rc) {
    code = gpt_run_fail(&run, prog, "setup", rc);
    goto done;
  }
  if (o.log_path && rank == 0 && !(log = fopen(o.log_path, "w"))) {
    fprintf(stderr, "%s: error: cannot open --log '%s' for writing\n", prog, o.log_path);
    code = 1;
    goto done;
  }
  if (rank == 0 && !o.quiet)
    printf("train_gpt: %d layers, n_embd %d, %d heads, seq %d, vocab %d: %lld params; world %d, %s, %d unit(s), "
           "%d x %d sequences per rank per micro-batch, data %s (%lld tokens%s)\n",
           cfg.n_layer, cfg.n_embd, cfg.n_head, T, cfg.vocab, (long long)shardrt_total_numel(ctx), world,
           shardrt_strategy_name(pl->strategy), shardrt_num_units(ctx), A, rows, fl.data, (long long)data.n,
           data.shards ? ", llm.c shards" : ", raw bytes");
  if (rank == 0 && !o.quiet) {
    char note[320];
    ex_blas_note(note, sizeof note);
    printf("train_gpt: %s\n", note);
    if (!run.cuda) printf("train_gpt: CPU threads per rank: %s\n", run.threads_note);
  }

  const double global_tokens = (double)o.global_batch * T;
  for (int step = first_step; step <= o.steps && code == 0; step++) {
    double t0 = shardrt_now();
    shardrt_comm_stats_reset(ctx);
    double loss_sum = 0;
    for (int a = 0; a < A && code == 0; a++) {
      int64_t g0 = (int64_t)a * (o.global_batch / A) + (int64_t)rank * rows;
      for (int r = 0; r < rows; r++)
        gpt_data_sequence(&data, o.seed, step, g0 + r, T, tokens + (size_t)r * T, targets + (size_t)r * T);
      float dloss = (float)(shardrt_loss_scale(ctx) / global_tokens);
      rc = shardrt_begin_micro_batch(ctx, a, A);
      if (rc == SHARDRT_OK) rc = gpt_run_micro_batch(&run, tokens, targets, dloss, &loss_sum);
      if (rc) code = gpt_run_fail(&run, prog, "training step", rc);
    }
    if (code) break;
    shardrt_step_info info;
    rc = shardrt_step(ctx, &info);
    if (rc == SHARDRT_OK) rc = shardrt_allreduce_sum_f64(ctx, &loss_sum, 1);
    if (rc) {
      code = ex_fail(prog, "optimizer step", rc);
      break;
    }
    double dt = shardrt_now() - t0;
    ex_step_record rec = {.step = step, .loss = loss_sum / global_tokens, .step_time_s = dt,
                          .num_params = shardrt_total_numel(ctx), .tokens_per_s = global_tokens / dt,
                          .grad_norm = info.grad_norm, .loss_scale = info.loss_scale, .skipped = info.skipped,
                          .act_bytes = run.act_bytes};
    ex_log_step(log, ctx, &rec);
    if (!o.quiet) ex_progress(ctx, &rec);
    if ((rc = ex_ckpt_after_step(ctx, &o, step))) code = ex_fail(prog, "checkpoint", rc);
    if (!isfinite(rec.loss)) {
      if (rank == 0) fprintf(stderr, "%s: error: loss is %g at step %d (diverged; lower --lr)\n", prog, rec.loss, step);
      code = 1;
    }
  }
  if (code == 0 && o.weights_out && (rc = ex_write_weights(ctx, o.weights_out))) code = ex_fail(prog, "weights_out", rc);
  if (code == 0 && fl.export_hf) code = export_hf(ctx, &cfg, fl.export_hf, pl->load_dtype);
  if (code == 0 && fl.sample) code = gpt_sample(ctx, &reg, rt_pid, &sample, stdout);
done:
  if (log) fclose(log);
  gpt_run_free(&run);
  free(rt_pid), free(tokens), free(targets), free(prompt);
  gpt_tokenizer_free(&tok);
  gpt_data_free(&data);
  gpt_registry_free(&reg);
  shardrt_ctx_destroy(ctx);
  return code;
}
