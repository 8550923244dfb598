/* SPDX-License-Identifier: Apache-2.0 */
/* Training tokens for the GPT example and the deterministic choice of
 * sequences: sequence g of step s starts at an offset that is a function of
 * (seed, s, g) only, so every world size trains on the same global batch
 * whichever rank owns which slice.
 *
 * --data is either raw bytes (each byte a token, vocab >= 256) or llm.c's
 * tokenized shards (karpathy/llm.c dev/data/data_common.py write_datafile,
 * read by llmc/dataloader.h): a header of 256 little-endian int32 (magic
 * 20240520, version 1, token count), then that many uint16 tokens; one
 * file, or a glob pattern whose matches are read in sorted order and
 * concatenated (a sequence may span two shards, as it may span two
 * documents inside one). */
#ifndef GPT_DATA_H
#define GPT_DATA_H

#include <stddef.h>
#include <stdint.h>

#define GPT_LLMC_MAGIC 20240520
#define GPT_LLMC_VERSION 1
#define GPT_LLMC_HEADER_INTS 256
#define GPT_GPT2_VOCAB 50257 /* the GPT-2 BPE vocabulary llm.c's shards use */

typedef struct gpt_data {
  uint16_t *tok;
  int64_t n;
  int max_id;    /* largest token present */
  int shards;    /* llm.c shards read; 0 for raw bytes */
} gpt_data;

/* 1 when path (or the first match of a glob pattern) starts with the llm.c
 * magic, 0 otherwise (including unreadable: load reports that). */
int gpt_data_is_llmc(const char *path);

/* Reads every token. Needs at least seq_len + 1 tokens and every token
 * < vocab. Non-regular files (FIFOs, devices) are refused before any read.
 * Returns 0, or -1 with a message naming the file in err. */
int gpt_data_load(gpt_data *d, const char *path, int seq_len, int vocab, char *err, size_t errlen);
void gpt_data_free(gpt_data *d); /* NULL-safe, idempotent */

/* tokens[t] = data[o + t], targets[t] = data[o + t + 1], t < T, with
 * o = hash(seed, step, g) mod (n - T). */
void gpt_data_sequence(const gpt_data *d, uint64_t seed, int step, int64_t g, int T, int *tokens,
                       int *targets);

#endif
