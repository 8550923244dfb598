/* SPDX-License-Identifier: Apache-2.0 */
/* Scalar parsing shared by the YAML, JSON and flag front ends, name lookup
 * with suggestions, and the once-only warning channel. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/config/config_internal.h"

bool shardrt__parse_bool(const char *s, bool *out) {
  /* Accelerate's str_to_bool spellings, which include the YAML 1.1 ones. */
  static const char *const yes[] = {"y", "yes", "t", "true", "on", "1"};
  static const char *const no[] = {"n", "no", "f", "false", "off", "0"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
    if (strcasecmp(s, yes[i]) == 0) return *out = true, true;
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
    if (strcasecmp(s, no[i]) == 0) return *out = false, true;
  return false;
}

bool shardrt__parse_i64(const char *s, int64_t *out) {
  if (!*s || isspace((unsigned char)*s)) return false;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno == 0 && end != s && *end == '\0') return *out = v, true;
  /* 1e8, 5e8, 2.5e3: accepted when the value is an exact integer. */
  double d;
  if (!shardrt__parse_double(s, &d)) return false;
  if (d != floor(d) || fabs(d) > 9.0e15) return false;
  *out = (int64_t)d;
  return true;
}

bool shardrt__parse_double(const char *s, double *out) {
  if (!*s || isspace((unsigned char)*s)) return false;
  /* strtod also reads hex floats, inf and nan; configs mean none of them. */
  for (const char *p = s; *p; p++)
    if (!strchr("0123456789+-.eE", *p)) return false;
  char *end = NULL;
  errno = 0;
  double d = strtod(s, &end);
  if (end == s || *end != '\0' || errno == ERANGE || !isfinite(d)) return false;
  *out = d;
  return true;
}

bool shardrt__is_null(const shardrt__val *v) {
  if (!v->plain) return false;
  return v->text[0] == '\0' || strcmp(v->text, "~") == 0 || strcasecmp(v->text, "null") == 0;
}

int shardrt__enum_find(const char *s, const char *const *names, int n, bool one_based) {
  for (int i = 0; i < n; i++)
    if (strcasecmp(s, names[i]) == 0) return i;
  if (one_based) {
    int64_t k;
    if (shardrt__parse_i64(s, &k) && k >= 1 && k <= n) return (int)k - 1;
  }
  return -1;
}

/* Edit distance counting a swap of two neighbours as one edit (fp61 ->
 * fp16), case-insensitive, on at most 64 characters: names are short, and a
 * long input is not a misspelling of any of them. */
static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return 1000;
  int d[65][65];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
      int best = d[i - 1][j - 1] + (ai != bj);
      if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) && tolower((unsigned char)a[i - 2]) == bj &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[la][lb];
}

const char *shardrt__closest(const char *s, const char *const *names, int n) {
  const char *best = NULL;
  int best_d = 1000;
  for (int i = 0; i < n; i++) {
    int d = edit_distance(s, names[i]);
    if (d < best_d) best_d = d, best = names[i];
  }
  /* Close means a few typos relative to the name's length. */
  int len = (int)strlen(s);
  int limit = len <= 4 ? 1 : len <= 12 ? 3 : len / 3;
  return best_d <= limit ? best : NULL;
}

void shardrt__join(char *buf, size_t cap, const char *const *names, int n) {
  size_t used = 0;
  if (cap) buf[0] = '\0';
  for (int i = 0; i < n && used < cap; i++) {
    int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", names[i]);
    if (w < 0) break;
    used += (size_t)w;
  }
}

bool shardrt__copy_str(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (n >= cap) return false;
  memcpy(dst, src, n + 1);
  return true;
}

/* ---- warnings ---- */

#define SEEN_MAX 64
static _Thread_local unsigned long seen[SEEN_MAX];
static _Thread_local int n_seen;
static _Thread_local shardrt__warn_sink sink;
static _Thread_local void *sink_user;

void shardrt__warn_set_sink(shardrt__warn_sink fn, void *user) {
  sink = fn;
  sink_user = user;
}

void shardrt__warn_reset(void) { n_seen = 0; }

static unsigned long hash_str(const char *s) {
  unsigned long h = 5381;
  while (*s) h = h * 33 + (unsigned char)*s++;
  return h;
}

void shardrt__warn(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  unsigned long h = hash_str(msg);
  for (int i = 0; i < n_seen; i++)
    if (seen[i] == h) return;
  if (n_seen < SEEN_MAX) seen[n_seen++] = h;
  if (sink) {
    sink(msg, sink_user);
    return;
  }
  /* Every rank reads the same config: one copy of each warning is enough. */
  const char *rank = getenv("OMPI_COMM_WORLD_RANK");
  if (rank && strcmp(rank, "0") != 0) return;
  fprintf(stderr, "shardrt: warning: %s\n", msg);
}

/* ---- keys accepted but not acted on (`shardrt plan` lists them) ---- */

#define NOTES_MAX 128
static _Thread_local char notes[NOTES_MAX][SHARDRT__NOTE_MAX];
static _Thread_local int n_notes;

void shardrt__note(const char *fmt, ...) {
  if (n_notes == NOTES_MAX) return; /* bounded: a listing, not a log */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(notes[n_notes], sizeof notes[n_notes], fmt, ap);
  va_end(ap);
  for (int i = 0; i < n_notes; i++)
    if (strcmp(notes[i], notes[n_notes]) == 0) return;
  n_notes++;
}
void shardrt__notes_reset(void) { n_notes = 0; }
int shardrt__notes_count(void) { return n_notes; }
const char *shardrt__notes_get(int i) { return i >= 0 && i < n_notes ? notes[i] : ""; }
