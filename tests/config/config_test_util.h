/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the config tests: a scratch folder for fixtures, plan
 * fields rendered as text for table-driven expectations, warning capture. */
#ifndef SHARDRT_CONFIG_TEST_UTIL_H
#define SHARDRT_CONFIG_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "shardrt.h"
#include "src/config/config_internal.h"

static char tu_dir[256];
static char tu_warnings[8192];

static void tu_sink(const char *msg, void *user) {
  (void)user;
  size_t l = strlen(tu_warnings);
  snprintf(tu_warnings + l, sizeof tu_warnings - l, "%s\n", msg);
}

static void tu_setup(void) {
  if (!tu_dir[0]) {
    snprintf(tu_dir, sizeof tu_dir, "/tmp/shardrt_cfg_XXXXXX");
    assert_non_null(mkdtemp(tu_dir));
  }
  tu_warnings[0] = '\0';
  shardrt__warn_reset();
  shardrt__warn_set_sink(tu_sink, NULL);
  unsetenv("SHARDRT_CONFIG_FILE");
  unsetenv("SHARDRT_OVERRIDES");
}

/* Writes text to <dir>/<name>, returns the path (static buffer per call site). */
static const char *tu_write(const char *name, const char *text, char *path, size_t cap) {
  snprintf(path, cap, "%s/%s", tu_dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fwrite(text, 1, strlen(text), f);
  fclose(f);
  return path;
}

/* One plan field as text, using the library's own names. */
static void tu_field(const shardrt_plan *p, const char *key, char *out, size_t cap) {
#define IS(k) (strcmp(key, k) == 0)
  if (IS("dist")) snprintf(out, cap, "%s", shardrt_dist_type_name(p->distributed_type));
  else if (IS("flavor")) snprintf(out, cap, "%s", p->flavor == SHARDRT_FLAVOR_DEEPSPEED ? "deepspeed" : "fsdp");
  else if (IS("strategy")) snprintf(out, cap, "%s", shardrt_strategy_name(p->strategy));
  else if (IS("mp")) snprintf(out, cap, "%s", shardrt_mixed_precision_name(p->mixed_precision));
  else if (IS("load_dtype")) snprintf(out, cap, "%s", shardrt_dtype_name(p->load_dtype));
  else if (IS("reduce_dtype")) snprintf(out, cap, "%s%s", p->reduce_dtype_set ? "" : "unset:", shardrt_dtype_name(p->reduce_dtype));
  else if (IS("offload_params")) snprintf(out, cap, "%s", shardrt_offload_name(p->offload_params));
  else if (IS("offload_optimizer")) snprintf(out, cap, "%s", shardrt_offload_name(p->offload_optimizer));
  else if (IS("param_nvme")) snprintf(out, cap, "%s", p->offload_param_nvme_path);
  else if (IS("opt_nvme")) snprintf(out, cap, "%s", p->offload_optimizer_nvme_path);
  else if (IS("wrap")) snprintf(out, cap, "%s", shardrt_wrap_policy_name(p->wrap_policy));
  else if (IS("classes")) {
    out[0] = '\0';
    for (int i = 0; i < p->num_wrap_classes; i++)
      snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "|" : "", p->wrap_classes[i]);
  } else if (IS("min_params")) snprintf(out, cap, "%lld", (long long)p->min_num_params);
  else if (IS("bprefetch")) snprintf(out, cap, "%s", shardrt_backward_prefetch_name(p->backward_prefetch));
  else if (IS("fprefetch")) snprintf(out, cap, "%d", p->forward_prefetch);
  else if (IS("sdt")) snprintf(out, cap, "%s", shardrt_state_dict_type_name(p->state_dict_type));
  else if (IS("sync")) snprintf(out, cap, "%d", p->sync_module_states);
  else if (IS("ram")) snprintf(out, cap, "%d", p->cpu_ram_efficient_loading);
  else if (IS("orig")) snprintf(out, cap, "%d", p->use_orig_params);
  else if (IS("ackpt")) snprintf(out, cap, "%d", p->activation_checkpointing);
  else if (IS("version")) snprintf(out, cap, "%d", p->fsdp_version);
  else if (IS("np")) snprintf(out, cap, "%d", p->num_processes);
  else if (IS("nm")) snprintf(out, cap, "%d", p->num_machines);
  else if (IS("mrank")) snprintf(out, cap, "%d", p->machine_rank);
  else if (IS("group")) snprintf(out, cap, "%d", p->shard_group_size);
  else if (IS("accum")) snprintf(out, cap, "%d", p->gradient_accumulation_steps);
  else if (IS("accum_mode")) snprintf(out, cap, "%s", shardrt_accum_mode_name(p->accum_mode));
  else if (IS("clip")) snprintf(out, cap, "%g", p->gradient_clipping);
  else if (IS("save16")) snprintf(out, cap, "%d", p->save_16bit_model);
  else if (IS("reduce_bucket")) snprintf(out, cap, "%lld", (long long)p->reduce_bucket_size);
  else if (IS("prefetch_bucket")) snprintf(out, cap, "%lld", (long long)p->prefetch_bucket_size);
  else if (IS("persistence")) snprintf(out, cap, "%lld", (long long)p->param_persistence_threshold);
  else if (IS("ag_bucket")) snprintf(out, cap, "%lld", (long long)p->allgather_bucket_size);
  else if (IS("max_live")) snprintf(out, cap, "%lld", (long long)p->max_live_parameters);
  else if (IS("overlap")) snprintf(out, cap, "%d", p->overlap_comm);
  else if (IS("max_reuse")) snprintf(out, cap, "%lld", (long long)p->max_reuse_distance);
  else if (IS("unresolved")) snprintf(out, cap, "%u", p->unresolved);
  else if (IS("micro")) snprintf(out, cap, "%lld", (long long)p->train_micro_batch_size_per_gpu);
  else if (IS("train_batch")) snprintf(out, cap, "%lld", (long long)p->train_batch_size);
  else if (IS("loss_scale")) snprintf(out, cap, "%g", p->loss_scale);
  else if (IS("scale_power")) snprintf(out, cap, "%d", p->initial_scale_power);
  else if (IS("hysteresis")) snprintf(out, cap, "%d", p->hysteresis);
  else if (IS("ip")) snprintf(out, cap, "%s", p->main_process_ip);
  else if (IS("port")) snprintf(out, cap, "%d", p->main_process_port);
  else if (IS("hostfile")) snprintf(out, cap, "%s", p->mpirun_hostfile);
  else if (IS("gpu_ids")) snprintf(out, cap, "%s", p->gpu_ids);
  else if (IS("use_cpu")) snprintf(out, cap, "%d", p->use_cpu);
  else if (IS("ignored")) snprintf(out, cap, "%s", p->ignored_modules);
  /* DeepSpeed JSON optimizer and scheduler */
  else if (IS("optim")) snprintf(out, cap, "%s", shardrt_optimizer_type_name(p->optimizer.type));
  else if (IS("optim_given")) snprintf(out, cap, "%u", p->optimizer.given);
  else if (IS("lr")) snprintf(out, cap, "%g", p->optimizer.lr);
  else if (IS("betas")) snprintf(out, cap, "%g,%g", p->optimizer.beta1, p->optimizer.beta2);
  else if (IS("eps")) snprintf(out, cap, "%g", p->optimizer.eps);
  else if (IS("wd")) snprintf(out, cap, "%g", p->optimizer.weight_decay);
  else if (IS("momentum")) snprintf(out, cap, "%g", p->optimizer.momentum);
  else if (IS("sched")) snprintf(out, cap, "%s", shardrt_lr_schedule_name(p->scheduler.type));
  else if (IS("sched_given")) snprintf(out, cap, "%u", p->scheduler.given);
  else if (IS("min_lr")) snprintf(out, cap, "%g", p->scheduler.warmup_min_lr);
  else if (IS("max_lr")) snprintf(out, cap, "%g", p->scheduler.warmup_max_lr);
  else if (IS("warmup")) snprintf(out, cap, "%lld", (long long)p->scheduler.warmup_num_steps);
  else if (IS("wtype")) snprintf(out, cap, "%s", shardrt_warmup_type_name(p->scheduler.warmup_type));
  else if (IS("total")) snprintf(out, cap, "%lld", (long long)p->scheduler.total_num_steps);
  else if (IS("wmr")) snprintf(out, cap, "%g", p->scheduler.warmup_min_ratio);
  else if (IS("cmr")) snprintf(out, cap, "%g", p->scheduler.cos_min_ratio);
  else fail_msg("test bug: unknown expectation key '%s'", key);
#undef IS
}

/* expects: NULL-terminated "key=value" strings; "value" may hold "$DIR". */
static void tu_expect(const char *label, const shardrt_plan *p, const char *const *expects) {
  for (int i = 0; expects[i]; i++) {
    char key[64], want[512], got[1024];
    const char *eq = strchr(expects[i], '=');
    assert_non_null(eq);
    snprintf(key, sizeof key, "%.*s", (int)(eq - expects[i]), expects[i]);
    const char *w = eq + 1;
    const char *d = strstr(w, "$DIR");
    if (d) snprintf(want, sizeof want, "%.*s%s%s", (int)(d - w), w, tu_dir, d + 4);
    else snprintf(want, sizeof want, "%s", w);
    tu_field(p, key, got, sizeof got);
    if (strcmp(got, want) != 0) fail_msg("%s: %s is '%s', expected '%s'", label, key, got, want);
  }
}

static void tu_expect_error(const char *label, const char *const *frags) {
  const char *msg = shardrt_last_error();
  for (int i = 0; frags[i]; i++)
    if (!strstr(msg, frags[i])) fail_msg("%s: error text lacks '%s':\n  %s", label, frags[i], msg);
}

#endif
