/* SPDX-License-Identifier: Apache-2.0 */
/* A synthetic checkpoint written with the library's own file writers (no
 * runtime context): five parameters in two units, a gap between two
 * parameters, each unit split over `world` rank files. Role r of unit u
 * holds ck_exact_value(u * 3 + r, x) at unit coordinate x. */
#ifndef SHARDRT_CK_SYNTH_H
#define SHARDRT_CK_SYNTH_H

#include <stdbool.h>

#include "src/ckpt/meta.h"

#define CK_SYNTH_NPARAMS 5
#define CK_SYNTH_NUNITS 2

typedef struct ck_synth_param {
  const char *name;
  int unit;
  int ndim;
  int64_t shape[2];
  int64_t offset;
} ck_synth_param;

extern const ck_synth_param ck_synth_params[CK_SYNTH_NPARAMS];
extern const int64_t ck_synth_unit_numel[CK_SYNTH_NUNITS];
/* The checkpoint id the next ck_synth_write records (16 hex digits). */
extern const char *ck_synth_id;

/* full_model: parameters go to model.safetensors (fp32) instead of the rank
 * files. Returns 0 on success. */
int ck_synth_write(const char *dir, int world, bool full_model, const void *user, size_t user_len);
int64_t ck_synth_numel(int p);

#endif
