/* SPDX-License-Identifier: Apache-2.0 */
/* The key tables of the accelerate YAML and the DeepSpeed JSON: which keys
 * exist, which setting each one feeds, and which are accepted but unused. */
#ifndef SHARDRT_CFG_KEYS_H
#define SHARDRT_CFG_KEYS_H

#include "src/config/config_internal.h"

typedef enum shardrt__key_kind {
  SHARDRT__K_FIELD = 0,   /* a setting: value goes through shardrt__cfg_set */
  SHARDRT__K_SECTION,     /* a nested mapping with its own table */
  SHARDRT__K_WARN,        /* not used by libshardrt: warn when the value asks for something */
  SHARDRT__K_WARN_SECTION,/* a mapping not used by libshardrt: warn when non-empty */
  SHARDRT__K_IGNORE,      /* accepted silently: meaningless here (docs/config.md says why) */
  SHARDRT__K_ALIAS,       /* deprecated spelling of a field: warn, then set it */
  SHARDRT__K_SPELLING,    /* another spelling DeepSpeed accepts for a field: set it silently */
  SHARDRT__K_UNSUPPORTED, /* a DeepSpeed feature libshardrt lacks: error when it is on, warning when off */
  SHARDRT__K_PARALLELISM, /* accelerate's parallelism_config: sizes that must map onto a plan */
} shardrt__key_kind;

struct shardrt__table;

typedef struct shardrt__key {
  const char *name;
  shardrt__key_kind kind;
  int field;                          /* shardrt__field for FIELD / ALIAS */
  const struct shardrt__table *sub;   /* SECTION */
  const char *note;                   /* WARN / ALIAS: why, for the message */
} shardrt__key;

typedef struct shardrt__table {
  const shardrt__key *keys;
  int n;
  const char *prefix; /* keys may be written without it (fsdp_config) */
} shardrt__table;

extern const shardrt__table shardrt__yaml_root;
extern const shardrt__table shardrt__json_root;

#endif
