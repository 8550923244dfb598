/* SPDX-License-Identifier: Apache-2.0 */
/* Internal error helpers: one thread-local detailed message, check macros
 * that return or jump to a cleanup label. */
#ifndef SHARDRT_ERROR_H
#define SHARDRT_ERROR_H

#include "shardrt/types.h"

#if defined(__GNUC__)
#define SHARDRT__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SHARDRT__PRINTF(a, b)
#endif

/* Records "<detail>" as the thread's last error and returns rc. */
shardrt_status shardrt__error(shardrt_status rc, const char *fmt, ...) SHARDRT__PRINTF(2, 3);
/* Prefixes the current last error with "<context>: " and returns rc. */
shardrt_status shardrt__error_wrap(shardrt_status rc, const char *fmt, ...) SHARDRT__PRINTF(2, 3);
void shardrt__error_clear(void);

#define SHARDRT__CHECK(expr)                     \
  do {                                           \
    shardrt_status rc__ = (expr);                \
    if (rc__ != SHARDRT_OK) return rc__;         \
  } while (0)

#define SHARDRT__CHECK_GOTO(expr, rc, label)     \
  do {                                           \
    (rc) = (expr);                               \
    if ((rc) != SHARDRT_OK) goto label;          \
  } while (0)

#endif
