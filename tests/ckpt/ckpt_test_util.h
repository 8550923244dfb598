/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the checkpoint tests: scratch directories, file
 * surgery (flip a byte, truncate) and deterministic values that are exact
 * in fp32, bf16 and fp16. */
#ifndef SHARDRT_CKPT_TEST_UTIL_H
#define SHARDRT_CKPT_TEST_UTIL_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A value with at most 8 significant bits and |v| <= 128: exact in every dtype. */
static inline float ck_exact_value(int tensor, int64_t k) {
  return (float)((int)((k * 7 + tensor * 13) % 256) - 128) / 4.0f;
}

static inline char *ck_tmpdir(char *buf, size_t len, const char *tag) {
  const char *base = getenv("TMPDIR");
  snprintf(buf, len, "%s/shardrt_%s_XXXXXX", base && *base ? base : "/tmp", tag);
  return mkdtemp(buf);
}

static inline void ck_rm_rf(const char *dir) {
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

static inline int ck_flip_byte(const char *path, long off) {
  int fd = open(path, O_RDWR);
  if (fd < 0) return -1;
  if (off < 0) off += (long)lseek(fd, 0, SEEK_END);
  unsigned char c;
  int ok = pread(fd, &c, 1, off) == 1;
  c ^= 0x10;
  ok = ok && pwrite(fd, &c, 1, off) == 1;
  close(fd);
  return ok ? 0 : -1;
}

static inline long ck_file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static inline int ck_copy_file(const char *from, const char *to) {
  char cmd[8800];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
  return system(cmd);
}

#endif
