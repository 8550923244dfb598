/* SPDX-License-Identifier: Apache-2.0 */
/* CRC32C (Castagnoli), the checksum every checkpoint file carries. */
#ifndef SHARDRT_CKPT_CRC32C_H
#define SHARDRT_CKPT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC32C over data: start with crc = 0, pass the previous result
 * to extend (crc32c(a||b) == crc32c(crc32c(0,a), b)). */
uint32_t shardrt__crc32c(uint32_t crc, const void *data, size_t n);
/* The table-driven path alone (tests compare it with the hardware path). */
uint32_t shardrt__crc32c_portable(uint32_t crc, const void *data, size_t n);

#endif
