/* SPDX-License-Identifier: Apache-2.0 */
#include "gpt_hf.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a small JSON reader for config.json: the top-level object's members,
 * each kept as the raw text span of its value (nested values are checked
 * for well-formedness and skipped; train_gpt reads only scalars). ---- */

#define HF_MAX_KEYS 256
#define HF_MAX_DEPTH 64

typedef struct hf_member {
  char key[64];
  const char *val; /* first byte of the value */
  size_t len;
} hf_member;

typedef struct hf_json {
  const char *s, *end;
  int n;
  hf_member m[HF_MAX_KEYS];
} hf_json;

static void ws(const char **p, const char *end) {
  while (*p < end && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')) (*p)++;
}

/* Skips a string starting at '"'; copies up to cap-1 bytes of it (escapes
 * kept verbatim) into out when out is not NULL. */
static bool skip_string(const char **p, const char *end, char *out, size_t cap) {
  if (*p >= end || **p != '"') return false;
  size_t k = 0;
  for ((*p)++; *p < end; (*p)++) {
    unsigned char c = (unsigned char)**p;
    if (c == '"') {
      (*p)++;
      if (out) out[k] = 0;
      return true;
    }
    if (c < 0x20) return false;
    if (c == '\\') {
      if (out && k + 1 < cap) out[k++] = (char)c;
      if (++(*p) >= end) return false;
      c = (unsigned char)**p;
    }
    if (out && k + 1 < cap) out[k++] = (char)c;
  }
  return false;
}

static bool skip_value(const char **p, const char *end, int depth) {
  ws(p, end);
  if (*p >= end || depth > HF_MAX_DEPTH) return false;
  char c = **p;
  if (c == '"') return skip_string(p, end, NULL, 0);
  if (c == '{' || c == '[') {
    char close = c == '{' ? '}' : ']';
    (*p)++;
    ws(p, end);
    if (*p < end && **p == close) {
      (*p)++;
      return true;
    }
    for (;;) {
      if (c == '{') {
        ws(p, end);
        if (!skip_string(p, end, NULL, 0)) return false;
        ws(p, end);
        if (*p >= end || **p != ':') return false;
        (*p)++;
      }
      if (!skip_value(p, end, depth + 1)) return false;
      ws(p, end);
      if (*p < end && **p == ',') {
        (*p)++;
        continue;
      }
      if (*p < end && **p == close) {
        (*p)++;
        return true;
      }
      return false;
    }
  }
  static const char *const lits[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++) {
    size_t l = strlen(lits[i]);
    if ((size_t)(end - *p) >= l && !memcmp(*p, lits[i], l)) {
      *p += l;
      return true;
    }
  }
  const char *q = *p;
  if (q < end && *q == '-') q++;
  if (q >= end || *q < '0' || *q > '9') return false;
  while (q < end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' || *q == '-')) q++;
  *p = q;
  return true;
}

/* Returns NULL, or where the text stops being valid JSON. */
static const char *hf_parse(hf_json *j, const char *s, size_t n) {
  j->s = s, j->end = s + n, j->n = 0;
  const char *p = s, *end = s + n;
  ws(&p, end);
  if (p >= end || *p != '{') return p;
  p++;
  ws(&p, end);
  if (p < end && *p == '}') return NULL;
  for (;;) {
    ws(&p, end);
    if (j->n == HF_MAX_KEYS) return p;
    hf_member *m = &j->m[j->n];
    if (!skip_string(&p, end, m->key, sizeof m->key)) return p;
    for (int i = 0; i < j->n; i++)
      if (!strcmp(j->m[i].key, m->key)) return p; /* a duplicated key: which one would transformers take? */
    ws(&p, end);
    if (p >= end || *p != ':') return p;
    p++;
    ws(&p, end);
    m->val = p;
    if (!skip_value(&p, end, 1)) return p;
    m->len = (size_t)(p - m->val);
    j->n++;
    ws(&p, end);
    if (p < end && *p == ',') {
      p++;
      continue;
    }
    if (p < end && *p == '}') {
      p++;
      ws(&p, end);
      return p == end ? NULL : p;
    }
    return p;
  }
}

static const hf_member *hf_get(const hf_json *j, const char *key) {
  for (int i = 0; i < j->n; i++)
    if (!strcmp(j->m[i].key, key)) return &j->m[i];
  return NULL;
}

static bool is_lit(const hf_member *m, const char *lit) { return m && m->len == strlen(lit) && !memcmp(m->val, lit, m->len); }

static bool as_number(const hf_member *m, double *v) {
  if (!m || m->len == 0 || m->len > 60 || (m->val[0] != '-' && (m->val[0] < '0' || m->val[0] > '9'))) return false;
  char buf[64];
  memcpy(buf, m->val, m->len);
  buf[m->len] = 0;
  char *e;
  *v = strtod(buf, &e);
  return *e == 0 && isfinite(*v);
}

/* ---- config.json ---- */

static int read_file(const char *path, char **buf, size_t *n, char *err, size_t errlen) {
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode) || st.st_size > (16 << 20)) {
    snprintf(err, errlen, "'%s' is not a regular file of at most 16 MiB", path);
    return -1;
  }
  FILE *f = fopen(path, "rb");
  *buf = malloc((size_t)st.st_size + 1);
  if (!f || !*buf) {
    snprintf(err, errlen, "cannot read '%s': %s", path, f ? "out of memory" : strerror(errno));
    if (f) fclose(f);
    free(*buf);
    *buf = NULL;
    return -1;
  }
  *n = fread(*buf, 1, (size_t)st.st_size, f);
  fclose(f);
  return 0;
}

static int int_field(const hf_json *j, const char *path, const char *key, const char *alt, int *out, char *err,
                     size_t errlen) {
  const hf_member *m = hf_get(j, key);
  if (!m && alt) m = hf_get(j, alt);
  double v;
  if (!m) {
    snprintf(err, errlen, "'%s' has no \"%s\"", path, key);
    return -1;
  }
  if (!as_number(m, &v) || v != floor(v) || v < 1 || v > (1 << 24)) {
    snprintf(err, errlen, "'%s': \"%s\" is %.*s; it must be an integer in [1, %d]", path, key, (int)m->len, m->val,
             1 << 24);
    return -1;
  }
  *out = (int)v;
  return 0;
}

int gpt_hf_read_config(const char *dir, gpt_config *cfg, int *tied, char *err, size_t errlen) {
  char path[4200];
  snprintf(path, sizeof path, "%s/config.json", dir);
  char *buf = NULL;
  size_t n = 0;
  if (read_file(path, &buf, &n, err, errlen)) return -1;
  hf_json *j = malloc(sizeof *j);
  int rc = -1;
  if (!j) {
    snprintf(err, errlen, "out of memory reading '%s'", path);
    goto out;
  }
  const char *bad = hf_parse(j, buf, n);
  if (bad) {
    snprintf(err, errlen, "'%s' is not a JSON object of distinct keys (at byte %ld)", path, (long)(bad - buf));
    goto out;
  }
  const hf_member *m;
  if ((m = hf_get(j, "model_type")) && !is_lit(m, "\"gpt2\"")) {
    snprintf(err, errlen, "'%s': \"model_type\" is %.*s; train_gpt loads \"gpt2\" only", path, (int)m->len, m->val);
    goto out;
  }
  memset(cfg, 0, sizeof *cfg);
  if (int_field(j, path, "n_layer", NULL, &cfg->n_layer, err, errlen) ||
      int_field(j, path, "n_embd", NULL, &cfg->n_embd, err, errlen) ||
      int_field(j, path, "n_head", NULL, &cfg->n_head, err, errlen) ||
      int_field(j, path, "n_positions", "n_ctx", &cfg->seq_len, err, errlen) ||
      int_field(j, path, "vocab_size", NULL, &cfg->vocab, err, errlen))
    goto out;
  double v;
  if ((m = hf_get(j, "layer_norm_epsilon")) && !(as_number(m, &v) && v == 1e-5)) {
    snprintf(err, errlen, "'%s': \"layer_norm_epsilon\" is %.*s; train_gpt's LayerNorm uses 1e-05", path, (int)m->len,
             m->val);
    goto out;
  }
  if ((m = hf_get(j, "activation_function")) && !is_lit(m, "\"gelu_new\"")) {
    snprintf(err, errlen, "'%s': \"activation_function\" is %.*s; train_gpt implements \"gelu_new\" (tanh GELU) only",
             path, (int)m->len, m->val);
    goto out;
  }
  if ((m = hf_get(j, "n_inner")) && !is_lit(m, "null") && !(as_number(m, &v) && v == 4.0 * cfg->n_embd)) {
    snprintf(err, errlen, "'%s': \"n_inner\" is %.*s; train_gpt's MLP is 4 * n_embd = %d wide", path, (int)m->len,
             m->val, 4 * cfg->n_embd);
    goto out;
  }
  /* fields whose non-default value changes the model's function */
  static const struct { const char *key, *want; } fixed[] = {
      {"scale_attn_weights", "true"},
      {"scale_attn_by_inverse_layer_idx", "false"},
      {"add_cross_attention", "false"},
  };
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    if ((m = hf_get(j, fixed[i].key)) && !is_lit(m, fixed[i].want)) {
      snprintf(err, errlen, "'%s': \"%s\" is %.*s; train_gpt reproduces only %s", path, fixed[i].key, (int)m->len, m->val,
               fixed[i].want);
      goto out;
    }
  m = hf_get(j, "tie_word_embeddings");
  if (m && !is_lit(m, "true") && !is_lit(m, "false")) {
    snprintf(err, errlen, "'%s': \"tie_word_embeddings\" is %.*s; it must be true or false", path, (int)m->len, m->val);
    goto out;
  }
  *tied = !is_lit(m, "false");
  rc = 0;
out:
  free(j);
  free(buf);
  return rc;
}

int gpt_hf_weights_path(const char *dir, char *path, size_t cap, char *err, size_t errlen) {
  struct stat st;
  snprintf(path, cap, "%s/model.safetensors", dir);
  if (stat(path, &st) == 0) return 0;
  /* save_pretrained splits a model above max_shard_size into
   * model-0000k-of-0000n.safetensors listed by this index; the loader reads
   * the index and its shards as one file. */
  snprintf(path, cap, "%s/model.safetensors.index.json", dir);
  if (stat(path, &st) == 0) return 0;
  snprintf(err, errlen,
           "'%s' has neither model.safetensors nor model.safetensors.index.json (a save_pretrained directory with "
           "safe_serialization)",
           dir);
  return -1;
}

/* config.json's object for cfg; dtype is the torch_dtype value, JSON-quoted. */
static void config_json(FILE *f, const gpt_config *cfg, const char *dtype, const char *indent) {
  /* train_gpt has no dropout: the exported config says so, so that
   * fine-tuning it in transformers trains the same function. */
  fprintf(f,
          "{\n%s  \"architectures\": [\"GPT2LMHeadModel\"],\n%s  \"model_type\": \"gpt2\",\n%s  \"vocab_size\": %d,\n"
          "%s  \"n_positions\": %d,\n%s  \"n_embd\": %d,\n%s  \"n_layer\": %d,\n%s  \"n_head\": %d,\n%s  \"n_inner\": null,\n"
          "%s  \"activation_function\": \"gelu_new\",\n%s  \"layer_norm_epsilon\": 1e-05,\n%s  \"initializer_range\": 0.02,\n"
          "%s  \"resid_pdrop\": 0.0,\n%s  \"embd_pdrop\": 0.0,\n%s  \"attn_pdrop\": 0.0,\n%s  \"summary_first_dropout\": 0.0,\n"
          "%s  \"scale_attn_weights\": true,\n%s  \"scale_attn_by_inverse_layer_idx\": false,\n"
          "%s  \"reorder_and_upcast_attn\": false,\n%s  \"tie_word_embeddings\": false,\n%s  \"use_cache\": true,\n"
          "%s  \"torch_dtype\": \"%s\"\n%s}",
          indent, indent, indent, cfg->vocab, indent, cfg->seq_len, indent, cfg->n_embd, indent, cfg->n_layer, indent,
          cfg->n_head, indent, indent, indent, indent, indent, indent, indent, indent, indent, indent, indent, indent,
          indent, indent, dtype, indent);
}

static const char *torch_dtype(shardrt_dtype dt) {
  return dt == SHARDRT_BF16 ? "bfloat16" : dt == SHARDRT_F16 ? "float16" : "float32";
}

int gpt_hf_write_config(const char *dir, const gpt_config *cfg, shardrt_dtype dt, char *err, size_t errlen) {
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
    return -1;
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/config.json", dir);
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    return -1;
  }
  config_json(f, cfg, torch_dtype(dt), "");
  fputc('\n', f);
  if (fclose(f) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', f);
    if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
    else fputc(*s, f);
  }
  fputc('"', f);
}

static bool to_file(void *arg, const char *param, shardrt_weight_has_fn has, const void *file, char *out, size_t cap,
                    bool *transpose);

int gpt_hf_write_export_spec(const char *path, const gpt_config *cfg, const char *const *params, int n, char *err,
                             size_t errlen) {
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f) {
    snprintf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
    return -1;
  }
  fprintf(f, "{\n  \"shardrt_export\": 1,\n  \"weights_file\": \"model.safetensors\",\n"
             "  \"metadata\": {\"format\": \"pt\"},\n"
             "  \"dtype_names\": {\"fp32\": \"float32\", \"bf16\": \"bfloat16\", \"fp16\": \"float16\"},\n"
             "  \"tensors\": {");
  for (int i = 0; i < n; i++) {
    char name[512];
    bool tr = false;
    to_file(NULL, params[i], NULL, NULL, name, sizeof name, &tr); /* no file: the canonical (untied, prefixed) name */
    fprintf(f, "%s\n    ", i ? "," : "");
    json_str(f, params[i]);
    fprintf(f, ": {\"name\": ");
    json_str(f, name);
    fprintf(f, "%s}", tr ? ", \"transpose\": true" : "");
  }
  fprintf(f, "\n  },\n  \"files\": {\"config.json\": ");
  config_json(f, cfg, "{dtype}", "    ");
  fprintf(f, "}\n}\n");
  bool ok = !ferror(f);
  if (fclose(f) != 0) ok = false;
  if (!ok || rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
    remove(tmp);
    return -1;
  }
  return 0;
}

/* ---- names ---- */

/* h.<i>.attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj are Conv1D in
 * transformers: weight [in, out], the transpose of ours. */
static bool is_conv1d_weight(const char *p) {
  if (strncmp(p, "h.", 2)) return false;
  const char *q = strchr(p + 2, '.');
  if (!q) return false;
  return !strcmp(q, ".attn.c_attn.weight") || !strcmp(q, ".attn.c_proj.weight") || !strcmp(q, ".mlp.c_fc.weight") ||
         !strcmp(q, ".mlp.c_proj.weight");
}

static bool to_file(void *arg, const char *param, shardrt_weight_has_fn has, const void *file, char *out, size_t cap,
                    bool *transpose) {
  (void)arg;
  *transpose = is_conv1d_weight(param);
  if (!strcmp(param, "lm_head.weight")) {
    if (!has || has(file, "lm_head.weight")) {
      snprintf(out, cap, "lm_head.weight");
      return true;
    }
    param = "wte.weight"; /* tied head: lm_head = wte */
  }
  /* GPT2LMHeadModel saves "transformer.<name>"; GPT2Model (the hub's
   * original gpt2 files) saves bare names. */
  snprintf(out, cap, "transformer.%s", param);
  if (has && !has(file, out) && has(file, param)) snprintf(out, cap, "%s", param);
  return true;
}

/* The causal-mask buffers older transformers versions persisted. */
static bool ignore(void *arg, const char *t) {
  (void)arg;
  size_t n = strlen(t);
  return (n > 10 && !strcmp(t + n - 10, ".attn.bias")) || (n > 17 && !strcmp(t + n - 17, ".attn.masked_bias"));
}

shardrt_weight_map gpt_hf_map(void) { return (shardrt_weight_map){.to_file = to_file, .ignore = ignore, .arg = NULL}; }
