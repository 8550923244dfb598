/* SPDX-License-Identifier: Apache-2.0 */
#include "src/ckpt/export_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/ckpt/durable.h"
#include "src/ckpt/json.h"
#include "src/core/error.h"

#define BAD(...) shardrt__error(SHARDRT_ERR_CORRUPT, __VA_ARGS__)

void shardrt__export_close(shardrt__export_spec *x) {
  if (!x) return;
  json_decref(x->root);
  x->root = NULL;
}

/* Output files land inside the output directory: plain names only. */
static bool plain_name(const char *s) {
  return s && *s && strlen(s) < 200 && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static shardrt_status check(shardrt__export_spec *x) {
  const char *p = x->path;
  int64_t ver;
  if (!shardrt__j_i64(shardrt__j_get(x->root, "shardrt_export"), &ver) || ver != 1)
    return BAD("'%s': \"shardrt_export\" must be 1 (the export spec format this libshardrt reads)", p);
  x->weights_file = shardrt__j_str(shardrt__j_get(x->root, "weights_file"));
  if (!plain_name(x->weights_file)) return BAD("'%s': \"weights_file\" must be a plain file name (no '/')", p);
  x->tensors = shardrt__j_get(x->root, "tensors");
  if (!json_is_object(x->tensors) || json_object_size(x->tensors) == 0)
    return BAD("'%s': \"tensors\" must be a non-empty object {\"<param>\": {\"name\": ..., \"transpose\": ...}}", p);
  const char *key;
  json_t *v;
  json_object_foreach(x->tensors, key, v) {
    bool tr;
    json_t *t = shardrt__j_get(v, "transpose");
    if (!json_is_object(v) || !shardrt__j_str(shardrt__j_get(v, "name")) || !*shardrt__j_str(shardrt__j_get(v, "name")) ||
        (t && !shardrt__j_bool(t, &tr)))
      return BAD("'%s': tensors[\"%s\"] must be {\"name\": non-empty string, \"transpose\": bool (optional)}", p, key);
    const char *k2;
    json_t *v2;
    json_object_foreach(v, k2, v2) {
      if (strcmp(k2, "name") && strcmp(k2, "transpose"))
        return BAD("'%s': tensors[\"%s\"] has key \"%s\" (allowed: name, transpose)", p, key, k2);
    }
  }
  x->metadata = shardrt__j_get(x->root, "metadata");
  if (x->metadata) {
    if (!json_is_object(x->metadata) || json_object_size(x->metadata) > 63)
      return BAD("'%s': \"metadata\" must be an object of at most 63 strings", p);
    json_object_foreach(x->metadata, key, v) {
      if (!json_is_string(v))
        return BAD("'%s': metadata[\"%s\"] is not a string (safetensors metadata holds strings only)", p, key);
    }
  }
  x->dtype_names = shardrt__j_get(x->root, "dtype_names");
  if (x->dtype_names) {
    if (!json_is_object(x->dtype_names)) return BAD("'%s': \"dtype_names\" must be an object", p);
    json_object_foreach(x->dtype_names, key, v) {
      shardrt_dtype dt;
      if (!shardrt_dtype_parse(key, &dt) || !json_is_string(v))
        return BAD("'%s': dtype_names[\"%s\"]: keys are fp32, bf16, fp16 and values strings", p, key);
    }
  }
  x->files = shardrt__j_get(x->root, "files");
  if (x->files) {
    if (!json_is_object(x->files)) return BAD("'%s': \"files\" must be an object {\"<file name>\": <JSON>}", p);
    json_object_foreach(x->files, key, v) {
      if (!plain_name(key) || !strcmp(key, x->weights_file))
        return BAD("'%s': files[\"%s\"]: a file name must be plain (no '/') and not the weights file", p, key);
    }
  }
  static const char *const known[] = {"shardrt_export", "weights_file", "tensors", "metadata", "dtype_names", "files"};
  json_object_foreach(x->root, key, v) {
    size_t i = 0;
    while (i < sizeof known / sizeof known[0] && strcmp(key, known[i])) i++;
    if (i == sizeof known / sizeof known[0])
      return BAD("'%s' has key \"%s\" (allowed: shardrt_export, weights_file, tensors, metadata, dtype_names, files)", p, key);
  }
  return SHARDRT_OK;
}

shardrt_status shardrt__export_open(shardrt__export_spec *x, const char *path) {
  memset(x, 0, sizeof *x);
  snprintf(x->path, sizeof x->path, "%s", path);
  char *text = NULL;
  size_t len = 0;
  shardrt_status rc = shardrt__read_file(path, &text, &len);
  if (rc == SHARDRT_OK) rc = shardrt__json_parse(text, len, path, &x->root);
  free(text);
  if (rc == SHARDRT_OK) rc = check(x);
  if (rc != SHARDRT_OK) shardrt__export_close(x);
  return rc;
}

shardrt_status shardrt__export_tensor(const shardrt__export_spec *x, const char *param, const char **name,
                                      bool *transpose) {
  json_t *v = shardrt__j_get(x->tensors, param);
  if (!v)
    return shardrt__error(SHARDRT_ERR_NOT_FOUND, "export spec '%s' has no entry for parameter '%s' of the checkpoint",
                          x->path, param);
  *name = shardrt__j_str(shardrt__j_get(v, "name"));
  *transpose = false;
  json_t *t = shardrt__j_get(v, "transpose");
  if (t) shardrt__j_bool(t, transpose);
  return SHARDRT_OK;
}

const char *shardrt__export_dtype_name(const shardrt__export_spec *x, shardrt_dtype dt) {
  const char *s = shardrt__j_str(shardrt__j_get(x->dtype_names, shardrt_dtype_name(dt)));
  return s ? s : shardrt_dtype_name(dt);
}

/* A deep copy of v with every string "{dtype}" replaced by name. */
static json_t *substitute(const json_t *v, const char *name) {
  if (json_is_string(v) && !strcmp(json_string_value(v), "{dtype}")) return json_string(name);
  if (json_is_object(v)) {
    json_t *o = json_object();
    const char *k;
    json_t *c;
    json_object_foreach((json_t *)v, k, c) {
      json_t *n = substitute(c, name);
      if (!o || !n || json_object_set_new(o, k, n)) {
        json_decref(o);
        return NULL;
      }
    }
    return o;
  }
  if (json_is_array(v)) {
    json_t *a = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(v, i, c) {
      json_t *n = substitute(c, name);
      if (!a || !n || json_array_append_new(a, n)) {
        json_decref(a);
        return NULL;
      }
    }
    return a;
  }
  return json_deep_copy(v);
}

shardrt_status shardrt__export_write_files(const shardrt__export_spec *x, const char *dir, shardrt_dtype dt) {
  if (!x->files) return SHARDRT_OK;
  const char *key;
  json_t *v;
  json_object_foreach(x->files, key, v) {
    json_t *out = substitute(v, shardrt__export_dtype_name(x, dt));
    char *text = out ? json_dumps(out, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) : NULL;
    json_decref(out);
    if (!text) return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "export: writing '%s/%s'", dir, key);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, key);
    size_t n = strlen(text);
    text[n] = '\n'; /* a final newline, over the terminator (the length is passed) */
    shardrt_status rc = shardrt__write_file_durable(path, text, n + 1);
    free(text);
    SHARDRT__CHECK(rc);
  }
  return SHARDRT_OK;
}
