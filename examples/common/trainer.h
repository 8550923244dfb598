/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the example trainers: common flags, error printing,
 * deterministic data, dtype-converting view access, and the JSONL step log. */
#ifndef EX_TRAINER_H
#define EX_TRAINER_H

#include <stdio.h>

#include "shardrt.h"

typedef struct ex_opts {
  int steps;
  int warmup_steps; /* for a config LR schedule's "auto" warmup_num_steps; 0 = none */
  double lr;
  uint64_t seed;
  int global_batch;
  const char *device;   /* cpu | cuda */
  const char *comm;     /* auto | mpi | nccl */
  const char *log_path; /* JSONL step log (rank 0) */
  const char *trace_path;
  const char *weights_out; /* final weights as raw fp32 (rank 0), for equivalence checks */
  const char *save_dir;
  int save_every;
  const char *resume_dir;
  const char *load_weights;
  const char *optimizer; /* adamw | sgd */
  double weight_decay;
  double momentum;
  bool quiet;
} ex_opts;

void ex_opts_default(ex_opts *o);
/* Consumes the common flags from argv (compacting it, updating *argc).
 * Returns 0, or 2 after printing a clear message for a bad value. */
int ex_parse_common(int *argc, char **argv, ex_opts *o);
/* After the trainer parsed its own flags: anything left is an error. */
int ex_reject_leftovers(int argc, char **argv, const char *prog);
void ex_print_common_usage(FILE *f);

/* Creates the context from the options and the plan, sets the optimizer
 * from --optimizer/--lr/--weight_decay/--momentum, and checks that
 * --global_batch splits evenly over micro-batches and ranks. Returns 0, or
 * the exit code after printing why (*ctx is then NULL). Collective. */
int ex_context_create(const char *prog, const ex_opts *o, const shardrt_plan *plan, shardrt_ctx **ctx);

/* Prints "<prog>: error: <what>: <status>: <detail>" and returns 1 (exit code). */
int ex_fail(const char *prog, const char *what, shardrt_status rc);
#define EX_TRY(prog, call)                                        \
  do {                                                            \
    shardrt_status rc__ = (call);                                 \
    if (rc__ != SHARDRT_OK) return ex_fail((prog), #call, rc__);  \
  } while (0)

/* Counter-based RNG: the same (seed, a, b, c) gives the same value on every
 * rank and world size. */
uint64_t ex_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
float ex_uniform(uint64_t seed, uint64_t a, uint64_t b, uint64_t c); /* [-1, 1) */
float ex_normal(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);

/* Host views (cpu device): read a param view as fp32; add fp32 grads into a
 * grad view of any dtype. */
void ex_view_to_f32(const shardrt_view *v, float *dst);
void ex_view_add_f32(const shardrt_view *v, const float *src);

/* One line of the JSONL step log. */
typedef struct ex_step_record {
  int step;
  double loss;
  double step_time_s;
  int64_t num_params;
  double tokens_per_s; /* < 0: omitted */
  double grad_norm;
  double loss_scale;
  bool skipped;
  uint64_t act_bytes;  /* the program's activation memory (peak); 0: omitted */
} ex_step_record;
void ex_log_step(FILE *f, shardrt_ctx *ctx, const ex_step_record *r);
/* The human progress line. */
void ex_progress(shardrt_ctx *ctx, const ex_step_record *r);

/* Checkpoint flags. After the weights are initialised: --load_weights FILE
 * loads a safetensors file; --resume DIR loads the newest complete
 * checkpoint in DIR (weights, optimizer state, step, loss scale, and the
 * data position kept in the checkpoint's user blob). *first_step is the
 * step to train next (1 without --resume). Collective. */
shardrt_status ex_ckpt_begin(shardrt_ctx *ctx, const ex_opts *o, int *first_step);
/* After step `step`: --save_dir DIR --save_every N saves DIR/step_<step>. */
shardrt_status ex_ckpt_after_step(shardrt_ctx *ctx, const ex_opts *o, int step);

/* Writes every parameter (registration order) as raw little-endian fp32 to
 * path on rank 0; collective. */
shardrt_status ex_write_weights(shardrt_ctx *ctx, const char *path);

#endif
