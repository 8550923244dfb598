/* SPDX-License-Identifier: Apache-2.0 */
/* The bridge between the GPT model code (pure fp32 stages, gpt_cpu.h /
 * gpt_cuda.h) and libshardrt: registers the model, maps the runtime's units
 * onto forward stages, opens and closes units around the stages, and moves
 * parameters and gradients between the runtime's views (compute dtype, host
 * or device) and the fp32 arrays the stages read and add into. */
#ifndef GPT_RUN_H
#define GPT_RUN_H

#include <stdbool.h>

#include "gpt_cpu.h"
#include "gpt_model.h"
#include "shardrt.h"

struct gpt_cuda;

typedef struct gpt_run {
  shardrt_ctx *ctx;
  const gpt_registry *reg;
  int *rt_pid;          /* runtime param id of each model param id */
  int *param_unit;      /* unit of each model param id */
  int nunits;
  int *unit_first, *unit_last; /* per unit: first and last stage that reads it (-1: none) */
  int nstages;
  bool cuda;
  int B, T;
  /* fp32 arrays handed to the stages, re-pointed for every stage */
  float **p, **g;
  /* fp32 copies (host on cpu, device on cuda) used when the views are not
   * fp32; NULL when the stages can read/add the views directly */
  float **pbuf, **gbuf;
  gpt_cpu_acts cpu;
  struct gpt_cuda *gpu;
  double stage_time_s;  /* compute time of the last micro-batch (cpu) */
  int threads;              /* cpu: threads per rank (gpt_cpu_set_threads) */
  char threads_note[96];    /* cpu: the count and why, for the banner */
  size_t act_bytes;     /* activation memory held for the micro-batch (cpu; 0: not known) */
  char err[512];        /* model-side error; empty when the runtime raised it */
} gpt_run;

/* Registers every module and parameter of reg (before shardrt_finalize);
 * rt_pid must hold reg->num_params ints. */
shardrt_status gpt_run_register(shardrt_ctx *ctx, const gpt_registry *reg, int *rt_pid);

/* After finalize: maps units to stages and allocates activations for B
 * sequences of T tokens per micro-batch on the context's device (on a GPU:
 * bf16 tensor-core compute when the plan's compute dtype is bf16; tf32
 * lets fp32 products use TF32; flash selects the fused attention kernel of
 * the bf16 path; recompute turns activation checkpointing on: the CPU
 * path and the GPU bf16 path). Takes ownership of nothing; rt_pid must
 * outlive the run. */
shardrt_status gpt_run_init(gpt_run *r, shardrt_ctx *ctx, const gpt_registry *reg, const int *rt_pid,
                            int B, int T, bool tf32, bool flash, bool recompute);
void gpt_run_free(gpt_run *r); /* NULL-safe, idempotent */

/* Deterministic init from seed (gpt_param_init): every rank computes the
 * full tensors (from_root: only rank 0's count, broadcast by the runtime). */
shardrt_status gpt_run_set_weights(gpt_run *r, uint64_t seed, bool from_root);

/* One micro-batch: forward through every stage (opening and closing units),
 * loss, backward. tokens/targets: host (B,T). dloss scales each token's
 * loss gradient (1 / global tokens x loss scale). Adds this rank's summed
 * token loss to *loss_sum. */
shardrt_status gpt_run_micro_batch(gpt_run *r, const int *tokens, const int *targets, float dloss,
                                   double *loss_sum);

/* Prints "<prog>: error: <what>: ..." with the model's or the runtime's
 * message; returns 1. */
int gpt_run_fail(const gpt_run *r, const char *prog, const char *what, shardrt_status rc);

#endif
