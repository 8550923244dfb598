/* SPDX-License-Identifier: Apache-2.0 */
#include "gpt_data.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/trainer.h"

/* Opens a regular file for reading. O_NONBLOCK: opening a FIFO would
 * otherwise wait for a writer forever; the type check on the opened
 * descriptor then refuses anything that is not a regular file (no race with
 * a path swapped after a stat). *size receives its size. */
static FILE *open_regular(const char *path, int64_t *size, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open --data '%s': %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "--data '%s' is not a regular file (a FIFO, device, socket or directory cannot be read as "
             "training data)", path);
    close(fd);
    return NULL;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open --data '%s': %s", path, strerror(errno));
    close(fd);
    return NULL;
  }
  *size = (int64_t)st.st_size;
  return f;
}

static bool has_glob(const char *p) { return strpbrk(p, "*?[") != NULL; }

static int32_t le32(const unsigned char *b) {
  return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

static bool starts_with_magic(const char *path) {
  char err[64];
  int64_t size;
  FILE *f = open_regular(path, &size, err, sizeof err);
  if (!f) return false;
  unsigned char b[4];
  bool yes = fread(b, 1, 4, f) == 4 && le32(b) == GPT_LLMC_MAGIC;
  fclose(f);
  return yes;
}

int gpt_data_is_llmc(const char *path) {
  if (!has_glob(path)) return starts_with_magic(path);
  glob_t g;
  int yes = glob(path, 0, NULL, &g) == 0 && g.gl_pathc > 0 && starts_with_magic(g.gl_pathv[0]);
  globfree(&g);
  return yes;
}

static int grow(gpt_data *d, int64_t extra, const char *path, char *err, size_t errlen) {
  uint16_t *t = realloc(d->tok, (size_t)(d->n + extra + 1) * sizeof *t);
  if (!t) {
    snprintf(err, errlen, "out of host memory reading --data '%s' (%lld tokens)", path, (long long)(d->n + extra));
    return -1;
  }
  d->tok = t;
  return 0;
}

/* Appends one llm.c shard, checking its header against its size. */
static int load_shard(gpt_data *d, const char *path, FILE *f, int64_t size, char *err, size_t errlen) {
  unsigned char hb[GPT_LLMC_HEADER_INTS * 4];
  const int64_t hbytes = (int64_t)sizeof hb;
  if (size < hbytes || fread(hb, 1, sizeof hb, f) != sizeof hb) {
    snprintf(err, errlen, "--data '%s' is %lld bytes, shorter than llm.c's %lld-byte header", path, (long long)size,
             (long long)hbytes);
    return -1;
  }
  int32_t magic = le32(hb), version = le32(hb + 4), ntok = le32(hb + 8);
  if (magic != GPT_LLMC_MAGIC) {
    snprintf(err, errlen, "--data '%s' has magic %d, not llm.c's %d (every shard of a glob must be an llm.c .bin)",
             path, magic, GPT_LLMC_MAGIC);
    return -1;
  }
  if (version != GPT_LLMC_VERSION) {
    snprintf(err, errlen, "--data '%s' is llm.c format version %d; train_gpt reads version %d (uint16 tokens)", path,
             version, GPT_LLMC_VERSION);
    return -1;
  }
  if (ntok <= 0 || size != hbytes + 2 * (int64_t)ntok) {
    snprintf(err, errlen,
             "--data '%s': the header says %d tokens, so the file should be %lld bytes, but it is %lld (truncated or "
             "not an llm.c shard)",
             path, ntok, (long long)(hbytes + 2 * (int64_t)(ntok > 0 ? ntok : 0)), (long long)size);
    return -1;
  }
  if (grow(d, ntok, path, err, errlen)) return -1;
  unsigned char buf[1 << 16];
  for (int64_t at = 0; at < ntok;) {
    size_t want = (size_t)(ntok - at) * 2 < sizeof buf ? (size_t)(ntok - at) * 2 : sizeof buf;
    if (fread(buf, 1, want, f) != want) {
      snprintf(err, errlen, "short read on --data '%s' at token %lld", path, (long long)at);
      return -1;
    }
    for (size_t k = 0; k < want / 2; k++) d->tok[d->n + at + (int64_t)k] = (uint16_t)(buf[2 * k] | buf[2 * k + 1] << 8);
    at += (int64_t)(want / 2);
  }
  d->n += ntok;
  d->shards++;
  return 0;
}

static int load_raw(gpt_data *d, const char *path, FILE *f, int64_t size, char *err, size_t errlen) {
  if (grow(d, size, path, err, errlen)) return -1;
  unsigned char buf[1 << 16];
  for (int64_t at = 0; at < size;) {
    size_t want = (size_t)(size - at) < sizeof buf ? (size_t)(size - at) : sizeof buf;
    if (fread(buf, 1, want, f) != want) {
      snprintf(err, errlen, "short read on --data '%s' (%lld of %lld bytes)", path, (long long)at, (long long)size);
      return -1;
    }
    for (size_t k = 0; k < want; k++) d->tok[at + (int64_t)k] = buf[k];
    at += (int64_t)want;
  }
  d->n = size;
  return 0;
}

static int load_file(gpt_data *d, const char *path, bool shard_only, char *err, size_t errlen) {
  int64_t size;
  FILE *f = open_regular(path, &size, err, errlen);
  if (!f) return -1;
  unsigned char b[4];
  bool llmc = size >= 4 && fread(b, 1, 4, f) == 4 && le32(b) == GPT_LLMC_MAGIC;
  int rc = fseek(f, 0, SEEK_SET);
  if (rc == 0) rc = llmc || shard_only ? load_shard(d, path, f, size, err, errlen) : load_raw(d, path, f, size, err, errlen);
  else snprintf(err, errlen, "cannot rewind --data '%s': %s", path, strerror(errno));
  fclose(f);
  return rc;
}

int gpt_data_load(gpt_data *d, const char *path, int seq_len, int vocab, char *err, size_t errlen) {
  memset(d, 0, sizeof *d);
  int rc = 0;
  if (has_glob(path)) {
    glob_t g;
    int gr = glob(path, 0, NULL, &g); /* matches come sorted */
    if (gr != 0 || g.gl_pathc == 0) {
      snprintf(err, errlen, "--data pattern '%s' matches no file", path);
      if (gr == 0) globfree(&g);
      return -1;
    }
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++) rc = load_file(d, g.gl_pathv[i], true, err, errlen);
    globfree(&g);
  } else {
    rc = load_file(d, path, false, err, errlen);
  }
  if (rc == 0 && d->n < (int64_t)seq_len + 1) {
    snprintf(err, errlen, "--data '%s' has %lld tokens; training on sequences of %d tokens needs at least %d", path,
             (long long)d->n, seq_len, seq_len + 1);
    rc = -1;
  }
  for (int64_t i = 0; i < d->n && rc == 0; i++) {
    if (d->tok[i] > d->max_id) d->max_id = d->tok[i];
    if (d->tok[i] >= vocab) {
      if (d->shards)
        snprintf(err, errlen, "--data '%s' token %lld is %d, outside the model's vocab %d (set --vocab, or use a "
                 "model whose vocab covers the tokenizer)", path, (long long)i, d->tok[i], vocab);
      else
        snprintf(err, errlen,
                 "--data '%s' byte %lld has value %d, outside --vocab %d (byte-level text needs a vocab of at "
                 "least 256, or text whose bytes are all < vocab)",
                 path, (long long)i, d->tok[i], vocab);
      rc = -1;
    }
  }
  if (rc) gpt_data_free(d);
  return rc;
}

void gpt_data_free(gpt_data *d) {
  if (!d) return;
  free(d->tok);
  memset(d, 0, sizeof *d);
}

void gpt_data_sequence(const gpt_data *d, uint64_t seed, int step, int64_t g, int T, int *tokens,
                       int *targets) {
  uint64_t span = (uint64_t)(d->n - T); /* >= 1: load checked n >= T + 1 */
  int64_t o = (int64_t)(ex_hash(seed, 5000, (uint64_t)step, (uint64_t)g) % span);
  for (int t = 0; t < T; t++) {
    tokens[t] = d->tok[o + t];
    targets[t] = d->tok[o + t + 1];
  }
}
