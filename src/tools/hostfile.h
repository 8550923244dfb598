/* SPDX-License-Identifier: Apache-2.0 */
/* Hostfiles for multi-host `shardrt launch`: Open MPI's and DeepSpeed's
 * common format, one `HOST slots=N` per line, `#` comments. */
#ifndef SHARDRT_TOOL_HOSTFILE_H
#define SHARDRT_TOOL_HOSTFILE_H

#include <stdio.h>

#define SHARDRT_HOSTFILE_MAX_HOSTS 4096

typedef struct shardrt_hostfile {
  int nhosts;
  char (*host)[256]; /* [nhosts] */
  int *slots;        /* [nhosts] */
} shardrt_hostfile;

/* Reads `path`. On failure returns -1 with a message naming the file, the
 * line and what is allowed in err. */
int shardrt_hostfile_read(const char *path, shardrt_hostfile *hf, char *err, size_t errcap);
/* Checks that the first num_machines hosts each have slots for
 * num_processes / num_machines ranks; -1 with a message naming both the
 * hostfile and the config otherwise. */
int shardrt_hostfile_check(const shardrt_hostfile *hf, const char *path, int num_processes, int num_machines,
                           char *err, size_t errcap);
void shardrt_hostfile_free(shardrt_hostfile *hf);

#endif
