/* SPDX-License-Identifier: Apache-2.0 */
/* Basic types shared by every public header: status codes, dtypes, export macro. */
#ifndef SHARDRT_TYPES_H
#define SHARDRT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SHARDRT_BUILDING) && defined(__GNUC__)
#define SHARDRT_API __attribute__((visibility("default")))
#else
#define SHARDRT_API
#endif

#define SHARDRT_VERSION_MAJOR 0
#define SHARDRT_VERSION_MINOR 1
#define SHARDRT_VERSION_PATCH 0
#define SHARDRT_VERSION_CODE \
  (SHARDRT_VERSION_MAJOR * 10000 + SHARDRT_VERSION_MINOR * 100 + SHARDRT_VERSION_PATCH)

/* Every fallible call returns one of these. Append-only: values never change. */
typedef enum shardrt_status {
  SHARDRT_OK = 0,
  SHARDRT_ERR_INVALID_ARGUMENT = 1, /* a bad value passed by the caller */
  SHARDRT_ERR_OUT_OF_MEMORY = 2,    /* host or device allocation failed */
  SHARDRT_ERR_CONFIG = 3,           /* a config file / plan is invalid */
  SHARDRT_ERR_IO = 4,               /* file could not be read or written */
  SHARDRT_ERR_COMM = 5,             /* a collective or the comm backend failed */
  SHARDRT_ERR_DEVICE = 6,           /* device backend error (CUDA) */
  SHARDRT_ERR_UNSUPPORTED = 7,      /* valid request this build/machine cannot serve */
  SHARDRT_ERR_MISMATCH = 8,         /* ranks disagree (shapes, plans, collectives) */
  SHARDRT_ERR_STATE = 9,            /* call out of lifecycle order */
  SHARDRT_ERR_CORRUPT = 10,         /* checksum / format check failed on load */
  SHARDRT_ERR_NOT_FOUND = 11,       /* a named thing does not exist */
  SHARDRT_ERR_INTERNAL = 12,        /* broken invariant: a bug in libshardrt */
  SHARDRT_ERR_TIMEOUT = 13,         /* a collective did not complete in SHARDRT_COLL_TIMEOUT_S */
} shardrt_status;

/* Static text for a status code (never NULL). */
SHARDRT_API const char *shardrt_status_str(shardrt_status rc);

/* Detailed message of the last error raised on the calling thread, with the
 * offending value in it. Valid until the next failing call on this thread. */
SHARDRT_API const char *shardrt_last_error(void);

typedef enum shardrt_dtype {
  SHARDRT_F32 = 0,
  SHARDRT_BF16 = 1,
  SHARDRT_F16 = 2,
} shardrt_dtype;

SHARDRT_API size_t shardrt_dtype_size(shardrt_dtype dt);
SHARDRT_API const char *shardrt_dtype_name(shardrt_dtype dt); /* "fp32" "bf16" "fp16" */
/* Parses "fp32|float32|f32|bf16|bfloat16|fp16|float16|f16"; false if unknown. */
SHARDRT_API bool shardrt_dtype_parse(const char *s, shardrt_dtype *out);

/* Scalar conversions (round to nearest even), usable by programs on the CPU. */
SHARDRT_API uint16_t shardrt_f32_to_bf16(float f);
SHARDRT_API float shardrt_bf16_to_f32(uint16_t h);
SHARDRT_API uint16_t shardrt_f32_to_f16(float f);
SHARDRT_API float shardrt_f16_to_f32(uint16_t h);
/* Bulk host conversions between any two dtypes (same dtype: memcpy). */
SHARDRT_API void shardrt_convert(void *dst, shardrt_dtype dst_dt, const void *src,
                                 shardrt_dtype src_dt, size_t n);

SHARDRT_API int shardrt_version(void); /* SHARDRT_VERSION_CODE of the library */

#ifdef __cplusplus
}
#endif
#endif
