/* SPDX-License-Identifier: Apache-2.0 */
/* The GPT model description and CPU passes without the runtime: presets,
 * validation messages, the module/parameter registry the wrap policies see,
 * deterministic init, the loss at init, bad token ids, and that plain SGD on
 * the CPU gradients drives the loss down. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gpt_cpu.h"
#include "gpt_test_util.h"

static void test_presets(void **state) {
  (void)state;
  gpt_config c;
  char err[256];
  assert_int_equal(gpt_preset("gpt2", &c, err, sizeof err), 0);
  assert_int_equal(c.n_layer, 12);
  assert_int_equal(c.n_embd, 768);
  assert_int_equal(c.n_head, 12);
  assert_int_equal(c.seq_len, 1024);
  assert_int_equal(c.vocab, 50257);
  assert_int_equal(gpt_preset("tiny", &c, err, sizeof err), 0);
  assert_int_equal(c.vocab, 256);
  assert_int_equal(gpt_preset("small", &c, err, sizeof err), 0);
  assert_int_equal(gpt_config_validate(&c, err, sizeof err), 0);
  assert_int_equal(gpt_preset("huge", &c, err, sizeof err), -1);
  assert_non_null(strstr(err, "'huge'"));
  assert_non_null(strstr(err, "tiny|small|gpt2"));
}

static void test_validate_messages(void **state) {
  (void)state;
  char err[256];
  gpt_config c = {.n_layer = 2, .n_embd = 30, .n_head = 4, .seq_len = 8, .vocab = 16};
  assert_int_equal(gpt_config_validate(&c, err, sizeof err), -1);
  assert_non_null(strstr(err, "n_embd = 30"));
  assert_non_null(strstr(err, "n_head = 4"));
  c.n_embd = 32;
  c.n_layer = 0;
  assert_int_equal(gpt_config_validate(&c, err, sizeof err), -1);
  assert_non_null(strstr(err, "n_layer = 0"));
  assert_non_null(strstr(err, "1.."));
  c.n_layer = 1;
  c.vocab = 1 << 24;
  c.n_embd = 4096;
  assert_int_equal(gpt_config_validate(&c, err, sizeof err), -1);
  assert_non_null(strstr(err, "2^31"));
  gpt_registry reg;
  assert_int_equal(gpt_registry_init(&reg, &c, err, sizeof err), -1);
  gpt_registry_free(&reg); /* safe after a failed init */
}

static void test_registry_gpt2(void **state) {
  (void)state;
  gpt_config c;
  gpt_registry reg;
  char err[256];
  assert_int_equal(gpt_preset("gpt2", &c, err, sizeof err), 0);
  assert_int_equal(gpt_registry_init(&reg, &c, err, sizeof err), 0);
  /* HF GPT-2 small has 124,439,808 parameters with the head tied to wte;
   * this model unties it (one more vocab x n_embd matrix). */
  assert_int_equal(reg.total_numel, 124439808 + (int64_t)50257 * 768);
  assert_int_equal(reg.num_params, gpt_num_params(&c));
  assert_int_equal(reg.num_params, 2 + 12 * 12 + 3);
  assert_int_equal(reg.num_modules, 2 + 12 * 9 + 2);
  int64_t sum = 0;
  for (int i = 0; i < reg.num_params; i++) sum += reg.params[i].numel;
  assert_int_equal(sum, reg.total_numel);
  gpt_registry_free(&reg);
}

static void test_registry_names(void **state) {
  (void)state;
  gpt_config c = {.n_layer = 3, .n_embd = 8, .n_head = 2, .seq_len = 4, .vocab = 10};
  gpt_registry reg;
  char err[256];
  assert_int_equal(gpt_registry_init(&reg, &c, err, sizeof err), 0);
  assert_string_equal(reg.modules[0].name, "wte");
  assert_string_equal(reg.modules[0].module_class, "Embedding");
  assert_string_equal(reg.modules[2].name, "h.0");
  assert_string_equal(reg.modules[2].module_class, "GPT2Block");
  assert_string_equal(reg.modules[reg.num_modules - 2].name, "ln_f");
  assert_string_equal(reg.modules[reg.num_modules - 1].name, "lm_head");
  int blocks = 0;
  for (int m = 0; m < reg.num_modules; m++) blocks += strcmp(reg.modules[m].module_class, "GPT2Block") == 0;
  assert_int_equal(blocks, 3);
  /* the dense ids address what their names say */
  const gpt_param_desc *q = &reg.params[gpt_pid_layer(&c, 2, GPT_QKV_W)];
  assert_string_equal(q->module, "h.2.attn.c_attn");
  assert_string_equal(q->name, "weight");
  assert_int_equal(q->shape[0], 24);
  assert_int_equal(q->shape[1], 8);
  const gpt_param_desc *fp = &reg.params[gpt_pid_layer(&c, 1, GPT_FCPROJ_B)];
  assert_string_equal(fp->module, "h.1.mlp.c_proj");
  assert_string_equal(fp->name, "bias");
  assert_int_equal(fp->ndim, 1);
  assert_int_equal(fp->numel, 8);
  assert_string_equal(reg.params[gpt_pid_lnf_b(&c)].module, "ln_f");
  assert_string_equal(reg.params[gpt_pid_head(&c)].module, "lm_head");
  assert_int_equal(reg.params[gpt_pid_head(&c)].numel, 80);
  /* every parameter's module index points at a module of the same name */
  for (int i = 0; i < reg.num_params; i++) {
    assert_string_equal(reg.modules[reg.param_module[i]].name, reg.params[i].module);
    assert_int_equal(gpt_param_stage(&c, i),
                     reg.params[i].layer >= 0 ? reg.params[i].layer + 1 : (i <= GPT_P_WPE ? 0 : 4));
  }
  gpt_registry_free(&reg);
  gpt_registry_free(&reg); /* idempotent */
}

static void test_init_deterministic(void **state) {
  (void)state;
  gpt_config c;
  gpt_registry reg;
  char err[256];
  assert_int_equal(gpt_preset("tiny", &c, err, sizeof err), 0);
  assert_int_equal(gpt_registry_init(&reg, &c, err, sizeof err), 0);
  const int64_t n = reg.params[GPT_P_WTE].numel;
  float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *d = malloc(n * sizeof *d);
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(d);
  gpt_param_init(&reg, GPT_P_WTE, 42, a);
  gpt_param_init(&reg, GPT_P_WTE, 42, b);
  gpt_param_init(&reg, GPT_P_WTE, 43, d);
  assert_memory_equal(a, b, n * sizeof *a);
  assert_memory_not_equal(a, d, n * sizeof *a);
  double m = 0, v = 0;
  for (int64_t i = 0; i < n; i++) m += a[i];
  m /= n;
  for (int64_t i = 0; i < n; i++) v += (a[i] - m) * (a[i] - m);
  /* 8192 normal draws: the sample std is within ~2% of 0.02 */
  assert_true(fabs(sqrt(v / n) - 0.02) < 0.001);
  assert_true(fabs(m) < 0.001);
  /* residual projections are scaled by 1/sqrt(2 n_layer) */
  int pid = gpt_pid_layer(&c, 0, GPT_ATTPROJ_W);
  float *r = malloc(reg.params[pid].numel * sizeof *r);
  assert_non_null(r);
  gpt_param_init(&reg, pid, 42, r);
  v = 0;
  for (int64_t i = 0; i < reg.params[pid].numel; i++) v += (double)r[i] * r[i];
  assert_true(fabs(sqrt(v / reg.params[pid].numel) - 0.01) < 0.0008);
  /* gains are one, biases zero */
  gpt_param_init(&reg, gpt_pid_lnf_w(&c), 42, a);
  gpt_param_init(&reg, gpt_pid_lnf_b(&c), 42, b);
  for (int i = 0; i < c.n_embd; i++) {
    assert_true(a[i] == 1.0f);
    assert_true(b[i] == 0.0f);
  }
  free(a);
  free(b);
  free(d);
  free(r);
  gpt_registry_free(&reg);
}

static void test_loss_at_init_and_bad_ids(void **state) {
  (void)state;
  gpt_config c;
  char err[256];
  assert_int_equal(gpt_preset("tiny", &c, err, sizeof err), 0);
  gpt_test_model m;
  assert_int_equal(gpt_test_model_init(&m, &c, 2, 16, 5), 0);
  gpt_cpu_acts a;
  assert_int_equal(gpt_cpu_acts_init(&a, &c, 2, 16, err, sizeof err), 0);
  double sum;
  assert_int_equal(gpt_cpu_forward(&a, (const float *const *)m.p, m.tokens, m.targets, &sum), 0);
  /* small init: the logits are near zero, so the loss is near ln(vocab) */
  assert_true(fabs(sum / 32 - log(256.0)) < 0.05);
  m.tokens[7] = 256;
  assert_int_equal(gpt_cpu_forward(&a, (const float *const *)m.p, m.tokens, m.targets, &sum), -1);
  assert_non_null(strstr(a.err, "input token 256 at position 7"));
  m.tokens[7] = 3;
  m.targets[30] = -2;
  assert_int_equal(gpt_cpu_forward(&a, (const float *const *)m.p, m.tokens, m.targets, &sum), -1);
  assert_non_null(strstr(a.err, "target token -2 at position 30"));
  gpt_cpu_acts_free(&a);
  /* activations longer than the position table are refused */
  assert_int_equal(gpt_cpu_acts_init(&a, &c, 1, 33, err, sizeof err), -1);
  assert_non_null(strstr(err, "T=33"));
  assert_non_null(strstr(err, "seq_len 32"));
  gpt_test_model_free(&m);
}

/* 30 SGD steps on one batch of a repeating pattern: the model must fit it. */
static void test_sgd_overfits(void **state) {
  (void)state;
  gpt_config c;
  char err[256];
  assert_int_equal(gpt_preset("tiny", &c, err, sizeof err), 0);
  gpt_test_model m;
  assert_int_equal(gpt_test_model_init(&m, &c, 2, 32, 11), 0);
  for (int i = 0; i < 64; i++) {
    m.tokens[i] = "the cat sat on the mat. "[i % 24];
    m.targets[i] = "the cat sat on the mat. "[(i + 1) % 24];
  }
  gpt_cpu_acts a;
  assert_int_equal(gpt_cpu_acts_init(&a, &c, 2, 32, err, sizeof err), 0);
  double first = 0, last = 0;
  for (int step = 0; step < 30; step++) {
    double sum;
    gpt_test_zero_grads(&m);
    assert_int_equal(gpt_cpu_forward(&a, (const float *const *)m.p, m.tokens, m.targets, &sum), 0);
    gpt_cpu_backward(&a, (const float *const *)m.p, m.g, m.tokens, m.targets, 1.0f / 64);
    if (step == 0) first = sum / 64;
    last = sum / 64;
    for (int i = 0; i < m.reg.num_params; i++)
      for (int64_t k = 0; k < m.reg.params[i].numel; k++) m.p[i][k] -= 0.5f * m.g[i][k];
  }
  print_message("  loss %.4f -> %.4f\n", first, last);
  assert_true(isfinite(last));
  assert_true(last < 0.5 * first);
  gpt_cpu_acts_free(&a);
  gpt_test_model_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_presets),          cmocka_unit_test(test_validate_messages),
      cmocka_unit_test(test_registry_gpt2),    cmocka_unit_test(test_registry_names),
      cmocka_unit_test(test_init_deterministic), cmocka_unit_test(test_loss_at_init_and_bad_ids),
      cmocka_unit_test(test_sgd_overfits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
