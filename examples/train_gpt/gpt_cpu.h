/* SPDX-License-Identifier: Apache-2.0 */
/* GPT-2 forward and backward on the CPU, in fp32, over plain arrays.
 *
 * Pure functions of (config, parameters, activations): no runtime calls, so
 * the finite-difference test and the CUDA comparison use them directly and
 * the trainer drives them stage by stage between the runtime's unit
 * begin/end calls. Parameters are passed as an array of fp32 pointers
 * indexed by the registry's parameter id (gpt_model.h); only the stage's own
 * parameters are read. Gradients are ADDED into the arrays in `g`.
 * Matrix products go through cblas_sgemm. */
#ifndef GPT_CPU_H
#define GPT_CPU_H

#include <stdbool.h>
#include <stddef.h>

#include "gpt_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the activations are kept. */
typedef struct gpt_cpu_options {
  /* Activation checkpointing: keep only each block's input (the residual
   * stream) and one block's worth of per-layer activations; each block's
   * backward first re-runs its forward into that slot. The recomputed
   * values are bit-identical (same inputs, same operations in the same
   * order), so losses and gradients are too. */
  bool recompute;
} gpt_cpu_options;

/* Activations of one forward/backward pass over B sequences of T tokens,
 * owned by the program. "Per layer" arrays hold S slots of the size noted:
 * S = L, or S = 1 under recompute (the slot holds layer slot_layer). */
typedef struct gpt_cpu_acts {
  gpt_config cfg;
  int B, T;
  bool recompute;
  int slot_layer;                    /* recompute: the layer the slot holds now (-1: none) */
  size_t bytes;                      /* every activation and scratch array, in bytes */
  float *encoded;                    /* (B,T,C) residual entering block 0 */
  float *ln1, *ln1_mean, *ln1_rstd;  /* (S,B,T,C), (S,B,T), (S,B,T) */
  float *qkv;                        /* (S,B,T,3C) */
  float *att_stats;                  /* (S,B,NH,T,2) softmax row max and 1/sum (gpt_cpu_ops.h) */
  float *atty;                       /* (S,B,T,C) attention output before c_proj */
  float *residual2;                  /* (S,B,T,C) = residual in + c_proj(atty) */
  float *ln2, *ln2_mean, *ln2_rstd;
  float *fch, *fch_gelu;             /* (S,B,T,4C) */
  float *residual3;                  /* (L,B,T,C) = residual2 + mlp c_proj: block output (always kept) */
  float *lnf, *lnf_mean, *lnf_rstd;  /* (B,T,C), (B,T), (B,T) */
  float *probs;                      /* (B,T,V) softmax; backward turns it into dlogits */
  float *losses;                     /* (B,T) per-token cross-entropy */
  /* backward scratch, reused by every block */
  float *dresidual;                  /* (B,T,C) gradient flowing down the residual stream */
  float *dbuf_c, *dbuf_c2;           /* (B,T,C) */
  float *dqkv;                       /* (B,T,3C) */
  float *dfch, *dfch2;               /* (B,T,4C) */
  float *att_p, *att_dp;             /* (GPT_ATT_ROWS,T) attention score blocks */
  char err[256];
} gpt_cpu_acts;

/* Allocates activations for B sequences of T <= cfg->seq_len tokens.
 * Returns 0, or -1 with a message in err (size or memory). */
int gpt_cpu_acts_init(gpt_cpu_acts *a, const gpt_config *cfg, int B, int T, char *err, size_t errlen);
/* The same with options (NULL: the defaults, everything kept). */
int gpt_cpu_acts_init_ex(gpt_cpu_acts *a, const gpt_config *cfg, int B, int T, const gpt_cpu_options *opt,
                         char *err, size_t errlen);
void gpt_cpu_acts_free(gpt_cpu_acts *a); /* NULL-safe, idempotent */

/* Threads for the CPU model within this process: OpenMP's team for the
 * elementwise passes and OpenBLAS's for the products. ranks_on_host: how
 * many ranks share this host. OMP_NUM_THREADS, when set, decides (OpenMP
 * and OpenBLAS read it themselves; OPENBLAS_NUM_THREADS likewise for
 * OpenBLAS). Otherwise: the CPUs this process may run on when it is bound
 * to fewer than the host has, else the host's CPUs divided among its ranks
 * (at least 1): one thread per rank when the ranks fill the machine.
 * Results do not depend on the count (gpt_cpu_ops.c). Returns the count;
 * why: a short reason for the banner. */
int gpt_cpu_set_threads(int ranks_on_host, char *why, size_t whylen);

/* ---- stages (forward: embed, block 0..L-1, head; backward: the reverse) ---- */

/* tokens: (B,T) ids in [0, vocab). Returns -1 (message in a->err) on a bad id. */
int gpt_cpu_embed_forward(gpt_cpu_acts *a, const float *const *p, const int *tokens);
void gpt_cpu_block_forward(gpt_cpu_acts *a, const float *const *p, int layer);
/* targets: (B,T) ids. Fills a->losses; *loss_sum = sum over the B*T tokens
 * (accumulated in double). Returns -1 (message in a->err) on a bad id. */
int gpt_cpu_head_forward(gpt_cpu_acts *a, const float *const *p, const int *targets, double *loss_sum);
/* dloss = d(objective)/d(each token's loss), e.g. 1/(global tokens) for a
 * global mean, times the fp16 loss scale. Consumes a->probs. */
void gpt_cpu_head_backward(gpt_cpu_acts *a, const float *const *p, float *const *g,
                           const int *targets, float dloss);
void gpt_cpu_block_backward(gpt_cpu_acts *a, const float *const *p, float *const *g, int layer);
void gpt_cpu_embed_backward(gpt_cpu_acts *a, float *const *g, const int *tokens);

/* Whole passes (the tests' entry points). forward returns -1 on bad ids. */
int gpt_cpu_forward(gpt_cpu_acts *a, const float *const *p, const int *tokens, const int *targets,
                    double *loss_sum);
void gpt_cpu_backward(gpt_cpu_acts *a, const float *const *p, float *const *g, const int *tokens,
                      const int *targets, float dloss);

#ifdef __cplusplus
}
#endif
#endif
