/* SPDX-License-Identifier: Apache-2.0 */
/* The DeepSpeed JSON "optimizer" and "scheduler" sections: each value as it
 * is read, then the checks that need the whole section (which parameters
 * the named type takes: DeepSpeed passes "params" to its constructor, so any
 * other is an error there too), DeepSpeed's defaults, and the plan.
 * Names and defaults: deepspeed/runtime/engine.py (_configure_basic_optimizer)
 * and deepspeed/runtime/lr_schedules.py. "auto" and absent values are left to
 * the program (src/core/schedule.c applies both). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "src/config/config_internal.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const optim_names[] = {"AdamW", "Adam", "SGD"};
/* DeepSpeed's other optimizers and the rest of torch.optim: an error that
 * says "not supported" rather than "invalid value". */
static const char *const optim_foreign[] = {"OneBitAdam", "ZeroOneAdam", "OneBitLamb", "Lamb",     "Lion",
                                            "Adagrad",    "MuAdam",      "MuAdamW",    "MuSGD",    "Adafactor",
                                            "RMSprop",    "Adadelta",    "Adamax",     "NAdam",    "RAdam",
                                            "LBFGS",      "ASGD",        "Rprop",      "SparseAdam"};
static const char *const sched_names[] = {"WarmupLR", "WarmupDecayLR", "WarmupCosineLR"};
static const char *const sched_foreign[] = {"OneCycle",        "LRRangeTest",   "StepLR",     "MultiStepLR",
                                            "ExponentialLR",   "CosineAnnealingLR", "LambdaLR", "ReduceLROnPlateau",
                                            "CyclicLR",        "OneCycleLR",    "LinearLR",   "ConstantLR",
                                            "PolynomialLR",    "SequentialLR",  "MultiplicativeLR",
                                            "CosineAnnealingWarmRestarts"};
static const char *const warmup_names[] = {"log", "linear"};

/* A number in [lo, hi) (hi_open) or [lo, hi]; lo_open excludes lo. */
static shardrt_status get_num(const shardrt__val *v, double lo, bool lo_open, double hi, bool hi_open, double *out) {
  char allowed[96];
  if (isinf(hi)) snprintf(allowed, sizeof allowed, "a number %s %g", lo_open ? ">" : ">=", lo);
  else snprintf(allowed, sizeof allowed, "a number in %c%g, %g%c", lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']');
  double x;
  if (!shardrt__parse_double(v->text, &x)) return shardrt__cfg_invalid(v, allowed, NULL);
  if (!(x > lo || (!lo_open && x == lo)) || !(x < hi || (!hi_open && x == hi)))
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: %g is out of range (allowed: %s)", v->where, v->key, x,
                          allowed);
  *out = x;
  return SHARDRT_OK;
}

static shardrt_status get_count(const shardrt__val *v, int64_t *out) {
  int64_t i;
  if (!shardrt__parse_i64(v->text, &i)) return shardrt__cfg_invalid(v, "an integer >= 1", NULL);
  if (i < 1 || i > INT64_MAX / 4)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: %lld is out of range (allowed: an integer >= 1)", v->where,
                          v->key, (long long)i);
  *out = i;
  return SHARDRT_OK;
}

static shardrt_status get_bool(const shardrt__val *v, bool *out) {
  if (!shardrt__parse_bool(v->text, out)) return shardrt__cfg_invalid(v, "true or false", NULL);
  return SHARDRT_OK;
}

/* A knob libshardrt supports at one value only (DeepSpeed's default). */
static shardrt_status only(const shardrt__val *v, bool ok, const char *allowed, const char *why) {
  if (ok) return SHARDRT_OK;
  return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: '%.100s' is not supported (allowed: %s): %s", v->where, v->key,
                        v->text, allowed, why);
}

static shardrt_status get_type(const shardrt__val *v, const char *const *names, int n, const char *const *foreign,
                               int nforeign, int *out) {
  char allowed[128];
  shardrt__join(allowed, sizeof allowed, names, n);
  int k = shardrt__enum_find(v->text, foreign, nforeign, false);
  if (k >= 0)
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: %s: %s is not supported by libshardrt (allowed: %s)", v->where,
                          v->key, foreign[k], allowed);
  *out = shardrt__enum_find(v->text, names, n, false);
  if (*out < 0) return shardrt__cfg_invalid(v, allowed, shardrt__closest(v->text, names, n));
  return SHARDRT_OK;
}

/* "[0.9, 0.999]" arrives joined as "0.9,0.999". */
static shardrt_status get_betas(const shardrt__val *v, double *b1, double *b2) {
  char buf[128];
  const char *comma = strchr(v->text, ',');
  if (!comma || strchr(comma + 1, ',') || strlen(v->text) >= sizeof buf)
    return shardrt__cfg_invalid(v, "a list of two numbers in [0, 1), such as [0.9, 0.999]", NULL);
  snprintf(buf, sizeof buf, "%.*s", (int)(comma - v->text), v->text);
  shardrt__val one = *v, two = *v;
  one.text = buf;
  two.text = comma + 1;
  while (*two.text == ' ') two.text++;
  SHARDRT__CHECK(get_num(&one, 0, false, 1, true, b1));
  return get_num(&two, 0, false, 1, true, b2);
}

shardrt_status shardrt__cfg_set_optim(shardrt__cfg *c, shardrt__field f, const shardrt__val *v) {
  shardrt_plan_optimizer *o = &c->optim;
  shardrt_plan_scheduler *s = &c->sched;
  bool b = false;
  double x = 0;
  int e = 0;
  switch (f) {
    case SHARDRT__F_OPTIM_TYPE:
      SHARDRT__CHECK(get_type(v, optim_names, N(optim_names), optim_foreign, N(optim_foreign), &e));
      o->type = e == 2 ? SHARDRT_OPTIMIZER_SGD : SHARDRT_OPTIMIZER_ADAMW;
      c->optim_adam = e == 1;
      return SHARDRT_OK;
    case SHARDRT__F_OPT_LR: return get_num(v, 0, false, INFINITY, false, &o->lr);
    case SHARDRT__F_OPT_BETAS: return get_betas(v, &o->beta1, &o->beta2);
    case SHARDRT__F_OPT_EPS: return get_num(v, 0, true, INFINITY, false, &o->eps);
    case SHARDRT__F_OPT_WD: return get_num(v, 0, false, INFINITY, false, &o->weight_decay);
    case SHARDRT__F_OPT_MOMENTUM: return get_num(v, 0, false, INFINITY, false, &o->momentum);
    case SHARDRT__F_OPT_ADAM_W_MODE: return get_bool(v, &c->adam_w_mode);
    case SHARDRT__F_OPT_BIAS_CORRECTION:
      SHARDRT__CHECK(get_bool(v, &b));
      return only(v, b, "true", "the AdamW update always corrects the moments' bias");
    case SHARDRT__F_OPT_AMSGRAD:
      SHARDRT__CHECK(get_bool(v, &b));
      return only(v, !b, "false", "libshardrt has no AMSGrad variant");
    case SHARDRT__F_OPT_NESTEROV:
      SHARDRT__CHECK(get_bool(v, &b));
      return only(v, !b, "false", "libshardrt's SGD uses plain momentum");
    case SHARDRT__F_OPT_DAMPENING:
      SHARDRT__CHECK(get_num(v, 0, false, 1, false, &x));
      return only(v, x == 0, "0", "libshardrt's SGD momentum has no dampening");
    case SHARDRT__F_OPT_MAX_GRAD_NORM:
      /* DeepSpeed raises the same: clipping is a top-level setting. */
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "%s: %s: not an optimizer parameter (allowed: remove it and set the top-level "
                            "\"gradient_clipping\" instead, as DeepSpeed requires)", v->where, v->key);
    case SHARDRT__F_SCHED_TYPE:
      SHARDRT__CHECK(get_type(v, sched_names, N(sched_names), sched_foreign, N(sched_foreign), &e));
      s->type = (shardrt_lr_schedule)(SHARDRT_SCHEDULE_WARMUP_LR + e);
      return SHARDRT_OK;
    case SHARDRT__F_SCHED_MIN_LR: return get_num(v, 0, false, INFINITY, false, &s->warmup_min_lr);
    case SHARDRT__F_SCHED_MAX_LR: return get_num(v, 0, false, INFINITY, false, &s->warmup_max_lr);
    case SHARDRT__F_SCHED_WARMUP_STEPS: return get_count(v, &s->warmup_num_steps);
    case SHARDRT__F_SCHED_WARMUP_TYPE:
      /* DeepSpeed falls back to log with a warning; a typo here changes the
       * whole warmup, so it is an error. */
      e = shardrt__enum_find(v->text, warmup_names, N(warmup_names), false);
      if (e < 0) return shardrt__cfg_invalid(v, "log, linear", shardrt__closest(v->text, warmup_names, N(warmup_names)));
      s->warmup_type = (shardrt_warmup_type)e;
      return SHARDRT_OK;
    case SHARDRT__F_SCHED_TOTAL: return get_count(v, &s->total_num_steps);
    case SHARDRT__F_SCHED_MIN_RATIO: return get_num(v, 0, false, INFINITY, false, &s->warmup_min_ratio);
    case SHARDRT__F_SCHED_COS_MIN_RATIO: return get_num(v, 0, false, INFINITY, false, &s->cos_min_ratio);
    default: break;
  }
  return shardrt__error(SHARDRT_ERR_INTERNAL, "%s: %s: field %d is not an optimizer or scheduler field", v->where,
                        v->key, (int)f);
}

/* ---- the sections as a whole ---- */

static bool is_set(const shardrt__cfg *c, shardrt__field f) { return c->from[f] != SHARDRT__FROM_NONE; }
static bool given(const shardrt__cfg *c, shardrt__field f) { return is_set(c, f) && !c->is_auto[f]; }

/* The first field of [first, last] that was set, or -1. */
static int first_set(const shardrt__cfg *c, int first, int last) {
  for (int f = first; f <= last; f++)
    if (is_set(c, (shardrt__field)f)) return f;
  return -1;
}

/* Every field of [first, last] that was set must be one of ok[]. */
static shardrt_status check_fits(const shardrt__cfg *c, int first, int last,
                                 const shardrt__field *ok, int nok, const char *type, const char *allowed) {
  for (int f = first; f <= last; f++) {
    if (!is_set(c, (shardrt__field)f)) continue;
    bool fits = false;
    for (int i = 0; i < nok; i++) fits = fits || ok[i] == (shardrt__field)f;
    if (!fits)
      return shardrt__error(SHARDRT_ERR_CONFIG, "%s: not a parameter of %s (allowed: %s)", c->where[f], type, allowed);
  }
  return SHARDRT_OK;
}

static shardrt_status finish_optimizer(const shardrt__cfg *c, shardrt_plan *plan) {
  int any = first_set(c, SHARDRT__F_OPT_LR, SHARDRT__F_OPT_MAX_GRAD_NORM);
  if (!is_set(c, SHARDRT__F_OPTIM_TYPE)) {
    if (any < 0) return SHARDRT_OK; /* no section (or an empty one): the program's optimizer */
    return shardrt__error(SHARDRT_ERR_CONFIG, "%s: the optimizer section has no \"type\" (allowed: AdamW, Adam, SGD)",
                          c->where[any]);
  }
  shardrt_plan_optimizer o = c->optim;
  bool sgd = o.type == SHARDRT_OPTIMIZER_SGD;
  static const shardrt__field sgd_params[] = {SHARDRT__F_OPT_LR, SHARDRT__F_OPT_MOMENTUM, SHARDRT__F_OPT_WD,
                                              SHARDRT__F_OPT_NESTEROV, SHARDRT__F_OPT_DAMPENING};
  static const shardrt__field adam_params[] = {SHARDRT__F_OPT_LR,          SHARDRT__F_OPT_BETAS,
                                               SHARDRT__F_OPT_EPS,         SHARDRT__F_OPT_WD,
                                               SHARDRT__F_OPT_ADAM_W_MODE, SHARDRT__F_OPT_BIAS_CORRECTION,
                                               SHARDRT__F_OPT_AMSGRAD};
  if (sgd)
    SHARDRT__CHECK(check_fits(c, SHARDRT__F_OPT_LR, SHARDRT__F_OPT_DAMPENING, sgd_params, N(sgd_params), "SGD",
                              "lr, momentum, weight_decay, nesterov, dampening"));
  else
    SHARDRT__CHECK(check_fits(c, SHARDRT__F_OPT_LR, SHARDRT__F_OPT_DAMPENING, adam_params, N(adam_params),
                              c->optim_adam ? "Adam" : "AdamW",
                              "lr, betas, eps, weight_decay, adam_w_mode, bias_correction, amsgrad, torch_adam"));
  o.given = 0;
  if (given(c, SHARDRT__F_OPT_LR)) o.given |= SHARDRT_GIVEN_LR;
  if (given(c, SHARDRT__F_OPT_BETAS)) o.given |= SHARDRT_GIVEN_BETAS;
  if (given(c, SHARDRT__F_OPT_EPS)) o.given |= SHARDRT_GIVEN_EPS;
  if (given(c, SHARDRT__F_OPT_WD)) o.given |= SHARDRT_GIVEN_WEIGHT_DECAY;
  if (given(c, SHARDRT__F_OPT_MOMENTUM)) o.given |= SHARDRT_GIVEN_MOMENTUM;
  /* DeepSpeed runs "Adam" as AdamW unless adam_w_mode is false (and "AdamW"
   * always): then the decay is L2, added to the gradient before the moments.
   * That equals AdamW only without decay. DeepSpeed's Adam decays by 0 when
   * weight_decay is absent. */
  if (c->optim_adam && !c->adam_w_mode) {
    if (!is_set(c, SHARDRT__F_OPT_WD)) {
      o.weight_decay = 0;
      o.given |= SHARDRT_GIVEN_WEIGHT_DECAY;
    } else if (c->is_auto[SHARDRT__F_OPT_WD] || o.weight_decay != 0) {
      return shardrt__error(SHARDRT_ERR_CONFIG,
                            "%s: with %s, Adam decays weights by L2 on the gradient, which libshardrt does not do "
                            "(allowed: weight_decay 0, or adam_w_mode true for AdamW's decoupled decay)",
                            c->where[SHARDRT__F_OPT_WD], c->where[SHARDRT__F_OPT_ADAM_W_MODE]);
    }
  }
  plan->optimizer = o;
  return SHARDRT_OK;
}

static shardrt_status finish_scheduler(const shardrt__cfg *c, shardrt_plan *plan) {
  int any = first_set(c, SHARDRT__F_SCHED_MIN_LR, SHARDRT__F_SCHED_COS_MIN_RATIO);
  if (!is_set(c, SHARDRT__F_SCHED_TYPE)) {
    if (any < 0) return SHARDRT_OK;
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "%s: the scheduler section has no \"type\" (allowed: WarmupLR, WarmupDecayLR, WarmupCosineLR)",
                          c->where[any]);
  }
  shardrt_plan_scheduler s = c->sched;
  static const shardrt__field warmup[] = {SHARDRT__F_SCHED_MIN_LR, SHARDRT__F_SCHED_MAX_LR,
                                          SHARDRT__F_SCHED_WARMUP_STEPS, SHARDRT__F_SCHED_WARMUP_TYPE,
                                          SHARDRT__F_SCHED_TOTAL};
  static const shardrt__field cosine[] = {SHARDRT__F_SCHED_TOTAL, SHARDRT__F_SCHED_MIN_RATIO,
                                          SHARDRT__F_SCHED_WARMUP_STEPS, SHARDRT__F_SCHED_COS_MIN_RATIO,
                                          SHARDRT__F_SCHED_WARMUP_TYPE};
  const char *name = shardrt_lr_schedule_name(s.type);
  int first = SHARDRT__F_SCHED_MIN_LR, last = SHARDRT__F_SCHED_COS_MIN_RATIO;
  if (s.type == SHARDRT_SCHEDULE_WARMUP_LR) /* warmup[] without total_num_steps */
    SHARDRT__CHECK(check_fits(c, first, last, warmup, N(warmup) - 1, name,
                              "warmup_min_lr, warmup_max_lr, warmup_num_steps, warmup_type"));
  else if (s.type == SHARDRT_SCHEDULE_WARMUP_DECAY_LR)
    SHARDRT__CHECK(check_fits(c, first, last, warmup, N(warmup), name,
                              "total_num_steps, warmup_min_lr, warmup_max_lr, warmup_num_steps, warmup_type"));
  else
    SHARDRT__CHECK(check_fits(c, first, last, cosine, N(cosine), name,
                              "total_num_steps, warmup_min_ratio, warmup_num_steps, cos_min_ratio, warmup_type"));
  s.given = 0;
  if (c->is_auto[SHARDRT__F_SCHED_MIN_LR]) s.warmup_min_lr = 0; /* accelerate and transformers fill 0 */
  if (given(c, SHARDRT__F_SCHED_MAX_LR)) {
    s.given |= SHARDRT_GIVEN_WARMUP_MAX_LR;
  } else if (!is_set(c, SHARDRT__F_SCHED_MAX_LR)) {
    /* Absent: DeepSpeed's default, which is WarmupDecayLR's 0.001 and
     * WarmupLR's optimizer lr (the program's unless the JSON gives one).
     * "auto" is the program's lr, as accelerate fills it. */
    if (s.type == SHARDRT_SCHEDULE_WARMUP_DECAY_LR) {
      s.warmup_max_lr = 0.001;
      s.given |= SHARDRT_GIVEN_WARMUP_MAX_LR;
    } else if (plan->optimizer.type != SHARDRT_OPTIMIZER_PROGRAM && (plan->optimizer.given & SHARDRT_GIVEN_LR)) {
      s.warmup_max_lr = plan->optimizer.lr;
      s.given |= SHARDRT_GIVEN_WARMUP_MAX_LR;
    }
  }
  if (!c->is_auto[SHARDRT__F_SCHED_WARMUP_STEPS]) s.given |= SHARDRT_GIVEN_WARMUP_NUM_STEPS; /* or the 1000 default */
  if (given(c, SHARDRT__F_SCHED_TOTAL)) s.given |= SHARDRT_GIVEN_TOTAL_NUM_STEPS;
  plan->scheduler = s;
  return SHARDRT_OK;
}

shardrt_status shardrt__cfg_optim_finish(const shardrt__cfg *c, shardrt_plan *plan) {
  SHARDRT__CHECK(finish_optimizer(c, plan));
  return finish_scheduler(c, plan);
}
