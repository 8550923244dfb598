/* SPDX-License-Identifier: Apache-2.0 */
#include "ck_synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_test_util.h"
#include "src/ckpt/safetensors.h"

const ck_synth_param ck_synth_params[CK_SYNTH_NPARAMS] = {
    {"emb.weight", 0, 2, {7, 5}, 0},
    {"h.0.w", 1, 2, {5, 5}, 0},
    {"h.0.b", 1, 1, {5, 0}, 25},
    {"h.1.w", 1, 2, {5, 3}, 31}, /* one padding element before it */
    {"head.bias", 1, 1, {3, 0}, 46},
};
const int64_t ck_synth_unit_numel[CK_SYNTH_NUNITS] = {35, 49};

static const shardrt_dtype role_dt[3] = {SHARDRT_F32, SHARDRT_BF16, SHARDRT_F16};

int64_t ck_synth_numel(int p) {
  int64_t n = 1;
  for (int d = 0; d < ck_synth_params[p].ndim; d++) n *= ck_synth_params[p].shape[d];
  return n;
}

const char *ck_synth_id = "00c0ffee5eed0001";
#define SYNTH_ID ck_synth_id

static int write_model(const char *dir, uint64_t *bytes, uint32_t *crc) {
  shardrt__st_tensor t[CK_SYNTH_NPARAMS];
  for (int p = 0; p < CK_SYNTH_NPARAMS; p++) {
    t[p] = (shardrt__st_tensor){.name = (char *)ck_synth_params[p].name, .dtype = SHARDRT_F32, .ndim = ck_synth_params[p].ndim};
    memcpy(t[p].shape, ck_synth_params[p].shape, sizeof ck_synth_params[p].shape);
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, SHARDRT__CK_MODEL_FILE);
  shardrt__st_writer w;
  const char *meta[] = {"shardrt.checkpoint_id", SYNTH_ID};
  if (shardrt__stw_begin(&w, path, t, CK_SYNTH_NPARAMS, meta, 1) != SHARDRT_OK) return -1;
  for (int p = 0; p < CK_SYNTH_NPARAMS; p++)
    for (int64_t k = 0; k < ck_synth_numel(p); k++) {
      float v = ck_exact_value(ck_synth_params[p].unit * 3, ck_synth_params[p].offset + k);
      if (shardrt__stw_write(&w, &v, 4) != SHARDRT_OK) return -1;
    }
  *bytes = w.data_start + w.data_bytes;
  if (shardrt__stw_finish(&w) != SHARDRT_OK) return -1;
  *crc = w.header_crc;
  return 0;
}

int ck_synth_write(const char *dir, int world, bool full_model, const void *user, size_t user_len) {
  shardrt__ck_meta m;
  memset(&m, 0, sizeof m);
  m.world_size = world;
  snprintf(m.ckpt_id, sizeof m.ckpt_id, "%s", SYNTH_ID);
  snprintf(m.strategy, sizeof m.strategy, "FULL_SHARD");
  m.ts = (shardrt__train_state){.step = 42, .loss_scale = 65536.0, .good_steps = 7, .hysteresis_left = 2};
  for (int r = 0; r < 3; r++) {
    m.in_shards[r] = !(r == 0 && full_model);
    m.role_dtype[r] = role_dt[r];
  }
  shardrt__ck_unit units[CK_SYNTH_NUNITS];
  shardrt__ck_piece pieces[CK_SYNTH_NUNITS][16];
  shardrt__ck_file files[16];
  shardrt__ck_param params[CK_SYNTH_NPARAMS];
  if (world > 16) return -1;
  for (int u = 0; u < CK_SYNTH_NUNITS; u++) {
    units[u] = (shardrt__ck_unit){.name = u ? "h" : "emb", .numel = ck_synth_unit_numel[u], .pieces = pieces[u]};
    for (int r = 0; r < world; r++) {
      int64_t b = ck_synth_unit_numel[u] * r / world, e = ck_synth_unit_numel[u] * (r + 1) / world;
      if (e > b) pieces[u][units[u].npieces++] = (shardrt__ck_piece){.file = r, .begin = b, .end = e};
    }
  }
  for (int p = 0; p < CK_SYNTH_NPARAMS; p++) {
    params[p] = (shardrt__ck_param){.name = (char *)ck_synth_params[p].name, .unit = ck_synth_params[p].unit,
                                    .ndim = ck_synth_params[p].ndim, .numel = ck_synth_numel(p),
                                    .offset = ck_synth_params[p].offset};
    memcpy(params[p].shape, ck_synth_params[p].shape, sizeof ck_synth_params[p].shape);
  }
  m.units = units;
  m.nunits = CK_SYNTH_NUNITS;
  m.params = params;
  m.nparams = CK_SYNTH_NPARAMS;
  m.files = files;
  m.nfiles = world;
  m.user = (unsigned char *)user;
  m.user_len = user_len;
  if (full_model) {
    snprintf(m.model_file, sizeof m.model_file, "%s", SHARDRT__CK_MODEL_FILE);
    if (write_model(dir, &m.model_bytes, &m.model_header_crc) != 0) return -1;
  }
  for (int r = 0; r < world; r++) {
    shardrt__ck_rank_file(r, files[r].name, sizeof files[r].name);
    shardrt__st_tensor t[CK_SYNTH_NUNITS * 3];
    char names[CK_SYNTH_NUNITS * 3][48];
    int nt = 0;
    for (int u = 0; u < CK_SYNTH_NUNITS; u++)
      for (int k = 0; k < units[u].npieces; k++)
        if (pieces[u][k].file == r)
          for (int role = 0; role < 3; role++)
            if (m.in_shards[role]) {
              shardrt__ck_piece_tensor(u, (shardrt__role)role, names[nt], sizeof names[nt]);
              t[nt] = (shardrt__st_tensor){.name = names[nt], .dtype = role_dt[role], .ndim = 1,
                                           .shape = {pieces[u][k].end - pieces[u][k].begin}};
              nt++;
            }
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, files[r].name);
    shardrt__st_writer w;
    char rank_s[16];
    snprintf(rank_s, sizeof rank_s, "%d", r);
    char *pstr = shardrt__ck_pieces_str(&m, r);
    const char *meta[] = {"shardrt.checkpoint_id", SYNTH_ID, "shardrt.rank", rank_s, "shardrt.pieces", pstr};
    int brc = pstr ? (int)shardrt__stw_begin(&w, path, t, nt, meta, 3) : -1;
    free(pstr);
    if (brc != SHARDRT_OK) return -1;
    for (int u = 0; u < CK_SYNTH_NUNITS; u++)
      for (int k = 0; k < units[u].npieces; k++)
        if (pieces[u][k].file == r)
          for (int role = 0; role < 3; role++)
            if (m.in_shards[role])
              for (int64_t x = pieces[u][k].begin; x < pieces[u][k].end; x++) {
                float v = ck_exact_value(u * 3 + role, x);
                unsigned char raw[4];
                shardrt_convert(raw, role_dt[role], &v, SHARDRT_F32, 1);
                if (shardrt__stw_write(&w, raw, shardrt_dtype_size(role_dt[role])) != SHARDRT_OK) return -1;
              }
    files[r].bytes = w.data_start + w.data_bytes;
    if (shardrt__stw_finish(&w) != SHARDRT_OK) return -1;
    files[r].header_crc = w.header_crc;
  }
  return shardrt__meta_write(&m, dir) == SHARDRT_OK ? 0 : -1;
}
