/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target over the checkpoint metadata reader. The harness fixes
 * the checksum so that the fuzzer reaches the semantics: the input becomes
 * meta.json with its leading {"crc32c":"........" digits recomputed (the
 * prefix is added when the input lacks it). A read that succeeds must give
 * metadata that is internally consistent. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/ckpt/crc32c.h"
#include "src/ckpt/meta.h"
#include "src/core/error.h"

#define PREFIX "{\"crc32c\":\""

static void check_status(shardrt_status rc) {
  if (rc < SHARDRT_OK || rc > SHARDRT_ERR_INTERNAL || rc == SHARDRT_ERR_INTERNAL) __builtin_trap();
  if (rc != SHARDRT_OK && shardrt_last_error()[0] == '\0') __builtin_trap();
}

static void check_meta(const shardrt__ck_meta *m) {
  if (m->nfiles != m->world_size || !(m->ts.loss_scale > 0)) __builtin_trap();
  for (int u = 0; u < m->nunits; u++) {
    int64_t at = 0;
    for (int k = 0; k < m->units[u].npieces; k++) {
      const shardrt__ck_piece *p = &m->units[u].pieces[k];
      if (p->begin != at || p->end <= p->begin || p->file < 0 || p->file >= m->nfiles) __builtin_trap();
      at = p->end;
    }
    if (at != m->units[u].numel) __builtin_trap();
  }
  for (int i = 0; i < m->nparams; i++) {
    const shardrt__ck_param *p = &m->params[i];
    if (p->unit < 0 || p->unit >= m->nunits || p->offset < 0 || p->numel < 0 ||
        p->offset > m->units[p->unit].numel - p->numel)
      __builtin_trap();
    for (int j = 0; j < i; j++)
      if (strcmp(m->params[j].name, p->name) == 0) __builtin_trap();
  }
  for (int r = 0; r < m->nfiles && r < 64; r++) free(shardrt__ck_pieces_str(m, r));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char dir[4096];
  if (!dir[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/shardrt_fuzz_meta_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
      dir[0] = '\0';
      return 0;
    }
  }
  size_t pl = strlen(PREFIX);
  bool has = size >= pl + 8 && memcmp(data, PREFIX, pl) == 0;
  size_t skip = has ? 0 : (size && data[0] == '{' ? 1 : 0);
  size_t extra = has ? 0 : pl + 10; /* PREFIX + 8 digits + "\"," */
  char *text = malloc(size - skip + extra + 1);
  if (!text) return 0;
  if (!has) snprintf(text, extra + 1, PREFIX "00000000\",");
  memcpy(text + extra, data + skip, size - skip);
  size_t len = size - skip + extra;
  memcpy(text + pl, "00000000", 8);
  char hex[9];
  snprintf(hex, sizeof hex, "%08x", shardrt__crc32c(0, text, len));
  memcpy(text + pl, hex, 8);
  char path[4200];
  snprintf(path, sizeof path, "%s/meta.json", dir);
  FILE *f = fopen(path, "wb");
  if (f) {
    fwrite(text, 1, len, f);
    fclose(f);
    shardrt__error_clear();
    shardrt__ck_meta m;
    shardrt_status rc = shardrt__meta_read(dir, &m);
    check_status(rc);
    if (rc == SHARDRT_OK) {
      check_meta(&m);
      shardrt__meta_free(&m);
    }
  }
  free(text);
  return 0;
}
