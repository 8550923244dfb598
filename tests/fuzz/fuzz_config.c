/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target over the config front ends. The first byte picks the
 * path: accelerate YAML, DeepSpeed JSON, or NUL-separated argv tokens for
 * shardrt_plan_from_args. Whatever the input, every call must return a
 * known status, set a message on failure, and never crash or hang. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shardrt.h"
#include "src/config/config_internal.h"

static void check_status(shardrt_status rc) {
  if (rc < SHARDRT_OK || rc > SHARDRT_ERR_INTERNAL) __builtin_trap();
  if (rc == SHARDRT_ERR_INTERNAL) __builtin_trap(); /* a broken invariant is a bug */
  if (rc != SHARDRT_OK && shardrt_last_error()[0] == '\0') __builtin_trap();
}

static void quiet(const char *msg, void *user) {
  (void)msg;
  (void)user;
}

static void run_args(const uint8_t *data, size_t size) {
  char *copy = malloc(size + 1);
  char *argv[66];
  if (!copy) return;
  memcpy(copy, data, size);
  copy[size] = '\0';
  int argc = 0;
  argv[argc++] = "fuzz";
  for (char *p = copy; p < copy + size && argc < 64; p += strlen(p) + 1) argv[argc++] = p;
  argv[argc] = NULL;
  int before = argc;
  shardrt_plan plan;
  shardrt_status rc = shardrt_plan_from_args(&argc, argv, &plan);
  check_status(rc);
  if (argc > before || argc < 1 || argv[argc] != NULL) __builtin_trap();
  if (rc == SHARDRT_OK) check_status(shardrt_plan_resolve(&plan, 0));
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  shardrt__warn_set_sink(quiet, NULL);
  unsetenv("SHARDRT_CONFIG_FILE");
  unsetenv("SHARDRT_OVERRIDES");
  uint8_t mode = data[0] % 3;
  data++;
  size--;
  if (mode == 2) {
    run_args(data, size);
    return 0;
  }
  shardrt__cfg *c = malloc(sizeof *c);
  if (!c) return 0;
  shardrt__cfg_init(c, NULL);
  shardrt_status rc = shardrt__cfg_load_buffer(c, mode ? "fuzz/ds.json" : "fuzz/c.yaml", (const char *)data, size,
                                               mode == 1);
  check_status(rc);
  if (rc == SHARDRT_OK) {
    shardrt_plan plan;
    rc = shardrt__cfg_finish(c, &plan);
    check_status(rc);
    if (rc == SHARDRT_OK) {
      check_status(shardrt_plan_resolve(&plan, plan.num_processes > 0 ? plan.num_processes : 0));
      check_status(shardrt_plan_set_program_hints(&plan, 4096, 2, 8));
      char buf[256];
      (void)shardrt_plan_format(&plan, (size & 1) != 0, buf, sizeof buf);
    }
  }
  free(c);
  return 0;
}
