/* SPDX-License-Identifier: Apache-2.0 */
/* Checkpoints and model loading (safetensors). */
#ifndef SHARDRT_CKPT_H
#define SHARDRT_CKPT_H

#include "shardrt/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif
