/* SPDX-License-Identifier: Apache-2.0 */
/* train_gpt --sample: text generation after training, so a user sees what
 * the model learned. The full fp32 weights are gathered from the runtime
 * (shardrt_param_get, collective: every strategy and world size) and rank 0
 * runs the CPU forward (gpt_cpu.h) one token at a time over the last
 * seq_len tokens; only rank 0 prints. Greedy (argmax, the lowest id on a
 * tie, as torch.argmax) at temperature 0, else softmax(logits / T) over the
 * top_k most likely tokens (0: all), drawn from a generator seeded by
 * --seed, so a run is reproducible.
 *
 * Decoding: raw-byte data prints bytes (non-printable ones as \xNN); with a
 * tokenizer file (llm.c's tokenizer.bin: 256 uint32 header, magic 20240328,
 * version 1 or 2, vocab size, EOT id; then per token a uint8 length and its
 * bytes) tokens print as their bytes; otherwise as ids. The ids are always
 * printed ("sample ids: ..."), which is what the tests compare. */
#ifndef GPT_SAMPLE_H
#define GPT_SAMPLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gpt_model.h"
#include "shardrt.h"

typedef struct gpt_tokenizer {
  int vocab;
  char **tok;     /* tok[i]: len[i] bytes */
  unsigned char *len;
} gpt_tokenizer;

/* Reads an llm.c tokenizer.bin. Returns 0, or -1 with err (magic, version,
 * truncation, a zero-length token, vocab mismatch with cfg_vocab). */
int gpt_tokenizer_load(gpt_tokenizer *t, const char *path, int cfg_vocab, char *err, size_t errlen);
void gpt_tokenizer_free(gpt_tokenizer *t); /* NULL-safe, idempotent */

typedef struct gpt_sample_opts {
  int n;              /* tokens to generate (>= 1) */
  const int *prompt;  /* prompt ids (each < vocab), at least one */
  int nprompt;
  double temperature; /* 0: greedy */
  int top_k;          /* 0: every token */
  uint64_t seed;
  int byte_text;      /* ids are bytes: print them as text */
  const gpt_tokenizer *tok; /* or NULL */
} gpt_sample_opts;

/* Collective. Generates o->n tokens after the prompt with the context's
 * current weights; rank 0 prints the result to out. rt_pid: the runtime id
 * of each model parameter (gpt_run_register). Returns 0, or 1 with a message
 * on stderr. */
int gpt_sample(shardrt_ctx *ctx, const gpt_registry *reg, const int *rt_pid, const gpt_sample_opts *o, FILE *out);

/* Parses "--prompt_ids" ("1,2,3"): at most cap ids, each in [0, vocab).
 * Returns the count, or -1 with err. */
int gpt_parse_ids(const char *s, int vocab, int *ids, int cap, char *err, size_t errlen);

#endif
