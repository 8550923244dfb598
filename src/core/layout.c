/* SPDX-License-Identifier: Apache-2.0 */
/* Node layout: which ranks share a host, learned from MPI's shared-memory
 * split rather than assumed from rank numbers, and the runtime's world
 * communicator numbered host by host from it. HYBRID_SHARD (and ZeRO++ hpZ,
 * which runs as HYBRID_SHARD) keep their shard groups inside a host so the
 * parameter all-gathers never cross the inter-host link; the groups are
 * formed as consecutive runs of `shard_group_size` runtime ranks, so the
 * runtime's ranks must be contiguous by host, and this file makes them so.
 *
 * All decisions are taken from integers every rank holds identically (the
 * gathered leader of each rank), so every rank fails or succeeds together. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/config/config_internal.h"
#include "src/core/ctx.h"

/* Host names of every rank (MPI_Get_processor_name), gathered only to word
 * an error or a note. names[r * MPI_MAX_PROCESSOR_NAME]. Collective. */
static char *gather_names(MPI_Comm base, int world) {
  char mine[MPI_MAX_PROCESSOR_NAME] = "";
  int len = 0;
  MPI_Get_processor_name(mine, &len);
  char *all = calloc((size_t)world, MPI_MAX_PROCESSOR_NAME);
  int ok = all != NULL, all_ok = 0;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, base);
  if (!all_ok) return free(all), NULL;
  MPI_Allgather(mine, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, base);
  return all;
}

/* "hostA: 2 ranks (0-1), hostB: 2 ranks (2-3)" over the first few hosts. */
static void describe_hosts(char *out, size_t cap, const char *names, const int *node, const int *count, int nodes,
                           int world) {
  size_t w = 0;
  out[0] = '\0';
  for (int h = 0; h < nodes && w + 80 < cap; h++) {
    if (h == 8) {
      snprintf(out + w, cap - w, ", ... (%d hosts)", nodes);
      return;
    }
    int first = -1;
    for (int r = 0; r < world && first < 0; r++)
      if (node[r] == h) first = r;
    w += (size_t)snprintf(out + w, cap - w, "%s%.40s: %d rank%s (", h ? ", " : "",
                          names ? names + (size_t)first * MPI_MAX_PROCESSOR_NAME : "?", count[h],
                          count[h] == 1 ? "" : "s");
    int shown = 0;
    for (int r = 0; r < world && w + 16 < cap; r++) {
      if (node[r] != h) continue;
      if (shown == 4) {
        w += (size_t)snprintf(out + w, cap - w, " ...");
        break;
      }
      w += (size_t)snprintf(out + w, cap - w, "%s%d", shown++ ? " " : "", r);
    }
    if (w + 2 < cap) w += (size_t)snprintf(out + w, cap - w, ")");
  }
}

static bool hybrid_strategy(shardrt_strategy s) { return s == SHARDRT_HYBRID_SHARD || s == SHARDRT_HYBRID_SHARD_ZERO2; }

shardrt_status shardrt__layout_setup(shardrt_ctx *ctx, MPI_Comm base) {
  int rank, world;
  MPI_Comm_rank(base, &rank);
  MPI_Comm_size(base, &world);
  /* A host's leader is its lowest rank; hosts are numbered by their leaders. */
  MPI_Comm local;
  int leader = rank;
  if (MPI_Comm_split_type(base, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local) != MPI_SUCCESS)
    return shardrt__error(SHARDRT_ERR_COMM, "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed: cannot learn which "
                                            "ranks share a host");
  MPI_Comm_rank(local, &ctx->local_rank);
  MPI_Comm_size(local, &ctx->local_size);
  MPI_Allreduce(&rank, &leader, 1, MPI_INT, MPI_MIN, local);
  MPI_Comm_free(&local);

  shardrt_status rc = SHARDRT_OK;
  int *lead = malloc(sizeof(int) * (size_t)world * 3);
  int ok = lead != NULL, all_ok = 0;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, base);
  if (!all_ok) return free(lead), shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "node layout tables (%d ranks)", world);
  int *node = lead + world, *count = lead + 2 * world;
  MPI_Allgather(&leader, 1, MPI_INT, lead, 1, MPI_INT, base);
  /* Leaders are ranks, so a host's index is how many leaders come before
   * its own: node[] first holds that prefix count, then the index. */
  int nodes = 0;
  for (int r = 0; r < world; r++) {
    node[r] = nodes;
    nodes += lead[r] == r;
  }
  memset(count, 0, sizeof(int) * (size_t)world);
  for (int r = 0; r < world; r++) count[node[lead[r]]]++;
  for (int r = world - 1; r >= 0; r--) node[r] = node[lead[r]];
  bool contiguous = true;
  for (int r = 1; r < world; r++) contiguous = contiguous && node[r] >= node[r - 1];
  bool equal = true;
  for (int h = 1; h < nodes; h++) equal = equal && count[h] == count[0];
  ctx->nodes = nodes;

  shardrt_plan *p = &ctx->plan;
  char *names = NULL;
  char hosts[1024];
  bool need_names = nodes > 1 && ((p->num_machines > 1 && p->num_machines != nodes) ||
                                  (hybrid_strategy(p->strategy) && !equal) || !contiguous);
  if (need_names) {
    names = gather_names(base, world);
    describe_hosts(hosts, sizeof hosts, names, node, count, nodes, world);
  }
  /* One host: a multi-machine config is simulated on it (the tests' way of
   * running HYBRID_SHARD on one machine), so the config's groups stand. */
  if (nodes > 1 && p->num_machines > 1 && p->num_machines != nodes) {
    rc = shardrt__error(SHARDRT_ERR_CONFIG,
                        "the config says num_machines %d but the %d ranks run on %d hosts (%s): set num_machines "
                        "to %d or fix the hostfile",
                        p->num_machines, world, nodes, hosts, nodes);
    goto done;
  }
  if (nodes > 1 && hybrid_strategy(p->strategy) && !equal) {
    rc = shardrt__error(SHARDRT_ERR_CONFIG,
                        "%s needs the same number of ranks on every host, but they differ (%s): give every host "
                        "num_processes / num_machines slots",
                        shardrt_strategy_name(p->strategy), hosts);
    goto done;
  }
  if (nodes > 1 && hybrid_strategy(p->strategy) && p->shard_group_size <= 0 && p->num_machines <= 1) {
    /* Unambiguous: the config did not say, the hosts do. */
    shardrt__warn("%s: the config leaves num_machines at 1 but the ranks run on %d hosts of %d ranks: shard groups "
                  "follow the hosts (num_machines %d)",
                  shardrt_strategy_name(p->strategy), nodes, count[0], nodes);
    p->num_machines = nodes;
  }
  if (!contiguous)
    shardrt__warn("the ranks of a host are not contiguous (%s): libshardrt numbers its ranks host by host, so "
                  "shardrt_rank() differs from the MPI rank (launch with ranks placed by slot, as shardrt launch "
                  "does, to keep them equal)",
                  hosts);
  /* Host-major order; inside a host, MPI's order. */
  int key = 0;
  for (int h = 0; h < node[rank]; h++) key += count[h];
  for (int r = 0; r < rank; r++) key += node[r] == node[rank];
  if (MPI_Comm_split(base, 0, key, &ctx->mpi_world) != MPI_SUCCESS) {
    rc = shardrt__error(SHARDRT_ERR_COMM, "MPI_Comm_split (ranks numbered by host) failed");
    goto done;
  }
  /* ctx->node[] in the runtime's numbering: ranks [first, first + count) per host. */
  ctx->host_of = malloc(sizeof(int) * (size_t)world);
  if (!ctx->host_of) {
    rc = shardrt__error(SHARDRT_ERR_OUT_OF_MEMORY, "node layout table (%d ranks)", world);
    goto done;
  }
  for (int h = 0, k = 0; h < nodes; h++)
    for (int c = 0; c < count[h]; c++) ctx->host_of[k++] = h;
done:
  free(names);
  free(lead);
  return rc;
}

shardrt_status shardrt__layout_check_groups(shardrt_ctx *ctx) {
  const shardrt_plan *p = &ctx->plan;
  int g = p->shard_group_size, world = ctx->world, r = ctx->rank;
  memset(ctx->group_cross, 0, sizeof ctx->group_cross);
  if (ctx->nodes <= 1) return SHARDRT_OK;
  int per_host = world / ctx->nodes; /* equal when hybrid (checked above) */
  if (p->hybrid && g % per_host && per_host % g)
    return shardrt__error(SHARDRT_ERR_CONFIG,
                          "%s: shard group size %d straddles hosts of %d ranks each (%d hosts): use a divisor of %d "
                          "(groups inside a host) or a multiple of it",
                          shardrt_strategy_name(p->strategy), g, per_host, ctx->nodes, per_host);
  if (p->hybrid && g > per_host)
    shardrt__warn("%s: shard group size %d spans %d hosts of %d ranks: parameter all-gathers cross hosts",
                  shardrt_strategy_name(p->strategy), g, g / per_host, per_host);
  ctx->group_cross[SHARDRT__GROUP_WORLD] = true;
  int first = r / g * g;
  ctx->group_cross[SHARDRT__GROUP_SHARD] = ctx->host_of[first] != ctx->host_of[first + g - 1];
  for (int q = r % g; q < world; q += g)
    if (ctx->host_of[q] != ctx->host_of[r]) ctx->group_cross[SHARDRT__GROUP_REPLICA] = true;
  return SHARDRT_OK;
}

int shardrt_num_hosts(const shardrt_ctx *ctx) { return ctx ? ctx->nodes : 0; }
