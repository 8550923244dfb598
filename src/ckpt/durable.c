/* SPDX-License-Identifier: Apache-2.0 */
/* Durable writes. A checkpoint is only as good as its weakest file: each one
 * becomes visible under its final name only after its bytes are on disk, and
 * the rename itself is made durable by syncing the directory. */
#include "src/ckpt/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/core/error.h"

static int crash_at = 0;
static int crash_seen = 0;

void shardrt__crash_arm(void) {
  const char *s = getenv("SHARDRT_TEST_CKPT_EXIT_AT");
  crash_at = s ? atoi(s) : 0;
  crash_seen = 0;
}

void shardrt__crash_point(const char *what) {
  crash_seen++;
  if (crash_at > 0 && crash_seen == crash_at) {
    fprintf(stderr, "shardrt: test hook: exiting at checkpoint crash point %d (%s)\n", crash_seen, what);
    _exit(SHARDRT__CRASH_EXIT_CODE);
  }
}

int shardrt__crash_points_seen(void) { return crash_seen; }

static void dir_of(const char *path, char *dir, size_t len) {
  snprintf(dir, len, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) snprintf(dir, len, ".");
  else if (slash == dir) dir[1] = '\0';
  else *slash = '\0';
}

shardrt_status shardrt__fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return shardrt__error(SHARDRT_ERR_IO, "cannot open directory '%s' to sync it: %s", dir, strerror(errno));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  /* Some filesystems refuse fsync on directories; the rename is then as
   * durable as that filesystem can make it. */
  if (rc != 0 && err != EINVAL && err != EROFS)
    return shardrt__error(SHARDRT_ERR_IO, "fsync of directory '%s' failed: %s", dir, strerror(err));
  return SHARDRT_OK;
}

shardrt_status shardrt__wfile_open(shardrt__wfile *f, const char *path) {
  f->fd = -1;
  f->pos = 0;
  if (strlen(path) >= sizeof f->path)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "checkpoint path too long (%zu bytes, at most %zu): '%.64s...'",
                          strlen(path), sizeof f->path - 1, path);
  snprintf(f->path, sizeof f->path, "%s", path);
  snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld", path, (long)getpid());
  f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f->fd < 0) return shardrt__error(SHARDRT_ERR_IO, "cannot create '%s': %s", f->tmp, strerror(errno));
  return SHARDRT_OK;
}

static shardrt_status write_all(int fd, const void *data, size_t n, uint64_t off, const char *path) {
  const char *p = data;
  while (n > 0) {
    size_t chunk = n > (1u << 30) ? (1u << 30) : n;
    ssize_t w = pwrite(fd, p, chunk, (off_t)off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      return shardrt__error(SHARDRT_ERR_IO, "write to '%s' failed at byte %llu: %s", path,
                            (unsigned long long)off, w < 0 ? strerror(errno) : "no progress (disk full?)");
    p += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return SHARDRT_OK;
}

shardrt_status shardrt__wfile_write(shardrt__wfile *f, const void *data, size_t n) {
  SHARDRT__CHECK(write_all(f->fd, data, n, f->pos, f->tmp));
  f->pos += n;
  return SHARDRT_OK;
}

shardrt_status shardrt__wfile_pwrite(shardrt__wfile *f, const void *data, size_t n, uint64_t off) {
  if (off + n > f->pos)
    return shardrt__error(SHARDRT_ERR_INTERNAL, "overwrite of '%s' past its end (%llu > %llu)", f->tmp,
                          (unsigned long long)(off + n), (unsigned long long)f->pos);
  return write_all(f->fd, data, n, off, f->tmp);
}

void shardrt__wfile_abort(shardrt__wfile *f) {
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  if (f->tmp[0]) unlink(f->tmp);
}

shardrt_status shardrt__wfile_commit(shardrt__wfile *f) {
  shardrt__crash_point("before fsync of a file");
  if (fsync(f->fd) != 0) {
    shardrt_status rc = shardrt__error(SHARDRT_ERR_IO, "fsync of '%s' failed: %s", f->tmp, strerror(errno));
    shardrt__wfile_abort(f);
    return rc;
  }
  int crc = close(f->fd);
  f->fd = -1;
  if (crc != 0) {
    shardrt_status rc = shardrt__error(SHARDRT_ERR_IO, "close of '%s' failed: %s", f->tmp, strerror(errno));
    shardrt__wfile_abort(f);
    return rc;
  }
  shardrt__crash_point("before rename of a file");
  if (rename(f->tmp, f->path) != 0) {
    shardrt_status rc = shardrt__error(SHARDRT_ERR_IO, "rename '%s' -> '%s' failed: %s", f->tmp, f->path, strerror(errno));
    shardrt__wfile_abort(f);
    return rc;
  }
  f->tmp[0] = '\0';
  shardrt__crash_point("after rename, before directory fsync");
  char dir[sizeof f->path];
  dir_of(f->path, dir, sizeof dir);
  return shardrt__fsync_dir(dir);
}

shardrt_status shardrt__write_file_durable(const char *path, const void *data, size_t n) {
  shardrt__wfile f;
  SHARDRT__CHECK(shardrt__wfile_open(&f, path));
  shardrt_status rc = shardrt__wfile_write(&f, data, n);
  if (rc != SHARDRT_OK) {
    shardrt__wfile_abort(&f);
    return rc;
  }
  return shardrt__wfile_commit(&f);
}

shardrt_status shardrt__pread_full(int fd, void *buf, size_t n, uint64_t off, const char *path) {
  char *p = buf;
  while (n > 0) {
    ssize_t r = pread(fd, p, n, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return shardrt__error(SHARDRT_ERR_IO, "read of '%s' at byte %llu failed: %s", path, (unsigned long long)off, strerror(errno));
    if (r == 0)
      return shardrt__error(SHARDRT_ERR_CORRUPT, "'%s' is truncated: expected %zu more bytes at byte %llu", path, n,
                            (unsigned long long)off);
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return SHARDRT_OK;
}

shardrt_status shardrt__read_file(const char *path, char **out, size_t *len) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return shardrt__error(errno == ENOENT ? SHARDRT_ERR_NOT_FOUND : SHARDRT_ERR_IO, "cannot open '%s': %s", path,
                          strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return shardrt__error(SHARDRT_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
  }
  char *buf = malloc((size_t)st.st_size + 1);
  if (!buf) {
    close(fd);
    return shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "reading '%s': cannot allocate %lld bytes", path, (long long)st.st_size);
  }
  shardrt_status rc = shardrt__pread_full(fd, buf, (size_t)st.st_size, 0, path);
  close(fd);
  if (rc != SHARDRT_OK) {
    free(buf);
    return rc;
  }
  buf[st.st_size] = '\0';
  *out = buf;
  if (len) *len = (size_t)st.st_size;
  return SHARDRT_OK;
}

shardrt_status shardrt__mkdir_p(const char *dir) {
  char buf[4096];
  if (!dir || !*dir) return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "checkpoint directory is empty");
  if (strlen(dir) >= sizeof buf)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "directory path too long (%zu bytes, at most %zu)", strlen(dir), sizeof buf - 1);
  snprintf(buf, sizeof buf, "%s", dir);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return shardrt__error(SHARDRT_ERR_IO, "cannot create directory '%s': %s", buf, strerror(errno));
      *p = c;
      if (c == '\0') break;
    }
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return shardrt__error(SHARDRT_ERR_IO, "'%s' exists and is not a directory", dir);
  return SHARDRT_OK;
}

shardrt_status shardrt__unlink_durable(const char *path) {
  if (unlink(path) != 0) {
    if (errno == ENOENT) return SHARDRT_OK;
    return shardrt__error(SHARDRT_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
  }
  char dir[4096];
  dir_of(path, dir, sizeof dir);
  return shardrt__fsync_dir(dir);
}
