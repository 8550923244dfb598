/* SPDX-License-Identifier: Apache-2.0 */
/* Reads accelerate YAML and DeepSpeed JSON with libyaml's document API (JSON
 * is YAML flow syntax, so one parser serves both) and walks the key tables,
 * reporting file:line:column for every rejection. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <yaml.h>

#include "src/config/cfg_keys.h"

#define CONFIG_MAX_BYTES (1u << 20) /* configs are small; bound the work on junk */
#define MAX_KEYS_PER_MAP 512

typedef struct walker {
  shardrt__cfg *c;
  yaml_document_t *doc;
  const char *name; /* file name for messages */
  char dir[SHARDRT_PATH_MAX]; /* its folder, "" = current */
  bool json;
} walker;

static void mark_str(const walker *w, yaml_mark_t m, char *buf, size_t cap) {
  snprintf(buf, cap, "%s:%zu:%zu", w->name, m.line + 1, m.column + 1);
}

static const char *node_kind(const yaml_node_t *n) {
  return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a value";
}

/* Scalars may carry NUL bytes through escapes ("\0"); no setting wants one. */
static shardrt_status scalar_text(const walker *w, const yaml_node_t *n, const char *path, const char **out) {
  const char *s = (const char *)n->data.scalar.value;
  if (strlen(s) != n->data.scalar.length) {
    char at[SHARDRT__WHERE_MAX];
    mark_str(w, n->start_mark, at, sizeof at);
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: value contains a NUL character", at, path);
  }
  *out = s;
  return SHARDRT_OK;
}

/* Joins a list of scalars with commas (class lists, gpu_ids). */
static shardrt_status join_sequence(const walker *w, yaml_node_t *n, const char *path, char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = '\0';
  for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
    yaml_node_t *item = yaml_document_get_node(w->doc, *it);
    char at[SHARDRT__WHERE_MAX];
    if (!item || item->type != YAML_SCALAR_NODE) {
      mark_str(w, item ? item->start_mark : n->start_mark, at, sizeof at);
      return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: list items must be names, found %s", at, path,
                            item ? node_kind(item) : "nothing");
    }
    const char *s = "";
    SHARDRT__CHECK(scalar_text(w, item, path, &s));
    size_t l = strlen(s);
    if (used + l + 2 > cap) {
      mark_str(w, n->start_mark, at, sizeof at);
      return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: list is longer than %zu bytes", at, path, cap - 1);
    }
    if (used) buf[used++] = ',';
    memcpy(buf + used, s, l + 1);
    used += l;
  }
  return SHARDRT_OK;
}

/* Paths inside a config are relative to the config's folder. */
static shardrt_status resolve_path(const walker *w, const char *at, const char *path, const char *in, char *out,
                                   size_t cap) {
  int n = (in[0] == '/' || !w->dir[0]) ? snprintf(out, cap, "%s", in) : snprintf(out, cap, "%s/%s", w->dir, in);
  if (n < 0 || (size_t)n >= cap)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: path is longer than %zu bytes", at, path, cap - 1);
  return SHARDRT_OK;
}

static bool is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* accelerate hands deepspeed_config_file to the plugin as written, so a
 * relative path is opened from the working directory. Configs are often
 * launched from elsewhere, so the YAML's folder is tried next (with a note);
 * the error lists both. An unselected section is never opened (see below),
 * so a missing file there is no error either. */
static shardrt_status resolve_ds_file(const walker *w, const char *at, const char *path, const char *in, char *out,
                                      size_t cap) {
  char beside[SHARDRT_PATH_MAX];
  w->c->ds_tried[0] = '\0';
  if (in[0] == '/' || is_file(in) || !w->dir[0]) {
    if (!shardrt__copy_str(out, cap, in))
      return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: path is longer than %zu bytes", at, path, cap - 1);
    return SHARDRT_OK;
  }
  SHARDRT__CHECK(resolve_path(w, at, path, in, beside, sizeof beside));
  if (is_file(beside)) {
    shardrt__note("%s: '%s' is not in the working directory (where accelerate looks); using %s, beside the config", path, in, beside);
    snprintf(out, cap, "%s", beside);
    return SHARDRT_OK;
  }
  /* Neither: keep accelerate's reading; opening it (only under DEEPSPEED)
   * fails with both places named. */
  char cwd[SHARDRT_PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
  snprintf(w->c->ds_tried, sizeof w->c->ds_tried, "%s/%s (the working directory, as accelerate does) and %s "
           "(beside the config)", cwd, in, beside);
  snprintf(out, cap, "%s", in);
  return SHARDRT_OK;
}

static bool asks_for_something(const char *s) {
  static const char *const nothing[] = {"", "~", "null", "false", "no", "off", "none", "0", "-1", "[]", "{}"};
  for (size_t i = 0; i < sizeof nothing / sizeof nothing[0]; i++)
    if (strcasecmp(s, nothing[i]) == 0) return false;
  return true;
}

static bool node_is_empty(const yaml_node_t *n) {
  if (n->type == YAML_MAPPING_NODE) return n->data.mapping.pairs.top == n->data.mapping.pairs.start;
  if (n->type == YAML_SEQUENCE_NODE) return n->data.sequence.items.top == n->data.sequence.items.start;
  return !asks_for_something((const char *)n->data.scalar.value);
}

/* A section or value that asks for nothing: false/0/none/empty, or a
 * mapping whose "enabled" is off (or, without one, whose values all are). */
static bool node_is_off(const walker *w, yaml_node_t *n, int depth) {
  if (n->type == YAML_SCALAR_NODE) return !asks_for_something((const char *)n->data.scalar.value);
  if (n->type == YAML_SEQUENCE_NODE || depth > 4) return node_is_empty(n);
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(w->doc, p->key), *v = yaml_document_get_node(w->doc, p->value);
    if (k && v && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, "enabled") == 0)
      return node_is_off(w, v, depth + 1);
  }
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
    if (v && !node_is_off(w, v, depth + 1)) return false;
  }
  return true;
}

/* parallelism_config: accelerate's device-mesh sizes. Only the data-parallel
 * ones can map onto a plan (cfg_finish decides); they are collected here. */
static shardrt_status walk_parallelism(walker *w, yaml_node_t *map, const char *path) {
  char at[SHARDRT__WHERE_MAX];
  mark_str(w, map->start_mark, at, sizeof at);
  if (map->type == YAML_SCALAR_NODE && node_is_empty(map)) return SHARDRT_OK;
  if (map->type != YAML_MAPPING_NODE)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: expected a mapping of keys, found %s", at, path,
                          node_kind(map));
  static const char *const sizes[] = {"dp_replicate_size", "dp_shard_size", "tp_size", "cp_size", "sp_size"};
  int *dst[] = {&w->c->pc_dp_replicate, &w->c->pc_dp_shard, &w->c->pc_tp, &w->c->pc_cp, &w->c->pc_sp};
  if (map->data.mapping.pairs.top > map->data.mapping.pairs.start)
    snprintf(w->c->pc_where, sizeof w->c->pc_where, "%.300s: %.150s", at, path);
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *kn = yaml_document_get_node(w->doc, p->key), *vn = yaml_document_get_node(w->doc, p->value);
    if (!kn || !vn || kn->type != YAML_SCALAR_NODE) continue;
    const char *name = (const char *)kn->data.scalar.value;
    const char *bare = strncmp(name, "parallelism_config_", 19) == 0 ? name + 19 : name;
    mark_str(w, kn->start_mark, at, sizeof at);
    int found = -1;
    for (int i = 0; i < 5; i++)
      if (strcmp(bare, sizes[i]) == 0) found = i;
    if (found < 0) {
      /* backends, sequence lengths: meaningless without tp/cp/sp */
      shardrt__note("%s.%s: accepted, not used (libshardrt runs data parallelism only)", path, name);
      continue;
    }
    int64_t v = 0;
    if (vn->type != YAML_SCALAR_NODE || !shardrt__parse_i64((const char *)vn->data.scalar.value, &v) || v < 1 ||
        v > (1 << 20))
      return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s.%s: invalid value (allowed: an integer >= 1)", at, path,
                            name);
    *dst[found] = (int)v;
  }
  return SHARDRT_OK;
}

static const shardrt__key *find_key(const shardrt__table *t, const char *name) {
  for (int i = 0; i < t->n; i++)
    if (strcmp(t->keys[i].name, name) == 0) return &t->keys[i];
  if (t->prefix && strncmp(name, t->prefix, strlen(t->prefix)) != 0) {
    char full[SHARDRT_NAME_MAX];
    if (snprintf(full, sizeof full, "%s%s", t->prefix, name) < (int)sizeof full)
      for (int i = 0; i < t->n; i++)
        if (strcmp(t->keys[i].name, full) == 0) return &t->keys[i];
  }
  return NULL;
}

static bool close_to_a_key(const shardrt__table *t, const char *name) {
  const char *names[128];
  int n = t->n < 128 ? t->n : 128;
  for (int i = 0; i < n; i++) names[i] = t->keys[i].name;
  return shardrt__closest(name, names, n) != NULL;
}

static shardrt_status unknown_key(const walker *w, const shardrt__table *t, const char *at, const char *path,
                                  const char *name) {
  const char *names[64];
  int n = t->n < 64 ? t->n : 64;
  for (int i = 0; i < n; i++) names[i] = t->keys[i].name;
  const char *best = shardrt__closest(name, names, n);
  if (!best && t->prefix) {
    char full[SHARDRT_NAME_MAX];
    snprintf(full, sizeof full, "%s%s", t->prefix, name);
    best = shardrt__closest(full, names, n);
  }
  const char *section = path[0] ? path : "the top level";
  if (best)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: unknown key '%.100s' in %s; did you mean '%s'?", at, name,
                          section, best);
  char all[2048];
  shardrt__join(all, sizeof all, names, n);
  return shardrt__error(SHARDRT_ERR_CONFIG, "%s: unknown key '%.100s' in %s (allowed: %s)", at, name, section, all);
}

static shardrt_status set_field(walker *w, const shardrt__key *k, yaml_node_t *v, const char *path) {
  char at[SHARDRT__WHERE_MAX];
  mark_str(w, v->start_mark, at, sizeof at);
  char joined[SHARDRT_CLS_LIST_MAX];
  char resolved[SHARDRT_PATH_MAX];
  shardrt__val val = {.where = at, .key = path, .from = w->json ? SHARDRT__FROM_JSON : SHARDRT__FROM_YAML};
  if (v->type == YAML_SEQUENCE_NODE && (k->field == SHARDRT__F_CLS || k->field == SHARDRT__F_GPU_IDS ||
                                        k->field == SHARDRT__F_OPT_BETAS)) {
    SHARDRT__CHECK(join_sequence(w, v, path, joined, sizeof joined));
    val.text = joined;
  } else if (v->type != YAML_SCALAR_NODE) {
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: expected a value, found %s", at, path, node_kind(v));
  } else {
    SHARDRT__CHECK(scalar_text(w, v, path, &val.text));
    val.plain = v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  }
  if (shardrt__is_null(&val)) return SHARDRT_OK; /* `key:` / null: as if absent */
  if (k->field == SHARDRT__F_DS_FILE && strcasecmp(val.text, "auto") != 0) {
    SHARDRT__CHECK(resolve_ds_file(w, at, path, val.text, resolved, sizeof resolved));
    val.text = resolved;
  } else if (k->field == SHARDRT__F_HOSTFILE && strcasecmp(val.text, "auto") != 0) {
    SHARDRT__CHECK(resolve_path(w, at, path, val.text, resolved, sizeof resolved));
    val.text = resolved;
  }
  return shardrt__cfg_set(w->c, (shardrt__field)k->field, &val);
}

static shardrt_status walk_mapping(walker *w, yaml_node_t *map, const shardrt__table *t, const char *path) {
  yaml_node_pair_t *start = map->data.mapping.pairs.start, *top = map->data.mapping.pairs.top;
  if (top - start > MAX_KEYS_PER_MAP) {
    char at[SHARDRT__WHERE_MAX];
    mark_str(w, map->start_mark, at, sizeof at);
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s has more than %d keys", at, path[0] ? path : "the file",
                          MAX_KEYS_PER_MAP);
  }
  for (yaml_node_pair_t *p = start; p < top; p++) {
    yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
    yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
    char at[SHARDRT__WHERE_MAX];
    if (!kn || !vn) return shardrt__error(SHARDRT_ERR_CONFIG, "%s: malformed mapping in %s", w->name, path);
    mark_str(w, kn->start_mark, at, sizeof at);
    if (kn->type != YAML_SCALAR_NODE)
      return shardrt__error(SHARDRT_ERR_CONFIG, "%s: keys must be names, found %s in %s", at, node_kind(kn),
                            path[0] ? path : "the top level");
    const char *name = "";
    SHARDRT__CHECK(scalar_text(w, kn, path, &name));
    for (yaml_node_pair_t *q = start; q < p; q++) {
      yaml_node_t *prev = yaml_document_get_node(w->doc, q->key);
      if (prev && prev->type == YAML_SCALAR_NODE && strcmp((const char *)prev->data.scalar.value, name) == 0)
        return shardrt__error(SHARDRT_ERR_CONFIG, "%s: duplicate key '%.100s' in %s (first at line %zu)", at, name,
                              path[0] ? path : "the top level", prev->start_mark.line + 1);
    }
    const shardrt__key *k = find_key(t, name);
    if (!k && w->json && t == &shardrt__json_root && (name[0] == '_' || !close_to_a_key(t, name))) {
      /* DeepSpeedConfig reads the top-level keys it knows and ignores the
       * rest (_comment, cuda_visible_devices, ...): so do we, aloud. */
      shardrt__warn("%s: %s is not a DeepSpeed key; DeepSpeed ignores it, so does libshardrt", at, name);
      shardrt__note("%s: not a DeepSpeed key, ignored (as DeepSpeed does)", name);
      continue;
    }
    if (!k) return unknown_key(w, t, at, path, name);
    char sub[256];
    snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", name);
    switch (k->kind) {
      case SHARDRT__K_FIELD: SHARDRT__CHECK(set_field(w, k, vn, sub)); break;
      case SHARDRT__K_ALIAS:
        shardrt__warn("%s: %s: %s", at, sub, k->note);
        SHARDRT__CHECK(set_field(w, k, vn, sub));
        break;
      case SHARDRT__K_SECTION:
        if (vn->type == YAML_SCALAR_NODE && node_is_empty(vn)) break; /* `fsdp_config:` with nothing */
        if (vn->type != YAML_MAPPING_NODE) {
          mark_str(w, vn->start_mark, at, sizeof at);
          return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: expected a mapping of keys, found %s", at, sub,
                                node_kind(vn));
        }
        SHARDRT__CHECK(walk_mapping(w, vn, k->sub, sub));
        break;
      case SHARDRT__K_SPELLING: SHARDRT__CHECK(set_field(w, k, vn, sub)); break;
      case SHARDRT__K_WARN:
      case SHARDRT__K_WARN_SECTION:
        if (!node_is_empty(vn)) {
          shardrt__warn("%s: %s is not used by libshardrt (%s); ignored", at, sub, k->note);
          shardrt__note("%s: not used (%s)", sub, k->note);
        }
        break;
      case SHARDRT__K_IGNORE: shardrt__note("%s: accepted, has no effect in libshardrt", sub); break;
      case SHARDRT__K_UNSUPPORTED:
        if (!node_is_off(w, vn, 0))
          return shardrt__error(SHARDRT_ERR_CONFIG,
                                "%s: DeepSpeed's %s is not supported by libshardrt (allowed: remove it, or turn it "
                                "off)", at, sub);
        shardrt__warn("%s: DeepSpeed's %s is not supported by libshardrt; it is off here, so ignored", at, sub);
        shardrt__note("%s: DeepSpeed feature not supported by libshardrt; off, ignored", sub);
        break;
      case SHARDRT__K_PARALLELISM: SHARDRT__CHECK(walk_parallelism(w, vn, sub)); break;
    }
  }
  return SHARDRT_OK;
}

/* YAML keys that a DeepSpeed JSON decides; Accelerate rejects them too. */
static const shardrt__field json_owned[] = {SHARDRT__F_ACCUM,    SHARDRT__F_CLIP,      SHARDRT__F_ZERO_STAGE,
                                            SHARDRT__F_OPT_DEV,  SHARDRT__F_PARAM_DEV, SHARDRT__F_OPT_NVME,
                                            SHARDRT__F_PARAM_NVME, SHARDRT__F_Z3_SAVE};

static shardrt_status before_json(shardrt__cfg *c) {
  for (size_t i = 0; i < sizeof json_owned / sizeof json_owned[0]; i++)
    if (c->from[json_owned[i]] == SHARDRT__FROM_YAML)
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "%s: not allowed together with deepspeed_config_file, whose JSON decides it (allowed: "
                            "remove the key and set it in the JSON, or write \"auto\" there and pass the flag)",
                            c->where[json_owned[i]]);
  /* accelerate refuses any mixed_precision in the YAML next to a JSON, even
   * 'no' (launch_command adds it to ACCELERATE_CONFIG_DS_FIELDS and
   * DeepSpeedPlugin._deepspeed_config_checks raises). */
  if (c->from[SHARDRT__F_MP] == SHARDRT__FROM_YAML)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "%s: not allowed together with deepspeed_config_file (allowed: remove the key); set "
                          "fp16.enabled or bf16.enabled in the JSON, or write \"auto\" there and pass "
                          "--mixed_precision", c->where[SHARDRT__F_MP]);
  return SHARDRT_OK;
}

#define MAX_DEPTH 32

/* libyaml's scanner costs grow with the square of the nesting depth, and
 * no config nests more than a few levels: a first pass over the events
 * stops a deep input early, before the document is built. */
static shardrt_status check_depth(const char *name, const char *data, size_t len) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser))
    return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "%s: could not start the YAML parser", name);
  yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
  shardrt_status rc = SHARDRT_OK;
  int depth = 0;
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) break; /* the document pass reports syntax errors */
    yaml_event_type_t t = ev.type;
    if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
      if (++depth > MAX_DEPTH) {
        rc = shardrt__error(SHARDRT_ERR_CONFIG, "%s:%zu:%zu: nested deeper than %d levels", name,
                            ev.start_mark.line + 1, ev.start_mark.column + 1, MAX_DEPTH);
        yaml_event_delete(&ev);
        break;
      }
    } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
      depth--;
    }
    yaml_event_delete(&ev);
    if (t == YAML_STREAM_END_EVENT) break;
  }
  yaml_parser_delete(&parser);
  return rc;
}

static shardrt_status parse_doc(const char *name, const char *data, size_t len, yaml_document_t *doc) {
  SHARDRT__CHECK(check_depth(name, data, len));
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser))
    return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "%s: could not start the YAML parser", name);
  yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
  shardrt_status rc = SHARDRT_OK;
  if (!yaml_parser_load(&parser, doc)) {
    if (parser.error == YAML_MEMORY_ERROR)
      rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "%s: out of memory while parsing", name);
    else
      rc = shardrt__error(SHARDRT_ERR_CONFIG, "%s:%zu:%zu: syntax error: %s%s%s", name,
                          parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                          parser.problem ? parser.problem : "malformed input", parser.context ? " " : "",
                          parser.context ? parser.context : "");
  } else {
    /* A second document would be silently dropped: say so instead. */
    yaml_document_t extra;
    if (yaml_parser_load(&parser, &extra)) {
      bool more = yaml_document_get_root_node(&extra) != NULL;
      yaml_document_delete(&extra);
      if (more) {
        yaml_document_delete(doc);
        rc = shardrt__error(SHARDRT_ERR_CONFIG, "%s: holds more than one YAML document (allowed: one)", name);
      }
    }
  }
  yaml_parser_delete(&parser);
  return rc;
}

static shardrt_status load_json_into(shardrt__cfg *c, const char *name, const char *data, size_t len);

shardrt_status shardrt__cfg_load_buffer(shardrt__cfg *c, const char *name, const char *data, size_t len,
                                        bool json) {
  if (len > CONFIG_MAX_BYTES)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %zu bytes is too large for a config (allowed: up to %u)", name,
                          len, CONFIG_MAX_BYTES);
  if (json) return load_json_into(c, name, data, len);
  walker w = {.c = c, .name = name};
  const char *slash = strrchr(name, '/');
  if (slash && (size_t)(slash - name) < sizeof w.dir) {
    memcpy(w.dir, name, (size_t)(slash - name));
    w.dir[slash - name] = '\0';
    if (!w.dir[0]) strcpy(w.dir, "/");
  }
  snprintf(c->source, sizeof c->source, "%s", name);
  yaml_document_t doc;
  SHARDRT__CHECK(parse_doc(name, data, len, &doc));
  w.doc = &doc;
  shardrt_status rc = SHARDRT_OK;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root || (root->type == YAML_SCALAR_NODE && node_is_empty(root))) {
    rc = shardrt__error(SHARDRT_ERR_CONFIG, "%s: the file is empty (distributed_type is required: NO, MULTI_CPU, "
                        "MULTI_GPU, FSDP, DEEPSPEED)", name);
  } else if (root->type != YAML_MAPPING_NODE) {
    rc = shardrt__error(SHARDRT_ERR_CONFIG, "%s:%zu:%zu: expected a mapping of keys at the top, found %s", name,
                        root->start_mark.line + 1, root->start_mark.column + 1, node_kind(root));
  } else {
    rc = walk_mapping(&w, root, &shardrt__yaml_root, "");
    if (rc == SHARDRT_OK && !c->saw_dist)
      rc = shardrt__error(SHARDRT_ERR_CONFIG, "%s: missing required key distributed_type (allowed: NO, MULTI_CPU, "
                          "MULTI_GPU, FSDP, DEEPSPEED)", name);
  }
  yaml_document_delete(&doc);
  /* accelerate reads deepspeed_config_file only when DeepSpeed runs
   * (DeepSpeedPlugin.__post_init__); another distributed_type never opens it. */
  if (rc == SHARDRT_OK && c->ds.hf_ds_config[0] && c->from[SHARDRT__F_DS_FILE] == SHARDRT__FROM_YAML) {
    if (c->plan.distributed_type == SHARDRT_DIST_DEEPSPEED) {
      rc = shardrt__cfg_load_ds_json(c, c->ds.hf_ds_config);
      if (rc == SHARDRT_ERR_IO && c->ds_tried[0])
        rc = shardrt__error(SHARDRT_ERR_IO, "%s: deepspeed_config_file '%s' not found; tried %s", name,
                            c->ds.hf_ds_config, c->ds_tried);
    }
    else shardrt__note("deepspeed_config.deepspeed_config_file: not read, distributed_type is %s",
                       shardrt_dist_type_name(c->plan.distributed_type));
  }
  return rc;
}

/* libyaml reads JSON as YAML flow syntax, which also takes comments,
 * unquoted keys and trailing commas; DeepSpeed reads with Python's json,
 * which takes none of them. A jansson pass first keeps the files strict
 * (and refuses duplicate keys, as DeepSpeedConfig does:
 * config_utils.dict_raise_error_on_duplicate_keys). */
static shardrt_status strict_json(const char *name, const char *data, size_t len) {
  json_error_t err;
  json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
  if (!root)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s:%d:%d: not valid JSON: %s (DeepSpeed reads strict JSON)", name,
                          err.line, err.column, err.text);
  json_decref(root);
  return SHARDRT_OK;
}

static shardrt_status load_json_into(shardrt__cfg *c, const char *name, const char *data, size_t len) {
  SHARDRT__CHECK(before_json(c));
  SHARDRT__CHECK(strict_json(name, data, len));
  walker w = {.c = c, .name = name, .json = true};
  yaml_document_t doc;
  SHARDRT__CHECK(parse_doc(name, data, len, &doc));
  w.doc = &doc;
  shardrt_status rc = SHARDRT_OK;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root || root->type != YAML_MAPPING_NODE) {
    rc = shardrt__error(SHARDRT_ERR_CONFIG, "%s: a DeepSpeed config must be one JSON object with a "
                        "zero_optimization section", name);
  } else {
    bool has_zero = false;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
      yaml_node_t *k = yaml_document_get_node(&doc, p->key);
      if (k && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, "zero_optimization") == 0)
        has_zero = true;
    }
    rc = walk_mapping(&w, root, &shardrt__json_root, "");
    if (rc == SHARDRT_OK && !has_zero)
      rc = shardrt__error(SHARDRT_ERR_CONFIG, "%s: missing required section zero_optimization (with at least "
                          "\"stage\")", name);
  }
  yaml_document_delete(&doc);
  if (rc == SHARDRT_OK) {
    if (!c->saw_dist) {
      c->plan.distributed_type = SHARDRT_DIST_DEEPSPEED;
      c->saw_dist = true;
    }
    if (!c->source[0]) snprintf(c->source, sizeof c->source, "%s", name);
    if (!shardrt__copy_str(c->ds_file_abs, sizeof c->ds_file_abs, name))
      rc = shardrt__error(SHARDRT_ERR_CONFIG, "%s: path too long", name);
  }
  return rc;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* --config_file decides by content, not by name: accelerate saves its own
 * config as .json too, and DeepSpeed JSONs are named .conf in the wild. An
 * accelerate config has distributed_type or compute_environment at the top;
 * a DeepSpeed one zero_optimization or another DeepSpeed key. */
static bool is_deepspeed_json(const char *path, const char *data, size_t len) {
  yaml_document_t doc;
  bool fallback = ends_with(path, ".json");
  if (len > CONFIG_MAX_BYTES || parse_doc(path, data, len, &doc) != SHARDRT_OK) {
    return fallback; /* the real load reports the syntax error */
  }
  bool accel = false, ds = false;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (root && root->type == YAML_MAPPING_NODE)
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
      yaml_node_t *k = yaml_document_get_node(&doc, p->key);
      if (!k || k->type != YAML_SCALAR_NODE) continue;
      const char *name = (const char *)k->data.scalar.value;
      if (strcmp(name, "distributed_type") == 0 || strcmp(name, "compute_environment") == 0) accel = true;
      else if (find_key(&shardrt__json_root, name) && !find_key(&shardrt__yaml_root, name)) ds = true;
    }
  yaml_document_delete(&doc);
  return accel ? false : ds ? true : fallback;
}

static shardrt_status load_path(shardrt__cfg *c, const char *path, int json) {
  FILE *f = fopen(path, "rb");
  if (!f) return shardrt__error(SHARDRT_ERR_IO, "config file %s: cannot open: %s", path, strerror(errno));
  char *buf = malloc(CONFIG_MAX_BYTES + 1);
  if (!buf) {
    fclose(f);
    return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "config file %s: out of memory", path);
  }
  size_t n = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
  bool failed = ferror(f);
  fclose(f);
  shardrt_status rc;
  if (failed) rc = shardrt__error(SHARDRT_ERR_IO, "config file %s: read error (is it a folder?)", path);
  else rc = shardrt__cfg_load_buffer(c, path, buf, n, json < 0 ? is_deepspeed_json(path, buf, n) : json);
  free(buf);
  return rc;
}

shardrt_status shardrt__cfg_load_file(shardrt__cfg *c, const char *path) { return load_path(c, path, -1); }

shardrt_status shardrt__cfg_load_ds_json(shardrt__cfg *c, const char *path) { return load_path(c, path, 1); }
