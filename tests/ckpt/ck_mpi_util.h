/* SPDX-License-Identifier: Apache-2.0 */
/* MPI-side helpers for the multi-rank checkpoint tests. */
#ifndef CK_MPI_UTIL_H
#define CK_MPI_UTIL_H

#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "ckpt_test_util.h"

/* A scratch directory every rank sees (created by rank 0, name broadcast). */
static inline void ck_shared_tmpdir(char *buf, size_t len, const char *tag) {
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  memset(buf, 0, len);
  if (rank == 0 && !ck_tmpdir(buf, len, tag)) buf[0] = '\0';
  MPI_Bcast(buf, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD);
}

static inline void ck_shared_rm(const char *dir) {
  int rank;
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) ck_rm_rf(dir);
}

#ifdef cmocka_unit_test /* the test suites (the benchmark includes this file too) */
/* The multi-rank checkpoint suites share one scratch directory per group
 * and one way to end: every rank exits failed if any rank failed. */
static char g_tmp[4096];
static const char *ck_group_tag = "ckpt";

static inline int ck_group_setup(void **state) {
  (void)state;
  ck_shared_tmpdir(g_tmp, sizeof g_tmp, ck_group_tag);
  return g_tmp[0] ? 0 : -1;
}

static inline int ck_group_teardown(void **state) {
  (void)state;
  ck_shared_rm(g_tmp);
  return 0;
}

/* Runs the group with the shared scratch directory, then MPI_Finalize. */
static inline int ck_mpi_run(const char *tag, const struct CMUnitTest *tests, size_t n) {
  ck_group_tag = tag;
  int rc = _cmocka_run_group_tests(tag, tests, n, ck_group_setup, ck_group_teardown);
  int any = 0;
  MPI_Allreduce(&rc, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any ? 1 : 0;
}
#endif

#endif
