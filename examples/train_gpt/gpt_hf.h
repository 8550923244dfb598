/* SPDX-License-Identifier: Apache-2.0 */
/* Hugging Face transformers GPT-2 checkpoints for train_gpt: the shape from
 * a config.json, the name/layout map between transformers' GPT2LMHeadModel
 * and this model's registry (the "transformer." prefix, Conv1D weights
 * stored [in, out], a tied head read from wte), and the export config.
 * The runtime knows nothing of GPT-2: the map goes through
 * shardrt_load_weights_mapped / shardrt_save_weights_mapped. */
#ifndef GPT_HF_H
#define GPT_HF_H

#include <stddef.h>

#include "gpt_model.h"
#include "shardrt/ckpt.h"

/* Reads DIR/config.json into cfg. Every field train_gpt cannot reproduce
 * exactly (another activation, layer-norm epsilon, n_inner, attention
 * scaling, cross-attention) is an error naming it. *tied receives
 * tie_word_embeddings (transformers' default: true). Returns 0, or -1 with
 * err. */
int gpt_hf_read_config(const char *dir, gpt_config *cfg, int *tied, char *err, size_t errlen);

/* Writes the weights file name of DIR into path: DIR/model.safetensors, or
 * for a sharded DIR its DIR/model.safetensors.index.json (the load API reads
 * an index and its shards as one set). Neither is an error. */
int gpt_hf_weights_path(const char *dir, char *path, size_t cap, char *err, size_t errlen);

/* Creates DIR (if needed) and writes DIR/config.json for cfg, untied head,
 * torch_dtype from dt. Returns 0, or -1 with err. */
int gpt_hf_write_config(const char *dir, const gpt_config *cfg, shardrt_dtype dt, char *err, size_t errlen);

/* Writes an export spec (src/ckpt/export_spec.h, docs/checkpoints.md) to
 * path, atomically: for the n registered parameter names, transformers'
 * names and Conv1D transposes, and config.json for cfg with torch_dtype
 * left as "{dtype}"; `shardrt merge-weights CKPT OUT --export path` then
 * writes a directory GPT2LMHeadModel.from_pretrained loads. */
int gpt_hf_write_export_spec(const char *path, const gpt_config *cfg, const char *const *params, int n, char *err,
                             size_t errlen);

/* The map between registry names and transformers' names (load and save). */
shardrt_weight_map gpt_hf_map(void);

#endif
