/* SPDX-License-Identifier: Apache-2.0 */
#include "gpt_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gpt_preset_entry {
  const char *name;
  gpt_config cfg;
} gpt_preset_entry;

/* tiny trains in seconds on one CPU core (the tests use it); small is a CPU
 * benchmark size (~3M params); gpt2 is the 124M GPT-2 shape (plus an untied
 * 38.6M head, so every parameter belongs to exactly one module). */
static const gpt_preset_entry kPresets[] = {
    {"tiny", {.n_layer = 2, .n_embd = 32, .n_head = 2, .seq_len = 32, .vocab = 256}},
    {"small", {.n_layer = 4, .n_embd = 256, .n_head = 4, .seq_len = 128, .vocab = 256}},
    {"gpt2", {.n_layer = 12, .n_embd = 768, .n_head = 12, .seq_len = 1024, .vocab = 50257}},
};

const char *gpt_preset_names(void) { return "tiny|small|gpt2"; }

int gpt_preset(const char *name, gpt_config *cfg, char *err, size_t errlen) {
  for (size_t i = 0; i < sizeof kPresets / sizeof kPresets[0]; i++) {
    if (name && strcmp(name, kPresets[i].name) == 0) {
      *cfg = kPresets[i].cfg;
      return 0;
    }
  }
  snprintf(err, errlen, "unknown model preset '%s' (allowed: %s)", name ? name : "(null)",
           gpt_preset_names());
  return -1;
}

int gpt_config_validate(const gpt_config *c, char *err, size_t errlen) {
  struct { const char *name; int v; int max; } f[] = {
      {"n_layer", c->n_layer, 4096}, {"n_embd", c->n_embd, 1 << 16},
      {"n_head", c->n_head, 1 << 12}, {"seq_len", c->seq_len, 1 << 20},
      {"vocab", c->vocab, 1 << 24},
  };
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    if (f[i].v < 1 || f[i].v > f[i].max) {
      snprintf(err, errlen, "model %s = %d is out of range (allowed: 1..%d)", f[i].name, f[i].v,
               f[i].max);
      return -1;
    }
  }
  if (c->n_embd % c->n_head != 0) {
    snprintf(err, errlen, "model n_embd = %d is not divisible by n_head = %d (head size must be whole)",
             c->n_embd, c->n_head);
    return -1;
  }
  /* BLAS and the CUDA kernels index one matrix with int. */
  int64_t big = (int64_t)c->vocab * c->n_embd;
  if (big > INT32_MAX || (int64_t)4 * c->n_embd * c->n_embd > INT32_MAX) {
    snprintf(err, errlen, "model vocab x n_embd = %lld exceeds the 2^31-1 elements one matrix may hold",
             (long long)big);
    return -1;
  }
  return 0;
}

int gpt_param_stage(const gpt_config *c, int pid) {
  if (pid <= GPT_P_WPE) return 0;
  if (pid < gpt_pid_lnf_w(c)) return 1 + (pid - GPT_P_FIRST_LAYER) / GPT_LAYER_PARAMS_;
  return c->n_layer + 1;
}

/* ---- registry ---- */

typedef struct builder {
  gpt_registry *reg;
  char *cursor, *end;
  int cur_module;
} builder;

static const char *store(builder *b, const char *s) {
  size_t n = strlen(s) + 1;
  if (b->cursor + n > b->end) return NULL; /* sized up-front; cannot happen */
  memcpy(b->cursor, s, n);
  const char *out = b->cursor;
  b->cursor += n;
  return out;
}

static void add_module(builder *b, const char *name, const char *cls) {
  gpt_registry *r = b->reg;
  r->modules[r->num_modules].name = store(b, name);
  r->modules[r->num_modules].module_class = cls;
  b->cur_module = r->num_modules++;
}

static void add_param(builder *b, const char *name, int64_t d0, int64_t d1, gpt_init_kind init,
                      int layer) {
  gpt_registry *r = b->reg;
  gpt_param_desc *p = &r->params[r->num_params];
  p->module = r->modules[b->cur_module].name;
  p->module_class = r->modules[b->cur_module].module_class;
  p->name = name;
  p->ndim = d1 > 0 ? 2 : 1;
  p->shape[0] = d0;
  p->shape[1] = d1 > 0 ? d1 : 0;
  p->numel = d1 > 0 ? d0 * d1 : d0;
  p->init = init;
  p->layer = layer;
  r->param_module[r->num_params] = b->cur_module;
  r->total_numel += p->numel;
  r->num_params++;
}

static void add_linear(builder *b, const char *name, int64_t out, int64_t in, gpt_init_kind w,
                       int layer) {
  add_module(b, name, "Linear");
  add_param(b, "weight", out, in, w, layer);
  add_param(b, "bias", out, 0, GPT_INIT_ZERO, layer);
}

static void add_layernorm(builder *b, const char *name, int64_t c, int layer) {
  add_module(b, name, "LayerNorm");
  add_param(b, "weight", c, 0, GPT_INIT_ONE, layer);
  add_param(b, "bias", c, 0, GPT_INIT_ZERO, layer);
}

enum { MODULES_PER_LAYER = 9, NAME_MAX_LEN = 48 };

int gpt_registry_init(gpt_registry *reg, const gpt_config *cfg, char *err, size_t errlen) {
  memset(reg, 0, sizeof *reg);
  if (gpt_config_validate(cfg, err, errlen) != 0) return -1;
  reg->cfg = *cfg;
  int max_modules = 4 + cfg->n_layer * MODULES_PER_LAYER;
  int max_params = gpt_num_params(cfg);
  size_t names_len = (size_t)max_modules * NAME_MAX_LEN;
  reg->modules = calloc((size_t)max_modules, sizeof *reg->modules);
  reg->params = calloc((size_t)max_params, sizeof *reg->params);
  reg->param_module = calloc((size_t)max_params, sizeof *reg->param_module);
  reg->names = malloc(names_len);
  if (!reg->modules || !reg->params || !reg->param_module || !reg->names) {
    gpt_registry_free(reg);
    snprintf(err, errlen, "out of host memory building the model registry (%d modules)", max_modules);
    return -1;
  }
  builder b = {.reg = reg, .cursor = reg->names, .end = reg->names + names_len};
  const int64_t C = cfg->n_embd, V = cfg->vocab, T = cfg->seq_len;
  add_module(&b, "wte", "Embedding");
  add_param(&b, "weight", V, C, GPT_INIT_NORMAL, -1);
  add_module(&b, "wpe", "Embedding");
  add_param(&b, "weight", T, C, GPT_INIT_NORMAL, -1);
  char name[NAME_MAX_LEN];
  for (int l = 0; l < cfg->n_layer; l++) {
#define SUB(fmt) (snprintf(name, sizeof name, fmt, l), name)
    add_module(&b, SUB("h.%d"), "GPT2Block");
    add_layernorm(&b, SUB("h.%d.ln_1"), C, l);
    add_module(&b, SUB("h.%d.attn"), "GPT2Attention");
    add_linear(&b, SUB("h.%d.attn.c_attn"), 3 * C, C, GPT_INIT_NORMAL, l);
    add_linear(&b, SUB("h.%d.attn.c_proj"), C, C, GPT_INIT_NORMAL_RESID, l);
    add_layernorm(&b, SUB("h.%d.ln_2"), C, l);
    add_module(&b, SUB("h.%d.mlp"), "GPT2MLP");
    add_linear(&b, SUB("h.%d.mlp.c_fc"), 4 * C, C, GPT_INIT_NORMAL, l);
    add_linear(&b, SUB("h.%d.mlp.c_proj"), C, 4 * C, GPT_INIT_NORMAL_RESID, l);
#undef SUB
  }
  add_layernorm(&b, "ln_f", C, -1);
  add_module(&b, "lm_head", "Linear");
  add_param(&b, "weight", V, C, GPT_INIT_NORMAL, -1);
  return 0;
}

void gpt_registry_free(gpt_registry *reg) {
  if (!reg) return;
  free(reg->modules);
  free(reg->params);
  free(reg->param_module);
  free(reg->names);
  memset(reg, 0, sizeof *reg);
}

/* ---- init ---- */

/* splitmix64: a full-period 64-bit generator whose state is one integer, so
 * a parameter's stream is keyed by (seed, pid) and independent of how many
 * other parameters were drawn before it. */
static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { /* (0, 1]: safe for log */
  return ((double)(splitmix64(s) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

void gpt_param_init(const gpt_registry *reg, int pid, uint64_t seed, float *out) {
  const gpt_param_desc *p = &reg->params[pid];
  double std = 0.02;
  switch (p->init) {
  case GPT_INIT_ZERO:
    memset(out, 0, (size_t)p->numel * sizeof *out);
    return;
  case GPT_INIT_ONE:
    for (int64_t i = 0; i < p->numel; i++) out[i] = 1.0f;
    return;
  case GPT_INIT_NORMAL_RESID:
    std = 0.02 / sqrt(2.0 * reg->cfg.n_layer);
    break;
  case GPT_INIT_NORMAL:
    break;
  }
  uint64_t s = seed * 0x100000001B3ull ^ ((uint64_t)pid + 1) * 0xD6E8FEB86659FD93ull;
  const double two_pi = 6.283185307179586;
  for (int64_t i = 0; i < p->numel; i += 2) { /* Box-Muller: two normals per draw */
    double r = sqrt(-2.0 * log(uniform01(&s)));
    double th = two_pi * uniform01(&s);
    out[i] = (float)(std * r * cos(th));
    if (i + 1 < p->numel) out[i + 1] = (float)(std * r * sin(th));
  }
}
