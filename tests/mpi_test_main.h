/* SPDX-License-Identifier: Apache-2.0 */
/* main() of the multi-rank cmocka tests: every rank runs the group (named
 * by prefix, world size and rank), and the exit status is the same on every
 * rank — failed if any rank failed — so mpirun reports it once. */
#ifndef SHARDRT_MPI_TEST_MAIN_H
#define SHARDRT_MPI_TEST_MAIN_H

#include <mpi.h>
#include <stdio.h>

static int g_rank, g_world;

static inline void shardrt_test_mpi_init(void) {
  int provided;
  MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world);
}

#define SHARDRT_TEST_MPI_RUN(prefix, tests)                                                   \
  do {                                                                                        \
    char name__[96];                                                                          \
    snprintf(name__, sizeof name__, "%s_world%d_rank%d", (prefix), g_world, g_rank);          \
    int failed__ = _cmocka_run_group_tests(name__, (tests), sizeof(tests) / sizeof((tests)[0]), \
                                           NULL, NULL);                                       \
    int any__ = 0;                                                                            \
    MPI_Allreduce(&failed__, &any__, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);                    \
    MPI_Finalize();                                                                           \
    return any__ ? 1 : 0;                                                                     \
  } while (0)

#endif
