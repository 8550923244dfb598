/* SPDX-License-Identifier: Apache-2.0 */
/* Durable file output: write "<path>.tmp.<pid>", fsync, rename into place,
 * fsync the directory; plus the crash-injection hook the tests use to kill a
 * save at every stage, and small file helpers shared by the checkpoint code. */
#ifndef SHARDRT_CKPT_DURABLE_H
#define SHARDRT_CKPT_DURABLE_H

#include <stdint.h>

#include "shardrt/types.h"

typedef struct shardrt__wfile {
  int fd;
  uint64_t pos; /* bytes appended so far */
  char path[4096];
  char tmp[4096 + 32];
} shardrt__wfile;

/* Creates (truncating) path.tmp.<pid>. */
shardrt_status shardrt__wfile_open(shardrt__wfile *f, const char *path);
/* Appends n bytes (retries short writes). */
shardrt_status shardrt__wfile_write(shardrt__wfile *f, const void *data, size_t n);
/* Overwrites n bytes at offset off (inside what was appended). */
shardrt_status shardrt__wfile_pwrite(shardrt__wfile *f, const void *data, size_t n, uint64_t off);
/* fsync, close, rename to the final path, fsync the directory. On failure the
 * temporary file is removed. */
shardrt_status shardrt__wfile_commit(shardrt__wfile *f);
/* Closes and removes the temporary file (safe after a failed commit). */
void shardrt__wfile_abort(shardrt__wfile *f);

/* Whole small file written durably in one call. */
shardrt_status shardrt__write_file_durable(const char *path, const void *data, size_t n);
/* Reads a whole (small) file; *out is malloc'ed and NUL-terminated. */
shardrt_status shardrt__read_file(const char *path, char **out, size_t *len);
/* pread of exactly n bytes; a short file is SHARDRT_ERR_CORRUPT naming it. */
shardrt_status shardrt__pread_full(int fd, void *buf, size_t n, uint64_t off, const char *path);

/* mkdir -p. */
shardrt_status shardrt__mkdir_p(const char *dir);
shardrt_status shardrt__fsync_dir(const char *dir);
/* Removes path if present and fsyncs its directory. */
shardrt_status shardrt__unlink_durable(const char *path);

/* Test hook. shardrt__crash_arm() reads SHARDRT_TEST_CKPT_EXIT_AT=k at the
 * start of a save; the k-th (1-based) shardrt__crash_point() of that save
 * then calls _exit(SHARDRT__CRASH_EXIT_CODE), as a kill would. Unset: no
 * effect beyond counting. */
#define SHARDRT__CRASH_EXIT_CODE 86
void shardrt__crash_arm(void);
void shardrt__crash_point(const char *what);
/* Crash points passed since the last arm (tests use it to enumerate them). */
int shardrt__crash_points_seen(void);

#endif
