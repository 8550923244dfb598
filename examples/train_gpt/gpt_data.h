/* SPDX-License-Identifier: Apache-2.0 */
/* Byte-level training text for the GPT example and the deterministic
 * choice of sequences: sequence g of step s starts at an offset that is a
 * function of (seed, s, g) only, so every world size trains on the same
 * global batch whichever rank owns which slice. */
#ifndef GPT_DATA_H
#define GPT_DATA_H

#include <stddef.h>
#include <stdint.h>

typedef struct gpt_data {
  unsigned char *bytes;
  int64_t n;
  int max_id; /* largest byte value present */
} gpt_data;

/* Reads the whole file. Needs at least seq_len + 1 bytes and every byte
 * < vocab. Returns 0, or -1 with a message naming the file in err. */
int gpt_data_load(gpt_data *d, const char *path, int seq_len, int vocab, char *err, size_t errlen);
void gpt_data_free(gpt_data *d); /* NULL-safe, idempotent */

/* tokens[t] = text[o + t], targets[t] = text[o + t + 1], t < T, with
 * o = hash(seed, step, g) mod (n - T). */
void gpt_data_sequence(const gpt_data *d, uint64_t seed, int step, int64_t g, int T, int *tokens,
                       int *targets);

#endif
