/* SPDX-License-Identifier: Apache-2.0 */
/* Probe run by the `shardrt launch` test: each rank reads its plan the way a
 * training program does and prints what it got. With PROBE_FAIL_RANK=r,
 * rank r exits with status 3 so the test can check failure propagation. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "shardrt.h"

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  shardrt_plan plan;
  if (shardrt_plan_from_args(&argc, argv, &plan) != SHARDRT_OK) {
    fprintf(stderr, "probe rank %d: %s\n", rank, shardrt_last_error());
    MPI_Abort(MPI_COMM_WORLD, 4);
  }
  const char *fail = getenv("PROBE_FAIL_RANK");
  if (fail && atoi(fail) == rank) {
    fprintf(stderr, "probe rank %d: failing on purpose\n", rank);
    return 3;
  }
  if (shardrt_plan_resolve(&plan, world) != SHARDRT_OK) {
    fprintf(stderr, "probe rank %d: %s\n", rank, shardrt_last_error());
    MPI_Abort(MPI_COMM_WORLD, 5);
  }
  printf("probe rank=%d world=%d strategy=%s mp=%s left=%d", rank, world, shardrt_strategy_name(plan.strategy),
         shardrt_mixed_precision_name(plan.mixed_precision), argc - 1);
  for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
  printf("\n");
  fflush(stdout);
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
  return 0;
}
