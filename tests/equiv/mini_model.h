/* SPDX-License-Identifier: Apache-2.0 */
/* A small MLP trained through the public API for the equivalence and
 * accounting tests: same data at every world size, plans built in code. */
#ifndef MINI_MODEL_H
#define MINI_MODEL_H

#include <mpi.h>

#include "shardrt.h"

typedef struct mini_cfg {
  int in, hidden, out, layers;
  int global_batch;
  int steps;
  uint64_t seed;
  shardrt_optim_params opt;
  /* The program's own schedule: shardrt_set_lr(lr_at(s)) before update s
   * (s = updates applied before it); NULL: none. */
  double (*lr_at)(int64_t s, void *user);
  void *lr_user;
  int64_t total_steps, warmup_steps; /* shardrt_set_train_steps when either is > 0 */
  /* Checkpoints: load_dir is loaded after the initial weights are set (the
   * run then continues from its state); save_dir is written after the last
   * step. first_step offsets the data: step s trains on batch first_step+s. */
  const char *load_dir, *save_dir;
  int first_step;
  /* Non-NULL: the last step is traced into this file (shardrt_trace_start
   * right after that step's shardrt_comm_stats_reset, stopped after its
   * shardrt_step), so the trace and mini_run.comm cover the same collectives. */
  const char *trace_last_step;
} mini_cfg;

typedef struct mini_run {
  double *loss;     /* per step */
  double *norm;     /* grad norm per step */
  double *lr;       /* shardrt_last_lr after each step */
  float *weights;   /* all params concatenated (every rank) */
  int64_t nweights;
  shardrt_mem_stats mem;      /* after the last step */
  shardrt_comm_stats comm;    /* of the last step */
  int world;
  int64_t sum_padded, sum_shard; /* over units */
  int nunits;
} mini_run;

void mini_cfg_default(mini_cfg *c);
/* A plan of this flavour and strategy for the mini model (one unit per
 * Block, hybrid groups of world/2). */
shardrt_plan mini_base_plan(shardrt_flavor fl, shardrt_strategy s, int world);
/* Trains with `plan` over `comm` (NULL = world). Returns SHARDRT_OK or the
 * first failing status; fills *out (free with mini_run_free). */
shardrt_status mini_train(const mini_cfg *c, const shardrt_plan *plan, MPI_Comm *comm, mini_run *out);
void mini_run_free(mini_run *r);

#endif
