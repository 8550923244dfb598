/* SPDX-License-Identifier: Apache-2.0 */
#include "gpt_sample.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/trainer.h"
#include "gpt_cpu.h"

#define TOK_MAGIC 20240328u

void gpt_tokenizer_free(gpt_tokenizer *t) {
  if (!t) return;
  for (int i = 0; t->tok && i < t->vocab; i++) free(t->tok[i]);
  free(t->tok);
  free(t->len);
  memset(t, 0, sizeof *t);
}

int gpt_tokenizer_load(gpt_tokenizer *t, const char *path, int cfg_vocab, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open tokenizer '%s': %s", path, strerror(errno));
    return -1;
  }
  uint32_t h[256];
  int rc = -1;
  if (fread(h, sizeof h, 1, f) != 1) {
    snprintf(err, errlen, "tokenizer '%s' is shorter than its 1024-byte header", path);
    goto out;
  }
  if (h[0] != TOK_MAGIC || (h[1] != 1 && h[1] != 2)) {
    snprintf(err, errlen, "'%s' is not an llm.c tokenizer (magic %u, version %u; want %u, version 1 or 2)", path, h[0],
             h[1], TOK_MAGIC);
    goto out;
  }
  if (h[2] < 1 || h[2] > (1u << 24) || (int)h[2] != cfg_vocab) {
    snprintf(err, errlen, "tokenizer '%s' has %u tokens, the model's vocab is %d", path, h[2], cfg_vocab);
    goto out;
  }
  t->vocab = (int)h[2];
  t->tok = calloc((size_t)t->vocab, sizeof *t->tok);
  t->len = calloc((size_t)t->vocab, 1);
  if (!t->tok || !t->len) {
    snprintf(err, errlen, "out of memory reading tokenizer '%s'", path);
    goto out;
  }
  for (int i = 0; i < t->vocab; i++) {
    int n = fgetc(f);
    if (n <= 0) {
      snprintf(err, errlen, "tokenizer '%s': token %d %s", path, i, n == 0 ? "has length 0" : "is missing (truncated)");
      goto out;
    }
    t->len[i] = (unsigned char)n;
    if (!(t->tok[i] = malloc((size_t)n)) || fread(t->tok[i], 1, (size_t)n, f) != (size_t)n) {
      snprintf(err, errlen, "tokenizer '%s': token %d is truncated", path, i);
      goto out;
    }
  }
  if (fgetc(f) != EOF) {
    snprintf(err, errlen, "tokenizer '%s' has bytes after its %d tokens", path, t->vocab);
    goto out;
  }
  rc = 0;
out:
  fclose(f);
  if (rc) gpt_tokenizer_free(t);
  return rc;
}

int gpt_parse_ids(const char *s, int vocab, int *ids, int cap, char *err, size_t errlen) {
  int n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < 0 || v >= vocab) {
      snprintf(err, errlen, "--prompt_ids '%s': item %d is not a token id in [0, %d)", s, n + 1, vocab);
      return -1;
    }
    if (n == cap) {
      snprintf(err, errlen, "--prompt_ids '%s': more than %d ids", s, cap);
      return -1;
    }
    ids[n++] = (int)v;
    p = end;
    if (*p == ',') p++;
    else if (*p) {
      snprintf(err, errlen, "--prompt_ids '%s': ids are separated by commas", s);
      return -1;
    }
  }
  if (n == 0) snprintf(err, errlen, "--prompt_ids is empty: give at least one token id");
  return n ? n : -1;
}

static void put_bytes(FILE *out, const unsigned char *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = b[i];
    if (c == '\\') fputs("\\\\", out);
    else if (c >= 0x20 && c < 0x7f) fputc(c, out);
    else if (c == '\n') fputs("\\n", out);
    else fprintf(out, "\\x%02x", c);
  }
}

static void put_text(FILE *out, const gpt_sample_opts *o, const int *ids, int n) {
  for (int i = 0; i < n; i++) {
    if (o->tok) put_bytes(out, (const unsigned char *)o->tok->tok[ids[i]], o->tok->len[ids[i]]);
    else {
      unsigned char c = (unsigned char)ids[i];
      put_bytes(out, &c, 1);
    }
  }
}

/* Uniform in [0, 1) from (seed, i): one draw per generated token. */
static double uniform(uint64_t seed, int i) { return (double)(ex_hash(seed, 0x5a3d1e, (uint64_t)i, 0) >> 11) * 0x1.0p-53; }

/* The next token from probs (softmax of the logits, V of them). */
static int pick(const float *probs, int V, const gpt_sample_opts *o, int i, double *w) {
  int best = 0;
  for (int v = 1; v < V; v++)
    if (probs[v] > probs[best]) best = v;
  if (o->temperature <= 0) return best;
  /* softmax(logits / T) = probs^(1/T) renormalised; relative to the best
   * token so nothing overflows */
  double lb = log((double)probs[best]);
  for (int v = 0; v < V; v++) w[v] = probs[v] > 0 ? exp((log((double)probs[v]) - lb) / o->temperature) : 0.0;
  if (o->top_k > 0 && o->top_k < V) {
    /* the k-th largest weight: keep weights >= it (ties may keep a few more) */
    double *s = malloc(sizeof *s * (size_t)V);
    if (s) {
      memcpy(s, w, sizeof *s * (size_t)V);
      int lo = 0, hi = V - 1, k = o->top_k - 1; /* quickselect, descending */
      while (lo < hi) {
        double piv = s[(lo + hi) / 2];
        int a = lo, b = hi;
        while (a <= b) {
          while (s[a] > piv) a++;
          while (s[b] < piv) b--;
          if (a <= b) {
            double t = s[a];
            s[a++] = s[b], s[b--] = t;
          }
        }
        if (k <= b) hi = b;
        else if (k >= a) lo = a;
        else break;
      }
      double kth = s[k];
      free(s);
      for (int v = 0; v < V; v++)
        if (w[v] < kth) w[v] = 0;
    }
  }
  double sum = 0;
  for (int v = 0; v < V; v++) sum += w[v];
  double r = uniform(o->seed, i) * sum, c = 0;
  for (int v = 0; v < V; v++) {
    c += w[v];
    if (r < c) return v;
  }
  return best;
}

int gpt_sample(shardrt_ctx *ctx, const gpt_registry *reg, const int *rt_pid, const gpt_sample_opts *o, FILE *out) {
  const gpt_config *cfg = &reg->cfg;
  const int np = reg->num_params, V = cfg->vocab, T = cfg->seq_len;
  const bool root = shardrt_rank(ctx) == 0;
  float **p = calloc((size_t)np, sizeof *p);
  int *seq = malloc(sizeof *seq * (size_t)(o->nprompt + o->n));
  int *tokens = malloc(sizeof *tokens * (size_t)T), *targets = calloc((size_t)T, sizeof *targets);
  double *w = malloc(sizeof *w * (size_t)V);
  gpt_cpu_acts acts = {0};
  char err[256] = "";
  int code = 0;
  if (!p || !seq || !tokens || !targets || !w) snprintf(err, sizeof err, "out of host memory");
  for (int i = 0; i < np && !err[0]; i++)
    if (!(p[i] = malloc(sizeof(float) * (size_t)reg->params[i].numel)))
      snprintf(err, sizeof err, "out of host memory for the full weights (%lld parameters)", (long long)reg->total_numel);
  if (!err[0] && root) gpt_cpu_acts_init(&acts, cfg, 1, T, err, sizeof err);
  /* every rank learns whether every rank can go on before the gathers */
  double bad = err[0] ? 1 : 0;
  shardrt_status rc = shardrt_allreduce_sum_f64(ctx, &bad, 1);
  if (rc) {
    code = ex_fail("train_gpt", "--sample", rc);
    goto out;
  }
  if (bad) {
    if (err[0]) fprintf(stderr, "train_gpt: error: --sample: %s\n", err);
    code = 1;
    goto out;
  }
  /* collective: every rank receives the full tensors (the optimizer's fp32
   * copy); only rank 0 uses them */
  for (int i = 0; i < np; i++)
    if ((rc = shardrt_param_get(ctx, rt_pid[i], p[i]))) {
      code = ex_fail("train_gpt", "--sample: gathering the weights", rc);
      goto out;
    }
  if (!root) goto out;
  memcpy(seq, o->prompt, sizeof *seq * (size_t)o->nprompt);
  int n = o->nprompt;
  for (int i = 0; i < o->n; i++) {
    /* the last T tokens; the activations were sized for T and are read
     * with the current length (their layout follows acts.T) */
    int t = n < T ? n : T;
    memcpy(tokens, seq + n - t, sizeof *tokens * (size_t)t);
    acts.T = t;
    double loss = 0;
    if (gpt_cpu_forward(&acts, (const float *const *)p, tokens, targets, &loss)) {
      fprintf(stderr, "train_gpt: error: --sample: %s\n", acts.err);
      code = 1;
      goto out;
    }
    seq[n++] = pick(acts.probs + (size_t)(t - 1) * V, V, o, i, w);
  }
  fprintf(out, "sample (%s, %d tokens after a %d-token prompt)\nsample ids:", o->temperature > 0 ? "temperature" : "greedy",
          o->n, o->nprompt);
  for (int i = o->nprompt; i < n; i++) fprintf(out, " %d", seq[i]);
  fputc('\n', out);
  if (o->byte_text || o->tok) {
    fputs("sample text: ", out);
    put_text(out, o, seq, o->nprompt);
    fputs(" >>> ", out);
    put_text(out, o, seq + o->nprompt, o->n);
    fputc('\n', out);
  }
  fflush(out);
out:
  gpt_cpu_acts_free(&acts);
  for (int i = 0; p && i < np; i++) free(p[i]);
  free(p);
  free(seq), free(tokens), free(targets), free(w);
  return code;
}
