/* SPDX-License-Identifier: Apache-2.0 */
#include "gpt_data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/trainer.h"

int gpt_data_load(gpt_data *d, const char *path, int seq_len, int vocab, char *err, size_t errlen) {
  memset(d, 0, sizeof *d);
  /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
   * writer forever; the type check on the opened descriptor then refuses
   * anything that is not a regular file (no race with a path swapped after
   * a stat). */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open --data '%s': %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(err, errlen, "--data '%s' is not a regular file (a FIFO, device, socket or directory cannot be read as "
             "training data)", path);
    close(fd);
    return -1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open --data '%s': %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  long n = -1;
  if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
  if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
    snprintf(err, errlen, "cannot determine the size of --data '%s' (not a regular file?)", path);
    fclose(f);
    return -1;
  }
  if (n < (long)seq_len + 1) {
    snprintf(err, errlen, "--data '%s' has %ld bytes; training on sequences of %d tokens needs at least %d",
             path, n, seq_len, seq_len + 1);
    fclose(f);
    return -1;
  }
  d->bytes = malloc((size_t)n);
  if (!d->bytes) {
    snprintf(err, errlen, "out of host memory reading --data '%s' (%ld bytes)", path, n);
    fclose(f);
    return -1;
  }
  size_t got = fread(d->bytes, 1, (size_t)n, f);
  fclose(f);
  if (got != (size_t)n) {
    snprintf(err, errlen, "short read on --data '%s' (%zu of %ld bytes)", path, got, n);
    gpt_data_free(d);
    return -1;
  }
  d->n = n;
  for (long i = 0; i < n; i++) {
    if (d->bytes[i] > d->max_id) d->max_id = d->bytes[i];
    if (d->bytes[i] >= vocab) {
      snprintf(err, errlen,
               "--data '%s' byte %ld has value %d, outside --vocab %d (byte-level text needs a vocab of at "
               "least 256, or text whose bytes are all < vocab)",
               path, i, d->bytes[i], vocab);
      gpt_data_free(d);
      return -1;
    }
  }
  return 0;
}

void gpt_data_free(gpt_data *d) {
  if (!d) return;
  free(d->bytes);
  memset(d, 0, sizeof *d);
}

void gpt_data_sequence(const gpt_data *d, uint64_t seed, int step, int64_t g, int T, int *tokens,
                       int *targets) {
  uint64_t span = (uint64_t)(d->n - T); /* >= 1: load checked n >= T + 1 */
  int64_t o = (int64_t)(ex_hash(seed, 5000, (uint64_t)step, (uint64_t)g) % span);
  for (int t = 0; t < T; t++) {
    tokens[t] = d->bytes[o + t];
    targets[t] = d->bytes[o + t + 1];
  }
}
