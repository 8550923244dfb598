/* SPDX-License-Identifier: Apache-2.0 */
/* GPT-2-style model description: hyper-parameters, presets, and the
 * parameter registry (module name and class, parameter name and shape, how
 * it is initialised). Nothing here touches the runtime: the CPU/CUDA model
 * code, the trainer and the tests all index parameters the same way, by a
 * dense id in registration (= forward) order. */
#ifndef GPT_MODEL_H
#define GPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpt_config {
  int n_layer;
  int n_embd;
  int n_head;
  int seq_len; /* max sequence length = rows of wpe */
  int vocab;
} gpt_config;

/* Fills cfg from a preset name ("tiny", "small", "gpt2"). Returns 0, or -1
 * with a message in err naming the allowed presets. */
int gpt_preset(const char *name, gpt_config *cfg, char *err, size_t errlen);
/* "tiny|small|gpt2", for usage text. */
const char *gpt_preset_names(void);
/* Checks sizes are positive, n_embd divides by n_head, and the totals fit in
 * the int64 element counts the runtime uses. Returns 0, or -1 with err. */
int gpt_config_validate(const gpt_config *cfg, char *err, size_t errlen);

/* Parameters inside one block, in registration order. */
typedef enum gpt_layer_param {
  GPT_LN1_W = 0, GPT_LN1_B,
  GPT_QKV_W, GPT_QKV_B,        /* c_attn: (3C, C), (3C) */
  GPT_ATTPROJ_W, GPT_ATTPROJ_B,/* attn.c_proj: (C, C), (C) */
  GPT_LN2_W, GPT_LN2_B,
  GPT_FC_W, GPT_FC_B,          /* mlp.c_fc: (4C, C), (4C) */
  GPT_FCPROJ_W, GPT_FCPROJ_B,  /* mlp.c_proj: (C, 4C), (C) */
  GPT_LAYER_PARAMS_
} gpt_layer_param;

/* How a parameter is initialised (GPT-2's scheme). */
typedef enum gpt_init_kind {
  GPT_INIT_NORMAL = 0,   /* N(0, 0.02) */
  GPT_INIT_NORMAL_RESID, /* N(0, 0.02 / sqrt(2 n_layer)): projections into the residual */
  GPT_INIT_ZERO,         /* biases */
  GPT_INIT_ONE,          /* LayerNorm gains */
} gpt_init_kind;

typedef struct gpt_param_desc {
  const char *module;       /* e.g. "h.3.attn.c_attn" */
  const char *module_class; /* "Embedding", "LayerNorm", "Linear" */
  const char *name;         /* "weight" or "bias" */
  int ndim;
  int64_t shape[2];
  int64_t numel;
  gpt_init_kind init;
  int layer; /* block index, -1 outside the blocks */
} gpt_param_desc;

typedef struct gpt_module_desc {
  const char *name;
  const char *module_class;
} gpt_module_desc;

/* The full registry for one config; strings are owned by it. */
typedef struct gpt_registry {
  gpt_config cfg;
  int num_modules;
  gpt_module_desc *modules;
  int num_params;
  gpt_param_desc *params;
  int *param_module; /* module index of each param */
  int64_t total_numel;
  char *names; /* backing store of every name */
} gpt_registry;

/* Builds the registry: wte, wpe, then per block h.<i> (GPT2Block) with
 * ln_1, attn (GPT2Attention) > c_attn, c_proj, ln_2, mlp (GPT2MLP) > c_fc,
 * c_proj, then ln_f and lm_head (untied). Returns 0, or -1 with err. */
int gpt_registry_init(gpt_registry *reg, const gpt_config *cfg, char *err, size_t errlen);
void gpt_registry_free(gpt_registry *reg); /* NULL-safe, idempotent */

/* Dense parameter ids. */
enum { GPT_P_WTE = 0, GPT_P_WPE = 1, GPT_P_FIRST_LAYER = 2 };
static inline int gpt_pid_layer(const gpt_config *c, int layer, gpt_layer_param p) {
  (void)c;
  return GPT_P_FIRST_LAYER + layer * GPT_LAYER_PARAMS_ + (int)p;
}
static inline int gpt_pid_lnf_w(const gpt_config *c) { return GPT_P_FIRST_LAYER + c->n_layer * GPT_LAYER_PARAMS_; }
static inline int gpt_pid_lnf_b(const gpt_config *c) { return gpt_pid_lnf_w(c) + 1; }
static inline int gpt_pid_head(const gpt_config *c) { return gpt_pid_lnf_w(c) + 2; }
static inline int gpt_num_params(const gpt_config *c) { return gpt_pid_head(c) + 1; }

/* Deterministic initial values of one parameter: a function of (seed, pid)
 * only, so every rank and every world size produces the same tensor. */
void gpt_param_init(const gpt_registry *reg, int pid, uint64_t seed, float *out);

/* Forward stages. The model is run stage by stage so a caller can open and
 * close the runtime's units around them: the embedding stage, one stage per
 * block, then the head stage (ln_f, lm_head, loss). */
static inline int gpt_num_stages(const gpt_config *c) { return c->n_layer + 2; }
/* Stage that reads parameter pid. */
int gpt_param_stage(const gpt_config *c, int pid);

#ifdef __cplusplus
}
#endif
#endif
