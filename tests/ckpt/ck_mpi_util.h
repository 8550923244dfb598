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

#endif
