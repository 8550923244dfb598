/* SPDX-License-Identifier: Apache-2.0 */
#include "gpt_lt.h"

#include <stdio.h>
#include <string.h>

int gpt_padded_vocab(int vocab) {
  if (vocab <= 0) return vocab;
  return (int)(((int64_t)vocab + GPT_VOCAB_PAD - 1) / GPT_VOCAB_PAD * GPT_VOCAB_PAD);
}

int gpt_rm_to_cm(const gpt_rm_gemm *g, gpt_cm_gemm *o, char *err, size_t errlen) {
  if (g->M < 1 || g->N < 1 || g->K < 1) {
    snprintf(err, errlen, "gemm sizes M=%d N=%d K=%d must be positive", g->M, g->N, g->K);
    return -1;
  }
  /* row-major stored shapes (rows x cols): A is (K,M) when transposed */
  const int a_cols = g->ta ? g->M : g->K, b_cols = g->tb ? g->K : g->N;
  if (g->lda < a_cols || g->ldb < b_cols || g->ldc < g->N) {
    snprintf(err, errlen, "gemm row strides lda=%d ldb=%d ldc=%d are shorter than the rows (%d, %d, %d)", g->lda,
             g->ldb, g->ldc, a_cols, b_cols, g->N);
    return -1;
  }
  memset(o, 0, sizeof *o);
  /* C^T(N,M) = op(B)^T(N,K) op(A)^T(K,M), all column-major */
  o->m = g->N;
  o->n = g->M;
  o->k = g->K;
  o->trans_first = g->tb;
  o->trans_second = g->ta;
  /* a row-major (r,c) matrix is a column-major (c,r) one with the same ld */
  o->first_rows = b_cols;
  o->first_cols = g->tb ? g->N : g->K;
  o->ld_first = g->ldb;
  o->second_rows = a_cols;
  o->second_cols = g->ta ? g->K : g->M;
  o->ld_second = g->lda;
  o->c_rows = g->N;
  o->c_cols = g->M;
  o->ldc = g->ldc;
  return 0;
}

int gpt_lt_alignment(uintptr_t p) {
  int a = 256;
  while (a > 1 && (p % (uintptr_t)a) != 0) a /= 2;
  return a;
}

gpt_lt_entry *gpt_lt_cache_lookup(gpt_lt_cache *c, const gpt_lt_key *key, bool *found) {
  for (int i = 0; i < GPT_LT_CACHE_SLOTS; i++) {
    if (c->slot[i].used && memcmp(&c->slot[i].key, key, sizeof *key) == 0) {
      *found = true;
      c->hits++;
      return &c->slot[i];
    }
  }
  *found = false;
  c->misses++;
  gpt_lt_entry *e = NULL;
  for (int i = 0; i < GPT_LT_CACHE_SLOTS && !e; i++)
    if (!c->slot[i].used) e = &c->slot[i];
  if (!e) {
    e = &c->slot[c->next_victim];
    c->next_victim = (c->next_victim + 1) % GPT_LT_CACHE_SLOTS;
  }
  memset(e, 0, sizeof *e);
  e->key = *key;
  e->used = 1;
  return e;
}

int gpt_embed_plan(const int *tokens, int BT, int V, int *count, int *order, int *tok, int *seg) {
  memset(count, 0, ((size_t)V + 1) * sizeof(int));
  for (int i = 0; i < BT; i++) count[tokens[i] + 1]++;
  for (int v = 0; v < V; v++) count[v + 1] += count[v]; /* count[v]: where token v's positions start */
  int u = 0;
  for (int v = 0; v < V; v++)
    if (count[v + 1] > count[v]) tok[u] = v, seg[u] = count[v], u++;
  seg[u] = BT;
  for (int i = 0; i < BT; i++) order[count[tokens[i]]++] = i; /* ascending positions within a token */
  return u;
}
