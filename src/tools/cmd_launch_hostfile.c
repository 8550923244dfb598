/* SPDX-License-Identifier: Apache-2.0 */
/* Hostfile parsing and checks for `shardrt launch`. The format is the one
 * Open MPI's --hostfile and DeepSpeed's launcher share (DeepSpeed parses
 * `^(\S+)\s+slots=(\d+)`, refuses duplicate hosts and bad lines); Open MPI's
 * max_slots=N is accepted and ignored. The launch is checked here before any
 * rank starts, so a hostfile that cannot serve the config fails in one line
 * instead of as an mpirun mapping error. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "src/tools/hostfile.h"

void shardrt_hostfile_free(shardrt_hostfile *hf) {
  if (!hf) return;
  free(hf->host);
  free(hf->slots);
  memset(hf, 0, sizeof *hf);
}

static int parse_count(const char *s, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 1 || v > 1 << 20) return -1;
  *out = (int)v;
  return 0;
}

int shardrt_hostfile_read(const char *path, shardrt_hostfile *hf, char *err, size_t errcap) {
  memset(hf, 0, sizeof *hf);
  FILE *f = fopen(path, "r");
  if (!f) return snprintf(err, errcap, "cannot open the hostfile %s: %s", path, strerror(errno)), -1;
  hf->host = calloc(SHARDRT_HOSTFILE_MAX_HOSTS, sizeof *hf->host);
  hf->slots = calloc(SHARDRT_HOSTFILE_MAX_HOSTS, sizeof *hf->slots);
  if (!hf->host || !hf->slots) {
    fclose(f);
    shardrt_hostfile_free(hf);
    return snprintf(err, errcap, "out of memory reading %s", path), -1;
  }
  char line[1024];
  int lineno = 0, rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save);
    if (!tok) continue;
    if (strlen(tok) >= sizeof hf->host[0]) {
      rc = snprintf(err, errcap, "%s:%d: host name '%.40s...' is longer than %zu characters", path, lineno, tok,
                    sizeof hf->host[0] - 1);
      break;
    }
    for (int h = 0; h < hf->nhosts; h++)
      if (strcmp(hf->host[h], tok) == 0)
        rc = snprintf(err, errcap, "%s:%d: host %s is listed twice (lines of one host must be merged into one "
                      "'HOST slots=N')", path, lineno, tok);
    if (rc) break;
    if (hf->nhosts == SHARDRT_HOSTFILE_MAX_HOSTS) {
      rc = snprintf(err, errcap, "%s:%d: more than %d hosts", path, lineno, SHARDRT_HOSTFILE_MAX_HOSTS);
      break;
    }
    int slots = 0;
    for (char *kv = strtok_r(NULL, " \t\r\n", &save); kv && !rc; kv = strtok_r(NULL, " \t\r\n", &save)) {
      if (strncmp(kv, "slots=", 6) == 0) {
        if (parse_count(kv + 6, &slots))
          rc = snprintf(err, errcap, "%s:%d: '%s' is not a slot count (allowed: slots=N, N >= 1)", path, lineno, kv);
      } else if (strncmp(kv, "max_slots=", 10) == 0 || strncmp(kv, "max-slots=", 10) == 0) {
        int ignored;
        if (parse_count(kv + 10, &ignored))
          rc = snprintf(err, errcap, "%s:%d: '%s' is not a slot count (allowed: max_slots=N, N >= 1)", path, lineno,
                        kv);
      } else {
        rc = snprintf(err, errcap, "%s:%d: '%s' is not understood (allowed: HOST slots=N [max_slots=M])", path,
                      lineno, kv);
      }
    }
    if (!rc && slots == 0)
      rc = snprintf(err, errcap, "%s:%d: host %s has no slots=N (the format is 'HOST slots=N', one host a line)", path,
                    lineno, tok);
    if (rc) break;
    snprintf(hf->host[hf->nhosts], sizeof hf->host[0], "%s", tok);
    hf->slots[hf->nhosts++] = slots;
  }
  fclose(f);
  if (!rc && hf->nhosts == 0) rc = snprintf(err, errcap, "the hostfile %s lists no host ('HOST slots=N' lines)", path);
  if (rc) {
    shardrt_hostfile_free(hf);
    return -1;
  }
  return 0;
}

int shardrt_hostfile_check(const shardrt_hostfile *hf, const char *path, int num_processes, int num_machines,
                           char *err, size_t errcap) {
  if (num_machines > hf->nhosts)
    return snprintf(err, errcap, "the config asks for num_machines %d but the hostfile %s lists %d host%s (%s%s)",
                    num_machines, path, hf->nhosts, hf->nhosts == 1 ? "" : "s", hf->host[0],
                    hf->nhosts > 1 ? ", ..." : ""),
           -1;
  if (num_machines < hf->nhosts && num_machines == 1)
    return snprintf(err, errcap, "the hostfile %s lists %d hosts but the config says num_machines 1: set "
                    "num_machines %d (--num_machines %d) or list one host",
                    path, hf->nhosts, hf->nhosts, hf->nhosts),
           -1;
  if (num_processes % num_machines)
    return snprintf(err, errcap, "num_processes %d is not divisible by num_machines %d: every host of %s runs "
                    "num_processes / num_machines ranks",
                    num_processes, num_machines, path),
           -1;
  int per = num_processes / num_machines;
  for (int h = 0; h < num_machines; h++)
    if (hf->slots[h] < per)
      return snprintf(err, errcap, "host %s of the hostfile %s has slots=%d but the config places num_processes / "
                      "num_machines = %d / %d = %d ranks on each host",
                      hf->host[h], path, hf->slots[h], num_processes, num_machines, per),
             -1;
  return 0;
}
