/* SPDX-License-Identifier: Apache-2.0 */
/* `shardrt estimate-time`: a cost model on paper for a cluster, every
 * strategy side by side: the bytes each rank sends inside its node and across
 * nodes per optimizer step, the least that must leave each node, the
 * communication time at the given link speeds, and how much of it must hide
 * under compute. The collectives per step are the runtime's (src/strategy/):
 *   NO_SHARD            all-reduce grads (world)
 *   ZERO1               all-reduce grads (world), all-gather params after the update
 *   SHARD_GRAD_OP       reduce-scatter grads, all-gather params after the update
 *   FULL_SHARD          all-gather params in forward and again in backward, reduce-scatter grads
 *   HYBRID_SHARD        FULL_SHARD inside each node, all-reduce of each shard across nodes
 *   HYBRID_SHARD_ZERO2  SHARD_GRAD_OP inside each node, all-reduce of each shard across nodes
 * with gathers in the compute dtype, reductions in the reduce dtype and the
 * post-update gather in the stored-param dtype (shardrt_plan_resolve).
 *
 * Time of one collective of S bytes (nccl-tests' S) over k ranks: a ring
 * moves (k-1)/k S per rank for all-gather / reduce-scatter and twice that
 * for all-reduce; dividing by the bus bandwidth nccl-tests reports gives the
 * time. A group inside a node runs at the NVLink bus bandwidth; a group
 * spanning nodes at the per-rank network bandwidth (rail-optimised: one NIC
 * per GPU), the slower hop.
 *
 * Hiding: the forward all-gather of the first unit and the reduction of the
 * last one (1/num_units of each) have no compute to hide under, nor does the
 * post-update all-gather of ZeRO-1/2 (the step waits for it); the rest runs
 * under the other units' compute when there is enough of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardrt.h"
#include "src/tools/tool.h"

typedef struct tcost {
  double intra_bytes, inter_bytes; /* sent per rank per step, inside / across nodes */
  double node_out_bytes;           /* least bytes that must leave each node per step */
  double comm_s, exposed_s, hide_s;
} tcost;

typedef struct topo {
  int world, per_node, nodes, units;
  double intra_bw, inter_bw; /* bytes/s */
} topo;

/* One collective: kind 'g' all-gather, 'r' reduce-scatter, 'a' all-reduce;
 * S bytes over a group of k ranks, inside a node or spanning `span` nodes;
 * `exposed` is the fraction that cannot hide. */
static void coll(tcost *c, const topo *t, char kind, double S, int k, int span, double exposed) {
  if (k <= 1) return;
  double per_rank = (kind == 'a' ? 2.0 : 1.0) * S * (double)(k - 1) / k;
  double secs = per_rank / (span > 1 ? t->inter_bw : t->intra_bw);
  if (span > 1) {
    c->inter_bytes += per_rank;
    /* Groups spanning all nodes with k/span ranks on each: each node lacks
     * (span-1)/span of every gathered or reduced buffer of its ranks' groups. */
    double groups_per_node = (double)t->per_node / ((double)k / span);
    c->node_out_bytes += groups_per_node * (kind == 'a' ? 2.0 : 1.0) * S * (double)(span - 1) / span;
  } else {
    c->intra_bytes += per_rank;
  }
  c->comm_s += secs;
  c->exposed_s += exposed * secs;
}

static bool cost(const shardrt_plan *p, double n, const topo *t, tcost *c) {
  memset(c, 0, sizeof *c);
  size_t cdt = shardrt_dtype_size(p->compute_dtype), rdt = shardrt_dtype_size(p->reduce_dtype);
  size_t pdt = p->master_weights ? cdt : shardrt_dtype_size(p->flat_param_dtype);
  int W = t->world, G = t->per_node, H = t->nodes;
  double first = 1.0 / t->units;
  int g = p->hybrid ? G : W;                 /* shard group: a node when hybrid */
  int gspan = p->hybrid ? 1 : H;             /* nodes a shard group spans */
  switch (p->strategy) {
    case SHARDRT_NO_SHARD: coll(c, t, 'a', n * (double)rdt, W, H, first); break;
    case SHARDRT_ZERO1:
      coll(c, t, 'a', n * (double)rdt, W, H, first);
      coll(c, t, 'g', n * (double)pdt, W, H, 1.0);
      break;
    case SHARDRT_SHARD_GRAD_OP:
    case SHARDRT_HYBRID_SHARD_ZERO2:
      coll(c, t, 'r', n * (double)rdt, g, gspan, first);
      coll(c, t, 'g', n * (double)pdt, g, gspan, 1.0);
      break;
    case SHARDRT_FULL_SHARD:
    case SHARDRT_HYBRID_SHARD:
      coll(c, t, 'g', n * (double)cdt, g, gspan, first); /* forward */
      coll(c, t, 'g', n * (double)cdt, g, gspan, 0.0);   /* backward re-gather */
      coll(c, t, 'r', n * (double)rdt, g, gspan, first);
      break;
    default: return false;
  }
  if (p->hybrid) coll(c, t, 'a', n / G * (double)rdt, H, H, first); /* replicas: one rank per node */
  c->hide_s = c->comm_s - c->exposed_s;
  return true;
}

static int usage(FILE *f) {
  fprintf(f,
          "usage: shardrt estimate-time --num_params N [--world_size W] [--gpus_per_node G]\n"
          "         [--nvlink_GBps B] [--net_Gbps B] [--num_units U] [--compute_s T]\n"
          "         [--config_file F] [--mixed_precision no|fp16|bf16] [--format table|json]\n"
          "Communication per optimizer step of every strategy on W ranks, G per node: bytes each rank\n"
          "sends inside / across nodes, the least that must leave each node, the time at the NVLink\n"
          "bus bandwidth (default 370 GB/s, H100 all-gather/reduce-scatter as nccl-tests measures) and\n"
          "the per-rank network bandwidth (default 400 Gbit/s InfiniBand), and how much must hide\n"
          "under compute (with --compute_s: as a fraction of that compute). docs/multihost.md.\n");
  return f == stderr ? 2 : 0;
}

static int bad_arg(const char *msg, const char *a, const char *v) {
  fprintf(stderr, "shardrt estimate-time: error: %s %s%s%s\n", msg, a, v ? " " : "", v ? v : "");
  return 2;
}

int shardrt_cmd_estimate_time(int argc, char **argv) {
  shardrt_plan base;
  if (shardrt_plan_from_args(&argc, argv, &base) != SHARDRT_OK) {
    fprintf(stderr, "shardrt estimate-time: error: %s\n", shardrt_last_error());
    return 2;
  }
  double n = 0, nvlink = 370, net = 400, compute = 0, units = 32, world_d = 16, per_node_d = 8;
  bool json = false;
  struct {
    const char *flag;
    double *dst, min;
  } nums[] = {{"--num_params", &n, 1},         {"--world_size", &world_d, 1}, {"--gpus_per_node", &per_node_d, 1},
              {"--nvlink_GBps", &nvlink, 1e-9}, {"--net_Gbps", &net, 1e-9},    {"--num_units", &units, 1},
              {"--compute_s", &compute, 1e-12}};
  if (base.num_processes > 0) world_d = base.num_processes;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout);
    if (!v) return bad_arg("unknown argument or missing value:", a, NULL);
    bool known = false;
    if (!strcmp(a, "--format")) {
      if (strcmp(v, "json") && strcmp(v, "table")) return bad_arg("--format (allowed: table, json):", v, NULL);
      json = !strcmp(v, "json");
      known = true;
    }
    for (size_t k = 0; k < sizeof nums / sizeof nums[0] && !known; k++) {
      if (strcmp(a, nums[k].flag)) continue;
      char *end;
      double x = strtod(v, &end);
      if (end == v || *end || !(x >= nums[k].min))
        return bad_arg("needs a number >= the smallest allowed (counts >= 1, bandwidths and times > 0):", a, v);
      *nums[k].dst = x;
      known = true;
    }
    if (!known) return bad_arg("unknown argument", a, NULL), usage(stderr);
    i++;
  }
  if (!(n >= 1)) return bad_arg("--num_params N is required (N >= 1)", "", NULL), usage(stderr);
  topo t = {.world = (int)world_d, .per_node = (int)per_node_d, .units = (int)units,
            .intra_bw = nvlink * 1e9, .inter_bw = net * 1e9 / 8};
  if (t.per_node > t.world || t.world % t.per_node) {
    fprintf(stderr, "shardrt estimate-time: error: --world_size %d is not a multiple of --gpus_per_node %d\n",
            t.world, t.per_node);
    return 2;
  }
  t.nodes = t.world / t.per_node;
  base.num_processes = t.world;
  base.num_machines = t.nodes;
  tcost c[SHARDRT_STRATEGY_COUNT_];
  bool ok[SHARDRT_STRATEGY_COUNT_];
  for (int s = 0; s < SHARDRT_STRATEGY_COUNT_; s++) {
    shardrt_plan p = base;
    p.strategy = (shardrt_strategy)s;
    p.shard_group_size = 0;
    ok[s] = shardrt_plan_resolve(&p, t.world) == SHARDRT_OK && cost(&p, n, &t, &c[s]);
  }
  const char *rows[] = {"intra_node_bytes_per_rank", "inter_node_bytes_per_rank", "node_out_bytes",
                        "comm_s",                    "exposed_s",                 "must_hide_s"};
  if (json) {
    printf("{\"num_params\": %.0f, \"world_size\": %d, \"gpus_per_node\": %d, \"nodes\": %d, \"nvlink_GBps\": %g, "
           "\"net_Gbps\": %g, \"num_units\": %d, \"strategies\": {",
           n, t.world, t.per_node, t.nodes, nvlink, net, t.units);
    for (int s = 0, first = 1; s < SHARDRT_STRATEGY_COUNT_; s++) {
      if (!ok[s]) continue;
      const double *v = &c[s].intra_bytes;
      printf("%s\n  \"%s\": {", first ? "" : ",", shardrt_strategy_name((shardrt_strategy)s));
      for (int r = 0; r < 6; r++) printf("%s\"%s\": %.17g", r ? ", " : "", rows[r], v[r]);
      printf("}");
      first = 0;
    }
    printf("\n}}\n");
    return 0;
  }
  printf("communication per step for %.0f parameters on %d ranks (%d nodes x %d), NVLink %g GB/s bus, network %g "
         "Gbit/s per rank, %d units, mixed precision %s\n",
         n, t.world, t.nodes, t.per_node, nvlink, net, t.units, shardrt_mixed_precision_name(base.mixed_precision));
  printf("%-20s %14s %14s %14s %10s %10s %10s%s\n", "strategy", "intra/rank", "inter/rank", "out of a node",
         "comm", "exposed", "must hide", compute > 0 ? "  hide/compute" : "");
  for (int s = 0; s < SHARDRT_STRATEGY_COUNT_; s++) {
    if (!ok[s]) continue;
    printf("%-20s %12.3fGB %12.3fGB %12.3fGB %9.2fms %9.2fms %9.2fms", shardrt_strategy_name((shardrt_strategy)s),
           c[s].intra_bytes / 1e9, c[s].inter_bytes / 1e9, c[s].node_out_bytes / 1e9, c[s].comm_s * 1e3,
           c[s].exposed_s * 1e3, c[s].hide_s * 1e3);
    if (compute > 0) printf("  %12.2f", c[s].hide_s / compute);
    printf("\n");
  }
  if (compute > 0) printf("hide/compute above 1: the step is communication-bound whatever the overlap\n");
  return 0;
}
