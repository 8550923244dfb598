/* SPDX-License-Identifier: Apache-2.0 */
/* The host-side decisions of the GPU GPT's bf16/fp16 paths, on the CPU
 * (examples/train_gpt/gpt_lt.h, gpt_launch.h): the row-major to
 * column-major mapping handed to cuBLASLt, checked by executing it with a
 * reference that follows cuBLAS's column-major definition literally and
 * comparing with a row-major product; the vocabulary padding; pointer
 * alignment classes; the heuristic cache; launch shapes; the per-layer
 * activation slots; the embedding backward's plan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gpt_launch.h"
#include "gpt_lt.h"

/* cuBLAS: C(m,n) = op(A)(m,k) op(B)(k,n), column-major, element (i,j) of
 * a stored matrix X at X[i + j*ld]. The stored shapes from the mapping are
 * asserted to be what op() needs, so a wrong layout fails even when the
 * pointer arithmetic happens to work. */
static void cm_reference(const gpt_cm_gemm *g, const float *first, const float *second, float *c) {
  assert_int_equal(g->trans_first ? g->first_cols : g->first_rows, g->m);
  assert_int_equal(g->trans_first ? g->first_rows : g->first_cols, g->k);
  assert_int_equal(g->trans_second ? g->second_cols : g->second_rows, g->k);
  assert_int_equal(g->trans_second ? g->second_rows : g->second_cols, g->n);
  assert_int_equal(g->c_rows, g->m);
  assert_int_equal(g->c_cols, g->n);
  assert_true(g->ld_first >= g->first_rows && g->ld_second >= g->second_rows && g->ldc >= g->c_rows);
  for (int j = 0; j < g->n; j++)
    for (int i = 0; i < g->m; i++) {
      double acc = 0;
      for (int l = 0; l < g->k; l++) {
        float a = g->trans_first ? first[l + (size_t)i * g->ld_first] : first[i + (size_t)l * g->ld_first];
        float b = g->trans_second ? second[j + (size_t)l * g->ld_second] : second[l + (size_t)j * g->ld_second];
        acc += (double)a * b;
      }
      c[i + (size_t)j * g->ldc] = (float)acc;
    }
}

/* row-major: C[i*ldc + j] = sum_l op(A)[i,l] op(B)[l,j] */
static void rm_reference(const gpt_rm_gemm *g, const float *A, const float *B, float *C) {
  for (int i = 0; i < g->M; i++)
    for (int j = 0; j < g->N; j++) {
      double acc = 0;
      for (int l = 0; l < g->K; l++) {
        float a = g->ta ? A[(size_t)l * g->lda + i] : A[(size_t)i * g->lda + l];
        float b = g->tb ? B[(size_t)j * g->ldb + l] : B[(size_t)l * g->ldb + j];
        acc += (double)a * b;
      }
      C[(size_t)i * g->ldc + j] = (float)acc;
    }
}

static void test_mapping_executes_like_row_major(void **state) {
  (void)state;
  uint32_t s = 1;
  /* every transpose combination, padded strides (the padded-vocab logits
   * have ld > N), and the model's own shapes in miniature */
  const int shapes[][3] = {{5, 7, 3}, {1, 9, 4}, {8, 1, 6}, {6, 5, 1}, {12, 40, 16}};
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
    for (int t = 0; t < 4; t++)
      for (int pad = 0; pad < 2; pad++) {
        gpt_rm_gemm g = {.ta = t & 1, .tb = (t >> 1) & 1, .M = shapes[si][0], .N = shapes[si][1], .K = shapes[si][2]};
        g.lda = (g.ta ? g.M : g.K) + pad * 3;
        g.ldb = (g.tb ? g.K : g.N) + pad * 2;
        g.ldc = g.N + pad * 5;
        const int a_rows = g.ta ? g.K : g.M, b_rows = g.tb ? g.N : g.K;
        float *A = malloc(sizeof(float) * (size_t)a_rows * g.lda), *B = malloc(sizeof(float) * (size_t)b_rows * g.ldb);
        float *C1 = calloc((size_t)g.M * g.ldc, sizeof(float)), *C2 = calloc((size_t)g.M * g.ldc, sizeof(float));
        assert_non_null(A), assert_non_null(B), assert_non_null(C1), assert_non_null(C2);
        for (int i = 0; i < a_rows * g.lda; i++) A[i] = (float)((s = s * 1103515245u + 12345u) >> 20) / 4096.0f - 0.5f;
        for (int i = 0; i < b_rows * g.ldb; i++) B[i] = (float)((s = s * 1103515245u + 12345u) >> 20) / 4096.0f - 0.5f;
        gpt_cm_gemm cm;
        char err[128];
        assert_int_equal(gpt_rm_to_cm(&g, &cm, err, sizeof err), 0);
        /* operands swap: cuBLAS's first operand is our B */
        cm_reference(&cm, B, A, C1);
        rm_reference(&g, A, B, C2);
        for (int i = 0; i < g.M; i++)
          for (int j = 0; j < g.N; j++)
            if (C1[(size_t)i * g.ldc + j] != C2[(size_t)i * g.ldc + j])
              fail_msg("shape %zu ta %d tb %d pad %d: C[%d,%d] %g vs %g", si, g.ta, g.tb, pad, i, j,
                       C1[(size_t)i * g.ldc + j], C2[(size_t)i * g.ldc + j]);
        free(A), free(B), free(C1), free(C2);
      }
}

static void test_mapping_refuses_bad_shapes(void **state) {
  (void)state;
  char err[160];
  gpt_cm_gemm cm;
  gpt_rm_gemm g = {.M = 4, .N = 6, .K = 0, .lda = 8, .ldb = 8, .ldc = 8};
  assert_int_equal(gpt_rm_to_cm(&g, &cm, err, sizeof err), -1);
  assert_non_null(strstr(err, "K=0"));
  g.K = 5;
  g.ldc = 5; /* shorter than N = 6 */
  assert_int_equal(gpt_rm_to_cm(&g, &cm, err, sizeof err), -1);
  assert_non_null(strstr(err, "ldc=5"));
  g.ldc = 6;
  g.ta = true; /* A stored (K,M): rows of M = 4 */
  g.lda = 3;
  assert_int_equal(gpt_rm_to_cm(&g, &cm, err, sizeof err), -1);
  assert_non_null(strstr(err, "lda=3"));
}

static void test_padded_vocab(void **state) {
  (void)state;
  assert_int_equal(gpt_padded_vocab(50257), 50304); /* llm.c's padded GPT-2 vocabulary */
  assert_int_equal(gpt_padded_vocab(256), 256);
  assert_int_equal(gpt_padded_vocab(301), 384);
  assert_int_equal(gpt_padded_vocab(1), 128);
  assert_int_equal(gpt_padded_vocab(1 << 24), 1 << 24);
  for (int v = 1; v < 2000; v += 7) {
    int p = gpt_padded_vocab(v);
    assert_true(p >= v && p - v < GPT_VOCAB_PAD && p % GPT_VOCAB_PAD == 0);
  }
}

static void test_alignment(void **state) {
  (void)state;
  assert_int_equal(gpt_lt_alignment(0), 256);
  assert_int_equal(gpt_lt_alignment(0x7f0000001000u), 256);
  assert_int_equal(gpt_lt_alignment(0x1000 + 16), 16);
  assert_int_equal(gpt_lt_alignment(0x1000 + 2), 2);
  assert_int_equal(gpt_lt_alignment(0x1000 + 3), 1);
  assert_int_equal(gpt_lt_alignment(0x1000 + 128), 128);
}

static gpt_lt_key key_for(int m) {
  gpt_lt_key k;
  memset(&k, 0, sizeof k);
  k.shape.m = m;
  k.shape.n = 3;
  k.shape.k = 2;
  k.ab_type = 14;
  return k;
}

static void test_cache(void **state) {
  (void)state;
  gpt_lt_cache *c = calloc(1, sizeof *c);
  assert_non_null(c);
  bool found;
  gpt_lt_key k1 = key_for(1), k2 = key_for(2);
  gpt_lt_entry *e = gpt_lt_cache_lookup(c, &k1, &found);
  assert_false(found);
  e->supported = 1;
  e->workspace = 4096;
  e->algo[0] = 42;
  assert_ptr_equal(gpt_lt_cache_lookup(c, &k1, &found), e);
  assert_true(found);
  assert_int_equal(e->workspace, 4096);
  assert_int_equal(e->algo[0], 42);
  /* any field of the key makes a different entry */
  gpt_lt_key k1b = k1;
  k1b.align_d = 16;
  gpt_lt_entry *e2 = gpt_lt_cache_lookup(c, &k1b, &found);
  assert_false(found);
  assert_ptr_not_equal(e2, e);
  assert_int_equal(e2->supported, 0); /* a fresh slot is cleared */
  (void)gpt_lt_cache_lookup(c, &k2, &found);
  assert_false(found);
  assert_int_equal(c->hits, 1);
  assert_int_equal(c->misses, 3);
  /* full: round-robin eviction from slot 0, the rest stay found */
  for (int i = 3; i < GPT_LT_CACHE_SLOTS; i++) {
    gpt_lt_key k = key_for(100 + i);
    (void)gpt_lt_cache_lookup(c, &k, &found);
    assert_false(found);
  }
  gpt_lt_key knew = key_for(9999);
  gpt_lt_entry *ev = gpt_lt_cache_lookup(c, &knew, &found);
  assert_false(found);
  assert_ptr_equal(ev, &c->slot[0]);
  assert_true(memcmp(&ev->key, &knew, sizeof knew) == 0);
  ev = gpt_lt_cache_lookup(c, &k1, &found); /* k1 lived in slot 0: gone, refilled into slot 1 */
  assert_false(found);
  assert_ptr_equal(ev, &c->slot[1]);
  (void)gpt_lt_cache_lookup(c, &k1b, &found); /* slot 1's previous key */
  assert_false(found);
  (void)gpt_lt_cache_lookup(c, &k2, &found); /* k1b took slot 2 */
  assert_false(found);
  gpt_lt_key k100 = key_for(100 + GPT_LT_CACHE_SLOTS - 1);
  (void)gpt_lt_cache_lookup(c, &k100, &found);
  assert_true(found);
  free(c);
}

/* Activation slots: every slot of a 2- or 4-byte tensor starts 256-byte
 * aligned and holds its n elements, and nothing more than 127 is added. */
static void test_act_slots(void **state) {
  (void)state;
  const long long ns[] = {1, 37, 127, 128, 129, 3 * 37 * 48, 2LL * 1024 * 768 * 4, 50304LL * 8192};
  for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    size_t s = gpt_act_slot(ns[i]);
    assert_true(s >= (size_t)ns[i] && s < (size_t)ns[i] + 128);
    assert_int_equal((s * 2) % 256, 0);
    assert_int_equal((s * 4) % 256, 0);
    for (int l = 1; l < 4; l++) assert_int_equal(gpt_lt_alignment(0x10000 + (uintptr_t)(l * s * 2)), 256);
  }
}

/* The embedding backward's plan: order is a permutation of the positions
 * grouped by token in ascending token order and ascending position within
 * a token, tok the distinct tokens, seg their ranges; summing dout by the
 * plan gives the scatter-add's result exactly (integers here). */
static void test_embed_plan(void **state) {
  (void)state;
  enum { BT = 301, V = 50 };
  int tokens[BT], count[V + 1], order[BT], tok[BT], seg[BT + 1];
  uint64_t s = 9;
  for (int i = 0; i < BT; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    tokens[i] = (int)((s >> 33) % (i < 100 ? 7 : V)); /* many repeats, and some tokens never seen */
  }
  int nu = gpt_embed_plan(tokens, BT, V, count, order, tok, seg);
  int seen[BT] = {0}, hist[V] = {0};
  for (int i = 0; i < BT; i++) hist[tokens[i]]++;
  int want_nu = 0;
  for (int v = 0; v < V; v++) want_nu += hist[v] > 0;
  assert_int_equal(nu, want_nu);
  assert_int_equal(seg[0], 0);
  assert_int_equal(seg[nu], BT);
  long long sum_plan[V] = {0}, sum_direct[V] = {0};
  for (int i = 0; i < BT; i++) sum_direct[tokens[i]] += 1000 + i;
  for (int u = 0; u < nu; u++) {
    if (u > 0) assert_true(tok[u] > tok[u - 1]);
    assert_int_equal(seg[u + 1] - seg[u], hist[tok[u]]);
    for (int k = seg[u]; k < seg[u + 1]; k++) {
      assert_int_equal(tokens[order[k]], tok[u]);
      if (k > seg[u]) assert_true(order[k] > order[k - 1]);
      seen[order[k]]++;
      sum_plan[tok[u]] += 1000 + order[k];
    }
  }
  for (int i = 0; i < BT; i++) assert_int_equal(seen[i], 1);
  for (int v = 0; v < V; v++) assert_true(sum_plan[v] == sum_direct[v]);
  /* one position, one token */
  int one = 3;
  assert_int_equal(gpt_embed_plan(&one, 1, V, count, order, tok, seg), 1);
  assert_int_equal(tok[0], 3);
  assert_int_equal(order[0], 0);
  assert_int_equal(seg[1], 1);
}

static void test_launch_shapes(void **state) {
  (void)state;
  assert_int_equal(gpt_ew_blocks(0), 1);
  assert_int_equal(gpt_ew_blocks(1), 1);
  assert_int_equal(gpt_ew_blocks(GPT_EW_THREADS), 1);
  assert_int_equal(gpt_ew_blocks(GPT_EW_THREADS + 1), 2);
  /* beyond the cap the grid-stride loop covers the rest: grid x stride
   * must still be positive and the grid within CUDA's x limit */
  assert_int_equal(gpt_ew_blocks((int64_t)1 << 40), GPT_EW_MAX_BLOCKS);
  assert_int_equal(gpt_row_blocks(0, 8), 1);
  assert_int_equal(gpt_row_blocks(17, 8), 3);
  /* gpt2 shape: B*NH*T rows of attention, B*T rows of LayerNorm */
  assert_int_equal(gpt_row_blocks((int64_t)8 * 12 * 1024, GPT_ROWS_PER_BLOCK), 12288);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mapping_executes_like_row_major),
      cmocka_unit_test(test_mapping_refuses_bad_shapes),
      cmocka_unit_test(test_padded_vocab),
      cmocka_unit_test(test_alignment),
      cmocka_unit_test(test_cache),
      cmocka_unit_test(test_launch_shapes),
      cmocka_unit_test(test_act_slots),
      cmocka_unit_test(test_embed_plan),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
