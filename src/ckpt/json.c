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

/* Nesting depth, scanned before parsing so that a hostile header costs one
 * linear pass and a bounded recursion in the parser. Brackets inside
 * strings do not count. */
static shardrt_status check_depth(const char *text, size_t len, const char *what) {
  int depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < len; i++) {
    char c = text[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    else if (c == '{' || c == '[') {
      if (++depth > SHARDRT__JSON_MAX_DEPTH)
        return shardrt__error(SHARDRT_ERR_CORRUPT,
                              "'%s' is not valid here: JSON nesting deeper than %d levels at byte offset %zu", what,
                              SHARDRT__JSON_MAX_DEPTH, i);
    } else if (c == '}' || c == ']') {
      depth--;
    }
  }
  return SHARDRT_OK;
}

shardrt_status shardrt__json_parse(const char *text, size_t len, const char *what, json_t **out) {
  *out = NULL;
  SHARDRT__CHECK(check_depth(text, len, what));
  json_error_t err;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
  if (!root)
    return shardrt__error(SHARDRT_ERR_CORRUPT,
                          "'%s' is not valid JSON (RFC 8259, no duplicate keys): %s at line %d column %d (byte offset "
                          "%d)",
                          what, err.text, err.line, err.column, err.position);
  if (!json_is_object(root)) {
    json_decref(root);
    return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s': the JSON document is not an object ({...} expected)", what);
  }
  *out = root;
  return SHARDRT_OK;
}

const char *shardrt__j_str(const json_t *n) { return json_is_string(n) ? json_string_value(n) : NULL; }

bool shardrt__j_i64(const json_t *n, int64_t *out) {
  if (!json_is_integer(n)) return false;
  *out = (int64_t)json_integer_value(n);
  return true;
}

bool shardrt__j_f64(const json_t *n, double *out) {
  if (!json_is_number(n)) return false;
  *out = json_number_value(n);
  return true;
}

bool shardrt__j_bool(const json_t *n, bool *out) {
  if (!json_is_boolean(n)) return false;
  *out = json_is_true(n);
  return true;
}

json_t *shardrt__j_get(const json_t *obj, const char *key) {
  return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

size_t shardrt__j_len(const json_t *arr) { return json_is_array(arr) ? json_array_size(arr) : 0; }
