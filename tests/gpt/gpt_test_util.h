/* SPDX-License-Identifier: Apache-2.0 */
/* Shared fixture of the GPT tests: a model with its parameters and
 * gradients as plain host fp32 arrays, initialised from the registry, and a
 * reproducible token batch. Header-only so each test stays one executable. */
#ifndef GPT_TEST_UTIL_H
#define GPT_TEST_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_model.h"

typedef struct gpt_test_model {
  gpt_registry reg;
  float **p, **g; /* one array per parameter id */
  int *tokens, *targets;
  int B, T;
} gpt_test_model;

static inline uint32_t gpt_test_lcg(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*s >> 33);
}

/* Returns 0 on success. Tokens: a fixed pseudo-random stream; targets are
 * the next token, as in language-model training. */
static inline int gpt_test_model_init(gpt_test_model *m, const gpt_config *cfg, int B, int T,
                                      uint64_t seed) {
  char err[256];
  memset(m, 0, sizeof *m);
  if (gpt_registry_init(&m->reg, cfg, err, sizeof err) != 0) return -1;
  int n = m->reg.num_params;
  m->p = calloc((size_t)n, sizeof *m->p);
  m->g = calloc((size_t)n, sizeof *m->g);
  m->tokens = malloc((size_t)B * T * sizeof(int));
  m->targets = malloc((size_t)B * T * sizeof(int));
  if (!m->p || !m->g || !m->tokens || !m->targets) return -1;
  for (int i = 0; i < n; i++) {
    m->p[i] = malloc((size_t)m->reg.params[i].numel * sizeof(float));
    m->g[i] = calloc((size_t)m->reg.params[i].numel, sizeof(float));
    if (!m->p[i] || !m->g[i]) return -1;
    gpt_param_init(&m->reg, i, seed, m->p[i]);
  }
  uint64_t s = seed ^ 0x5eedull;
  for (int b = 0; b < B; b++) {
    int prev = (int)(gpt_test_lcg(&s) % (uint32_t)cfg->vocab);
    for (int t = 0; t < T; t++) {
      int next = (int)(gpt_test_lcg(&s) % (uint32_t)cfg->vocab);
      m->tokens[b * T + t] = prev;
      m->targets[b * T + t] = next;
      prev = next;
    }
  }
  m->B = B;
  m->T = T;
  return 0;
}

static inline void gpt_test_zero_grads(gpt_test_model *m) {
  for (int i = 0; i < m->reg.num_params; i++)
    memset(m->g[i], 0, (size_t)m->reg.params[i].numel * sizeof(float));
}

static inline void gpt_test_model_free(gpt_test_model *m) {
  for (int i = 0; m->p && i < m->reg.num_params; i++) free(m->p[i]);
  for (int i = 0; m->g && i < m->reg.num_params; i++) free(m->g[i]);
  free(m->p);
  free(m->g);
  free(m->tokens);
  free(m->targets);
  gpt_registry_free(&m->reg);
  memset(m, 0, sizeof *m);
}

#endif
