/* SPDX-License-Identifier: Apache-2.0 */
#include "src/core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[2048];

const char *shardrt_status_str(shardrt_status rc) {
  switch (rc) {
    case SHARDRT_OK: return "success";
    case SHARDRT_ERR_INVALID_ARGUMENT: return "invalid argument";
    case SHARDRT_ERR_OUT_OF_MEMORY: return "out of memory";
    case SHARDRT_ERR_CONFIG: return "invalid configuration";
    case SHARDRT_ERR_IO: return "I/O error";
    case SHARDRT_ERR_COMM: return "communication error";
    case SHARDRT_ERR_DEVICE: return "device error";
    case SHARDRT_ERR_UNSUPPORTED: return "unsupported";
    case SHARDRT_ERR_MISMATCH: return "ranks disagree";
    case SHARDRT_ERR_STATE: return "call out of order";
    case SHARDRT_ERR_CORRUPT: return "corrupt data";
    case SHARDRT_ERR_NOT_FOUND: return "not found";
    case SHARDRT_ERR_INTERNAL: return "internal error";
    case SHARDRT_ERR_TIMEOUT: return "collective timed out";
  }
  return "unknown status";
}

const char *shardrt_last_error(void) { return last_error; }

void shardrt__error_clear(void) { last_error[0] = '\0'; }

shardrt_status shardrt__error(shardrt_status rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return rc;
}

shardrt_status shardrt__error_wrap(shardrt_status rc, const char *fmt, ...) {
  char prev[sizeof last_error];
  char head[512];
  memcpy(prev, last_error, sizeof prev);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(head, sizeof head, fmt, ap);
  va_end(ap);
  snprintf(last_error, sizeof last_error, "%.500s: %.1500s", head, prev);
  return rc;
}
