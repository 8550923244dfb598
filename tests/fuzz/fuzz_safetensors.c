/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target over the safetensors reader: the input is a whole file.
 * It is opened, and when it opens, mapped, every tensor's checksum verified
 * over the mapping, every tensor streamed in small chunks, and looked up by
 * name. Whatever the bytes, every call returns a known status with a
 * message and never crashes, hangs or reads out of bounds. */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "src/ckpt/safetensors.h"
#include "src/core/error.h"

static void check_status(shardrt_status rc) {
  if (rc < SHARDRT_OK || rc > SHARDRT_ERR_INTERNAL || rc == SHARDRT_ERR_INTERNAL) __builtin_trap();
  if (rc != SHARDRT_OK && shardrt_last_error()[0] == '\0') __builtin_trap();
}

static shardrt_status count_chunk(uint64_t off, const void *data, size_t n, void *arg) {
  (void)data;
  uint64_t *seen = arg;
  if (off != *seen) __builtin_trap(); /* chunks arrive in order, without gaps */
  *seen += n;
  return SHARDRT_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int fd = -1;
  if (fd < 0) fd = memfd_create("fuzz_safetensors", 0);
  if (fd < 0) return 0;
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) return 0;
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  shardrt__error_clear();
  shardrt__st_file f;
  shardrt_status rc = shardrt__st_open(&f, path);
  check_status(rc);
  if (rc != SHARDRT_OK) return 0;
  unsigned char scratch[24];
  for (int i = 0; i < f.n; i++) {
    if (shardrt__st_find(&f, f.t[i].name) != i) __builtin_trap(); /* names are unique */
    if (f.data_start + f.t[i].end > f.file_size) __builtin_trap();
    uint64_t seen = 0;
    rc = shardrt__st_stream(&f, i, scratch, sizeof scratch, count_chunk, &seen);
    check_status(rc);
    if (rc == SHARDRT_OK && seen * shardrt_dtype_size(f.t[i].dtype) != f.t[i].end - f.t[i].begin) __builtin_trap();
  }
  if (shardrt__st_find(&f, "\x01 not a name") >= 0) __builtin_trap();
  check_status(shardrt__st_map(&f));
  for (int i = 0; i < f.n && f.map; i++) check_status(shardrt__st_verify_mapped(&f, i));
  for (int i = 0; i < f.n_meta; i++)
    if (shardrt__st_meta(&f, f.meta_key[i]) == NULL) __builtin_trap();
  shardrt__st_close(&f);
  shardrt__st_close(&f); /* idempotent */
  return 0;
}
