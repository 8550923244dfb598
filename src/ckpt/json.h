/* SPDX-License-Identifier: Apache-2.0 */
/* JSON for checkpoint headers and metadata: written with a small growable
 * string builder, read back with libyaml (JSON is YAML flow syntax), so no
 * hand-written parser is involved. */
#ifndef SHARDRT_CKPT_JSON_H
#define SHARDRT_CKPT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

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

typedef struct shardrt__jdoc {
  yaml_document_t doc;
  bool loaded;
} shardrt__jdoc;

/* Parses text (len bytes); `what` names the file in errors
 * (SHARDRT_ERR_CORRUPT with line and column). */
shardrt_status shardrt__jdoc_parse(shardrt__jdoc *d, const char *text, size_t len, const char *what);
void shardrt__jdoc_free(shardrt__jdoc *d);
yaml_node_t *shardrt__j_root(shardrt__jdoc *d);
/* Mapping lookup; NULL when absent or when map is not a mapping. */
yaml_node_t *shardrt__j_get(shardrt__jdoc *d, yaml_node_t *map, const char *key);
/* Number of items of a sequence / pairs of a mapping (0 otherwise). */
size_t shardrt__j_len(yaml_node_t *n);
yaml_node_t *shardrt__j_at(shardrt__jdoc *d, yaml_node_t *seq, size_t i);
/* i-th pair of a mapping: key string and value node. */
bool shardrt__j_pair(shardrt__jdoc *d, yaml_node_t *map, size_t i, const char **key, yaml_node_t **val);
/* Scalar accessors: false when the node is absent or not of that form. */
const char *shardrt__j_str(yaml_node_t *n);
bool shardrt__j_i64(yaml_node_t *n, int64_t *out);
bool shardrt__j_f64(yaml_node_t *n, double *out);

#endif
