/* SPDX-License-Identifier: Apache-2.0 */
/* JSON for checkpoint headers and metadata: written with a small growable
 * string builder, read back with jansson in strict mode (RFC 8259 only,
 * duplicate keys rejected, NUL in strings rejected, a nesting-depth limit
 * checked first, linear time). The accessors are typed: a number written as
 * a string, or a bool as "true", is not the value asked for. */
#ifndef SHARDRT_CKPT_JSON_H
#define SHARDRT_CKPT_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shardrt/types.h"
#include "src/core/error.h"

typedef struct shardrt__sbuf {
  char *p;
  size_t len, cap;
  bool oom; /* sticky: an append failed; check once at the end */
} shardrt__sbuf;

void shardrt__sb_printf(shardrt__sbuf *b, const char *fmt, ...) SHARDRT__PRINTF(2, 3);
void shardrt__sb_put(shardrt__sbuf *b, const char *s, size_t n);
/* Appends s as a quoted JSON string (escapes quotes, backslashes, controls). */
void shardrt__sb_json_str(shardrt__sbuf *b, const char *s);
void shardrt__sb_free(shardrt__sbuf *b);

/* Deepest nesting of objects/arrays the readers accept: our own files nest
 * 4 levels, safetensors headers 3. */
#define SHARDRT__JSON_MAX_DEPTH 32

/* Parses text (len bytes) as one JSON object into *out (json_decref it).
 * `what` names the file in errors: SHARDRT_ERR_CORRUPT with line, column
 * and byte offset, saying what is allowed. */
shardrt_status shardrt__json_parse(const char *text, size_t len, const char *what, json_t **out);

/* Typed accessors: false when the node is absent or of another type. */
const char *shardrt__j_str(const json_t *n);
bool shardrt__j_i64(const json_t *n, int64_t *out);
bool shardrt__j_f64(const json_t *n, double *out); /* integer or real */
bool shardrt__j_bool(const json_t *n, bool *out);
/* Mapping lookup; NULL when absent or when obj is not an object. */
json_t *shardrt__j_get(const json_t *obj, const char *key);
/* Number of items of an array (0 otherwise). */
size_t shardrt__j_len(const json_t *arr);

#endif
