/* SPDX-License-Identifier: Apache-2.0 */
/* An export spec: how `shardrt merge-weights --export SPEC` writes a
 * checkpoint in another framework's layout. The runtime knows no model:
 * the program that trains writes the spec (train_gpt writes one for Hugging
 * Face GPT-2), merge applies it. A JSON object:
 *
 *   "shardrt_export": 1                       format version (required)
 *   "weights_file": "model.safetensors"       output weights, a plain file name
 *   "tensors": {"<param>": {"name": "<file tensor>", "transpose": true}}
 *                                             every parameter of the checkpoint,
 *                                             each to a distinct name; transpose
 *                                             (2-D only) stores [R, C] as [C, R]
 *   "metadata": {"k": "v"}                    safetensors __metadata__ (optional)
 *   "dtype_names": {"fp32": "...", "bf16": "...", "fp16": "..."}   (optional)
 *   "files": {"<name>": <JSON value>}         extra files written next to the
 *                                             weights (e.g. config.json); a
 *                                             string value "{dtype}" anywhere in
 *                                             them becomes dtype_names[output
 *                                             dtype] (default: fp32/bf16/fp16)
 */
#ifndef SHARDRT_CKPT_EXPORT_SPEC_H
#define SHARDRT_CKPT_EXPORT_SPEC_H

#include <jansson.h>
#include <stdbool.h>

#include "shardrt/types.h"

typedef struct shardrt__export_spec {
  char path[4096];
  json_t *root;       /* owns every string below */
  const char *weights_file;
  json_t *tensors;    /* object */
  json_t *metadata;   /* object of strings, or NULL */
  json_t *files;      /* object, or NULL */
  json_t *dtype_names;/* object, or NULL */
} shardrt__export_spec;

/* Reads and checks the spec's own structure (SHARDRT_ERR_CORRUPT naming the
 * file and the field). */
shardrt_status shardrt__export_open(shardrt__export_spec *x, const char *path);
void shardrt__export_close(shardrt__export_spec *x); /* NULL-safe */
/* The output name and transpose flag of parameter param;
 * SHARDRT_ERR_NOT_FOUND naming it when the spec does not list it. */
shardrt_status shardrt__export_tensor(const shardrt__export_spec *x, const char *param, const char **name,
                                      bool *transpose);
/* The spec's name for dtype dt. */
const char *shardrt__export_dtype_name(const shardrt__export_spec *x, shardrt_dtype dt);
/* Writes every extra file into dir with "{dtype}" replaced for dt. */
shardrt_status shardrt__export_write_files(const shardrt__export_spec *x, const char *dir, shardrt_dtype dt);

#endif
