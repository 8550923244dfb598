/* SPDX-License-Identifier: Apache-2.0 */
/* shardrt_plan_from_args: `accelerate launch` flags over a config file, plus
 * the SHARDRT_CONFIG_FILE / SHARDRT_OVERRIDES environment that `shardrt
 * launch` hands every rank. Consumed arguments are removed from argv. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/config/config_internal.h"

#define F_CONFIG_FILE (-2) /* --config_file: handled before everything else */

typedef struct flag {
  const char *name;
  int field;
  int kind;             /* SHARDRT__FLAG_* */
  const char *implied;  /* SWITCH: the value it sets */
} flag;

static const flag flags[] = {
    {"config_file", F_CONFIG_FILE, SHARDRT__FLAG_VALUE, 0},
    {"use_fsdp", SHARDRT__F_DIST, SHARDRT__FLAG_SWITCH, "FSDP"},
    {"use_deepspeed", SHARDRT__F_DIST, SHARDRT__FLAG_SWITCH, "DEEPSPEED"},
    {"multi_gpu", SHARDRT__F_DIST, SHARDRT__FLAG_SWITCH, "MULTI_GPU"},
    {"cpu", SHARDRT__F_USE_CPU, SHARDRT__FLAG_SWITCH, "true"},
    {"distributed_type", SHARDRT__F_DIST, SHARDRT__FLAG_VALUE, 0},
    {"mixed_precision", SHARDRT__F_MP, SHARDRT__FLAG_VALUE, 0},
    {"num_processes", SHARDRT__F_NUM_PROC, SHARDRT__FLAG_VALUE, 0},
    {"num_machines", SHARDRT__F_NUM_MACH, SHARDRT__FLAG_VALUE, 0},
    {"machine_rank", SHARDRT__F_MACH_RANK, SHARDRT__FLAG_VALUE, 0},
    {"main_process_ip", SHARDRT__F_IP, SHARDRT__FLAG_VALUE, 0},
    {"main_process_port", SHARDRT__F_PORT, SHARDRT__FLAG_VALUE, 0},
    {"gpu_ids", SHARDRT__F_GPU_IDS, SHARDRT__FLAG_VALUE, 0},
    {"mpirun_hostfile", SHARDRT__F_HOSTFILE, SHARDRT__FLAG_VALUE, 0},
    {"deepspeed_hostfile", SHARDRT__F_HOSTFILE, SHARDRT__FLAG_VALUE, 0},
    {"fsdp_version", SHARDRT__F_FSDP_VERSION, SHARDRT__FLAG_VALUE, 0},
    {"fsdp_sharding_strategy", SHARDRT__F_STRATEGY, SHARDRT__FLAG_VALUE, 0},
    {"fsdp_reshard_after_forward", SHARDRT__F_RESHARD, SHARDRT__FLAG_VALUE, 0},
    {"fsdp_offload_params", SHARDRT__F_OFFLOAD, SHARDRT__FLAG_BOOL, 0},
    {"fsdp_auto_wrap_policy", SHARDRT__F_WRAP, SHARDRT__FLAG_VALUE, 0},
    {"fsdp_transformer_layer_cls_to_wrap", SHARDRT__F_CLS, SHARDRT__FLAG_VALUE, 0},
    {"fsdp_min_num_params", SHARDRT__F_MIN_PARAMS, SHARDRT__FLAG_VALUE, 0},
    {"fsdp_backward_prefetch", SHARDRT__F_BPREFETCH, SHARDRT__FLAG_VALUE, 0},
    {"fsdp_backward_prefetch_policy", SHARDRT__F_BPREFETCH, SHARDRT__FLAG_VALUE, 0},
    {"fsdp_forward_prefetch", SHARDRT__F_FPREFETCH, SHARDRT__FLAG_BOOL, 0},
    {"fsdp_state_dict_type", SHARDRT__F_SDT, SHARDRT__FLAG_VALUE, 0},
    {"fsdp_use_orig_params", SHARDRT__F_ORIG_PARAMS, SHARDRT__FLAG_BOOL, 0},
    {"fsdp_cpu_ram_efficient_loading", SHARDRT__F_RAM_EFFICIENT, SHARDRT__FLAG_BOOL, 0},
    {"fsdp_sync_module_states", SHARDRT__F_SYNC, SHARDRT__FLAG_BOOL, 0},
    {"fsdp_activation_checkpointing", SHARDRT__F_ACT_CKPT, SHARDRT__FLAG_BOOL, 0},
    {"fsdp_ignored_modules", SHARDRT__F_IGNORED, SHARDRT__FLAG_VALUE, 0},
    {"zero_stage", SHARDRT__F_ZERO_STAGE, SHARDRT__FLAG_VALUE, 0},
    {"offload_param_device", SHARDRT__F_PARAM_DEV, SHARDRT__FLAG_VALUE, 0},
    {"offload_optimizer_device", SHARDRT__F_OPT_DEV, SHARDRT__FLAG_VALUE, 0},
    {"offload_param_nvme_path", SHARDRT__F_PARAM_NVME, SHARDRT__FLAG_VALUE, 0},
    {"offload_optimizer_nvme_path", SHARDRT__F_OPT_NVME, SHARDRT__FLAG_VALUE, 0},
    {"zero3_init_flag", SHARDRT__F_Z3_INIT, SHARDRT__FLAG_BOOL, 0},
    {"zero3_save_16bit_model", SHARDRT__F_Z3_SAVE, SHARDRT__FLAG_BOOL, 0},
    {"zero_hpz_partition_size", SHARDRT__F_HPZ, SHARDRT__FLAG_VALUE, 0},
    {"deepspeed_config_file", SHARDRT__F_DS_FILE, SHARDRT__FLAG_VALUE, 0},
    {"gradient_accumulation_steps", SHARDRT__F_ACCUM, SHARDRT__FLAG_VALUE, 0},
    {"gradient_clipping", SHARDRT__F_CLIP, SHARDRT__FLAG_VALUE, 0},
    {"param_dtype", SHARDRT__F_PARAM_DTYPE, SHARDRT__FLAG_VALUE, 0},
    {"reduce_dtype", SHARDRT__F_REDUCE_DTYPE, SHARDRT__FLAG_VALUE, 0},
    {"accum_mode", SHARDRT__F_ACCUM_MODE, SHARDRT__FLAG_VALUE, 0},
    {"shard_group_size", SHARDRT__F_SHARD_GROUP, SHARDRT__FLAG_VALUE, 0},
};
#define N_FLAGS ((int)(sizeof flags / sizeof flags[0]))

static const flag *find_flag(const char *name, size_t len) {
  for (int i = 0; i < N_FLAGS; i++)
    if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0) return &flags[i];
  return NULL;
}

int shardrt__config_flag_kind(const char *name) {
  const flag *f = find_flag(name, strlen(name));
  return f ? f->kind : SHARDRT__FLAG_UNKNOWN;
}

bool shardrt__config_flag_reserved(const char *name) {
  static const char *const prefixes[] = {"fsdp_", "zero", "offload_", "deepspeed_"};
  for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
    if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) return true;
  return false;
}

static shardrt_status unknown_flag(const char *where, const char *name, size_t len) {
  const char *names[N_FLAGS];
  for (int i = 0; i < N_FLAGS; i++) names[i] = flags[i].name;
  char buf[SHARDRT_NAME_MAX];
  snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf - 1 ? len : sizeof buf - 1), name);
  const char *best = shardrt__closest(buf, names, N_FLAGS);
  if (best)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: unknown option --%s; did you mean --%s?", where, buf, best);
  return shardrt__error(SHARDRT_ERR_CONFIG, "%s: unknown option --%s (see docs/config.md for the flags)", where, buf);
}

/* One parsed option: which flag, its value (NULL for a switch). */
typedef struct opt {
  const flag *f;
  const char *value;
} opt;

/* Reads args[0..n) into opts. strict: every "--x" must be a config flag
 * (the launch environment); otherwise unknown ones are left alone and
 * consumed[] tells which indices were taken. */
static shardrt_status scan(char **args, int n, const char *where, bool strict, opt *opts, int *n_opts,
                           bool *consumed) {
  *n_opts = 0;
  for (int i = 0; i < n; i++) {
    const char *a = args[i];
    if (!a) continue;
    if (strcmp(a, "--") == 0) break;
    if (strncmp(a, "--", 2) != 0) {
      if (strict) return shardrt__error(SHARDRT_ERR_CONFIG, "%s: '%.100s' is not an option (--flag=value)", where, a);
      continue;
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const flag *f = find_flag(name, len);
    if (!f) {
      char tmp[SHARDRT_NAME_MAX];
      snprintf(tmp, sizeof tmp, "%.*s", (int)(len < sizeof tmp - 1 ? len : sizeof tmp - 1), name);
      if (strict || shardrt__config_flag_reserved(tmp)) return unknown_flag(where, name, len);
      continue;
    }
    if (consumed) consumed[i] = true;
    const char *value = NULL;
    if (f->kind == SHARDRT__FLAG_SWITCH) {
      if (eq) return shardrt__error(SHARDRT_ERR_CONFIG, "%s: --%s takes no value (got '%.100s')", where, f->name, eq + 1);
      value = f->implied;
    } else if (eq) {
      value = eq + 1;
    } else {
      bool b;
      const char *next = i + 1 < n ? args[i + 1] : NULL;
      if (f->kind == SHARDRT__FLAG_BOOL) {
        /* A bare boolean flag means true; a following word is its value
         * only when it reads as a boolean. */
        if (next && shardrt__parse_bool(next, &b)) value = next, i++;
        else value = "true";
      } else {
        if (!next || strncmp(next, "--", 2) == 0)
          return shardrt__error(SHARDRT_ERR_CONFIG, "%s: --%s needs a value (--%s VALUE or --%s=VALUE)", where,
                                f->name, f->name, f->name);
        value = next;
        i++;
      }
      if (consumed) consumed[i] = true;
    }
    opts[*n_opts].f = f;
    opts[*n_opts].value = value;
    (*n_opts)++;
  }
  return SHARDRT_OK;
}

/* Applies opts to c: the DeepSpeed JSON first, so that the other flags fill
 * its "auto" entries or are checked against its explicit values. */
static shardrt_status apply(shardrt__cfg *c, const opt *opts, int n, const char *where) {
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < n; i++) {
      const flag *f = opts[i].f;
      if (f->field == F_CONFIG_FILE) continue;
      bool is_json = f->field == SHARDRT__F_DS_FILE;
      if ((pass == 0) != is_json) continue;
      char key[SHARDRT_NAME_MAX];
      snprintf(key, sizeof key, "--%s", f->name);
      shardrt__val v = {.text = opts[i].value, .plain = true, .where = where, .key = key, .from = SHARDRT__FROM_FLAG};
      SHARDRT__CHECK(shardrt__cfg_set(c, (shardrt__field)f->field, &v));
      if (is_json) SHARDRT__CHECK(shardrt__cfg_load_ds_json(c, opts[i].value));
      if (strcmp(f->name, "fsdp_backward_prefetch_policy") == 0)
        shardrt__warn("%s: --fsdp_backward_prefetch_policy is deprecated, write --fsdp_backward_prefetch", where);
    }
  return SHARDRT_OK;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

shardrt_status shardrt__overrides_append(char *buf, size_t cap, const char *flag_name, const char *value) {
  size_t used = strlen(buf);
  char tok[3 * SHARDRT_PATH_MAX + SHARDRT_NAME_MAX];
  size_t t = (size_t)snprintf(tok, sizeof tok, "%s--%s", used ? " " : "", flag_name);
  if (value) {
    tok[t++] = '=';
    for (const unsigned char *p = (const unsigned char *)value; *p && t + 4 < sizeof tok; p++) {
      if (*p == '%' || *p <= ' ' || *p == 0x7f) t += (size_t)snprintf(tok + t, 4, "%%%02X", *p);
      else tok[t++] = (char)*p;
    }
    tok[t] = '\0';
  }
  if (used + t + 1 > cap)
    return shardrt__error(SHARDRT_ERR_CONFIG, "SHARDRT_OVERRIDES: the overrides exceed %zu bytes", cap - 1);
  memcpy(buf + used, tok, t + 1);
  return SHARDRT_OK;
}

/* Splits and percent-decodes SHARDRT_OVERRIDES in place into toks. */
static shardrt_status decode_overrides(char *s, char **toks, int max, int *n) {
  *n = 0;
  char *p = s;
  while (*p) {
    while (*p == ' ') p++;
    if (!*p) break;
    if (*n == max) return shardrt__error(SHARDRT_ERR_CONFIG, "SHARDRT_OVERRIDES: more than %d options", max);
    char *start = p, *out = p;
    for (; *p && *p != ' '; p++) {
      if (*p == '%') {
        int hi = hexval(p[1]), lo = hi >= 0 ? hexval(p[2]) : -1;
        if (hi < 0 || lo < 0)
          return shardrt__error(SHARDRT_ERR_CONFIG, "SHARDRT_OVERRIDES: bad %%-escape in '%.60s'", start);
        *out++ = (char)(hi * 16 + lo);
        p += 2;
      } else {
        *out++ = *p;
      }
    }
    bool end = *p == '\0';
    *out = '\0';
    toks[(*n)++] = start;
    if (!end) p++;
  }
  return SHARDRT_OK;
}

#define MAX_OPTS 256

shardrt_status shardrt_plan_from_args(int *argc, char **argv, shardrt_plan *plan) {
  if (!argc || !plan || (*argc > 0 && !argv) || *argc < 0)
    return shardrt__error(SHARDRT_ERR_INVALID_ARGUMENT, "shardrt_plan_from_args: NULL or negative argument");
  shardrt_plan_default(plan);
  int n = *argc;
  shardrt_status rc = SHARDRT_OK;
  shardrt__cfg *c = malloc(sizeof *c);
  bool *consumed = calloc((size_t)n + 1, sizeof *consumed);
  opt *opts = malloc(sizeof(opt) * (size_t)(n + 1));
  opt *env_opts = malloc(sizeof(opt) * MAX_OPTS);
  char *env_copy = NULL;
  if (!c || !consumed || !opts || !env_opts) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "shardrt_plan_from_args: out of memory");
    goto done;
  }
  shardrt__cfg_init(c, plan);
  int n_opts = 0, n_env = 0;
  SHARDRT__CHECK_GOTO(scan(argv + (n > 0), n > 0 ? n - 1 : 0, "command line", false, opts, &n_opts,
                           consumed + (n > 0)), rc, done);

  const char *env = getenv("SHARDRT_OVERRIDES");
  if (env && *env) {
    env_copy = strdup(env);
    char *toks[MAX_OPTS];
    int nt = 0;
    if (!env_copy) {
      rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "shardrt_plan_from_args: out of memory");
      goto done;
    }
    SHARDRT__CHECK_GOTO(decode_overrides(env_copy, toks, MAX_OPTS, &nt), rc, done);
    SHARDRT__CHECK_GOTO(scan(toks, nt, "SHARDRT_OVERRIDES", true, env_opts, &n_env, NULL), rc, done);
  }

  const char *file = NULL;
  for (int i = 0; i < n_opts; i++)
    if (opts[i].f->field == F_CONFIG_FILE) file = opts[i].value;
  if (!file) {
    for (int i = 0; i < n_env; i++)
      if (env_opts[i].f->field == F_CONFIG_FILE) file = env_opts[i].value;
  }
  if (!file) {
    const char *ef = getenv("SHARDRT_CONFIG_FILE");
    if (ef && *ef) file = ef;
  }
  if (file) SHARDRT__CHECK_GOTO(shardrt__cfg_load_file(c, file), rc, done);
  SHARDRT__CHECK_GOTO(apply(c, env_opts, n_env, "SHARDRT_OVERRIDES"), rc, done);
  SHARDRT__CHECK_GOTO(apply(c, opts, n_opts, "command line"), rc, done);
  SHARDRT__CHECK_GOTO(shardrt__cfg_finish(c, plan), rc, done);

  /* Success: drop what was consumed so the program sees only its own. */
  int w = 0;
  for (int i = 0; i < n; i++)
    if (!consumed[i]) argv[w++] = argv[i];
  for (int i = w; i < n; i++) argv[i] = NULL;
  *argc = w;
done:
  if (rc != SHARDRT_OK) shardrt_plan_default(plan);
  free(env_copy);
  free(env_opts);
  free(opts);
  free(consumed);
  free(c);
  return rc;
}
