/* SPDX-License-Identifier: Apache-2.0 */
#include "src/ckpt/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool grow(shardrt__sbuf *b, size_t extra) {
  if (b->oom) return false;
  if (b->len + extra + 1 <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = true;
    return false;
  }
  b->p = p;
  b->cap = cap;
  return true;
}

void shardrt__sb_put(shardrt__sbuf *b, const char *s, size_t n) {
  if (!grow(b, n)) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void shardrt__sb_printf(shardrt__sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n >= 0 && grow(b, (size_t)n)) {
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
  }
  va_end(ap2);
}

void shardrt__sb_json_str(shardrt__sbuf *b, const char *s) {
  shardrt__sb_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      shardrt__sb_put(b, e, 2);
    } else if (*p < 0x20) {
      shardrt__sb_printf(b, "\\u%04x", *p);
    } else {
      shardrt__sb_put(b, (const char *)p, 1);
    }
  }
  shardrt__sb_put(b, "\"", 1);
}

void shardrt__sb_free(shardrt__sbuf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

shardrt_status shardrt__jdoc_parse(shardrt__jdoc *d, const char *text, size_t len, const char *what) {
  yaml_parser_t p;
  d->loaded = false;
  if (!yaml_parser_initialize(&p)) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "cannot initialise the JSON parser for '%s'", what);
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  int ok = yaml_parser_load(&p, &d->doc);
  shardrt_status rc = SHARDRT_OK;
  if (!ok) {
    rc = shardrt__error(SHARDRT_ERR_CORRUPT, "'%s' is not valid JSON: %s at line %zu column %zu", what,
                        p.problem ? p.problem : "parse error", p.problem_mark.line + 1, p.problem_mark.column + 1);
  } else if (!yaml_document_get_root_node(&d->doc)) {
    yaml_document_delete(&d->doc);
    rc = shardrt__error(SHARDRT_ERR_CORRUPT, "'%s' is empty where a JSON object was expected", what);
  } else {
    d->loaded = true;
  }
  yaml_parser_delete(&p);
  return rc;
}

void shardrt__jdoc_free(shardrt__jdoc *d) {
  if (d && d->loaded) yaml_document_delete(&d->doc);
  if (d) d->loaded = false;
}

yaml_node_t *shardrt__j_root(shardrt__jdoc *d) { return yaml_document_get_root_node(&d->doc); }

size_t shardrt__j_len(yaml_node_t *n) {
  if (!n) return 0;
  if (n->type == YAML_SEQUENCE_NODE) return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  if (n->type == YAML_MAPPING_NODE) return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
  return 0;
}

yaml_node_t *shardrt__j_at(shardrt__jdoc *d, yaml_node_t *seq, size_t i) {
  if (!seq || seq->type != YAML_SEQUENCE_NODE || i >= shardrt__j_len(seq)) return NULL;
  return yaml_document_get_node(&d->doc, seq->data.sequence.items.start[i]);
}

bool shardrt__j_pair(shardrt__jdoc *d, yaml_node_t *map, size_t i, const char **key, yaml_node_t **val) {
  if (!map || map->type != YAML_MAPPING_NODE || i >= shardrt__j_len(map)) return false;
  yaml_node_pair_t *pr = map->data.mapping.pairs.start + i;
  *key = shardrt__j_str(yaml_document_get_node(&d->doc, pr->key));
  *val = yaml_document_get_node(&d->doc, pr->value);
  return *key != NULL && *val != NULL;
}

yaml_node_t *shardrt__j_get(shardrt__jdoc *d, yaml_node_t *map, const char *key) {
  size_t n = shardrt__j_len(map);
  if (!map || map->type != YAML_MAPPING_NODE) return NULL;
  for (size_t i = 0; i < n; i++) {
    const char *k;
    yaml_node_t *v;
    if (shardrt__j_pair(d, map, i, &k, &v) && strcmp(k, key) == 0) return v;
  }
  return NULL;
}

const char *shardrt__j_str(yaml_node_t *n) {
  if (!n || n->type != YAML_SCALAR_NODE) return NULL;
  return (const char *)n->data.scalar.value; /* libyaml NUL-terminates scalars */
}

bool shardrt__j_i64(yaml_node_t *n, int64_t *out) {
  const char *s = shardrt__j_str(n);
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end) return false;
  *out = v;
  return true;
}

bool shardrt__j_f64(yaml_node_t *n, double *out) {
  const char *s = shardrt__j_str(n);
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno == ERANGE && v != 0.0) return false;
  if (*end) return false;
  *out = v;
  return true;
}
