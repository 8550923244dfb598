/* SPDX-License-Identifier: Apache-2.0 */
/* libshardrt: sharded data-parallel training runtime. Umbrella header. */
#ifndef SHARDRT_H
#define SHARDRT_H

#include "shardrt/types.h"
#include "shardrt/plan.h"
#include "shardrt/runtime.h"
#include "shardrt/config.h"
#include "shardrt/ckpt.h"

#endif
