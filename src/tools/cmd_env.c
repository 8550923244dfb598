/* SPDX-License-Identifier: Apache-2.0 */
/* `shardrt env`: what this build and machine are, for bug reports. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <yaml.h>

#include "shardrt.h"
#include "src/device/device.h"
#include "src/tools/tool.h"

#ifdef SHARDRT_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

static void cuda_report(void) {
#ifdef SHARDRT_HAVE_CUDA
  printf("cuda:             on (built with runtime %d.%d)\n", CUDART_VERSION / 1000, (CUDART_VERSION % 1000) / 10);
  int rt = 0, drv = 0;
  if (cudaRuntimeGetVersion(&rt) == cudaSuccess) printf("cuda runtime:     %d.%d\n", rt / 1000, (rt % 1000) / 10);
  if (cudaDriverGetVersion(&drv) == cudaSuccess && drv > 0)
    printf("cuda driver:      %d.%d\n", drv / 1000, (drv % 1000) / 10);
  else
    printf("cuda driver:      none found\n");
  int nccl = 0;
  if (ncclGetVersion(&nccl) == ncclSuccess)
    printf("nccl:             %d.%d.%d\n", nccl / 10000, (nccl % 10000) / 100, nccl % 100);
  int count = shardrt__cuda_device_count();
  printf("gpus seen:        %d\n", count);
  for (int i = 0; i < count; i++) {
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) == cudaSuccess)
      printf("  gpu %d:          %s, %.1f GiB, compute %d.%d\n", i, prop.name,
             (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), prop.major, prop.minor);
  }
  cudaGetLastError(); /* clear the sticky error of a machine without GPUs */
#else
  printf("cuda:             off (built without CUDA)\n");
  printf("nccl:             not built\n");
  printf("gpus seen:        %d\n", shardrt__cuda_device_count());
#endif
}

int shardrt_cmd_env(int argc, char **argv) {
  if (argc > 1) {
    bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
    fprintf(help ? stdout : stderr, "usage: shardrt env\n  Prints versions, build options and devices.\n");
    if (!help) fprintf(stderr, "shardrt env: error: unexpected argument '%s'\n", argv[1]);
    return help ? 0 : 2;
  }
  int v = shardrt_version();
  printf("libshardrt:       %d.%d.%d (header %s)\n", v / 10000, (v % 10000) / 100, v % 100, SHARDRT_VERSION_STRING);
  struct utsname u;
  if (uname(&u) == 0) printf("system:           %s %s %s\n", u.sysname, u.release, u.machine);
  printf("cpus:             %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
#ifdef __VERSION__
  printf("compiler:         %s\n", __VERSION__);
#endif
  cuda_report();
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0, major = 0, minor = 0;
  /* Both are callable before MPI_Init. */
  MPI_Get_library_version(mpi, &len);
  MPI_Get_version(&major, &minor);
  char *nl = strchr(mpi, '\n');
  if (nl) *nl = '\0';
  char *comma = strchr(mpi, ',');
  if (comma) *comma = '\0';
  printf("mpi:              %s (MPI %d.%d)\n", mpi, major, minor);
  printf("libyaml:          %s\n", yaml_get_version_string());
  static const char *const vars[] = {"CUDA_VISIBLE_DEVICES", "SHARDRT_CONFIG_FILE",  "SHARDRT_OVERRIDES",
                                     "SHARDRT_MPIRUN",       "SHARDRT_MPIRUN_FLAGS", "SHARDRT_MPI_PROGRESS",
                                     "SHARDRT_MPI_PROGRESS_US", "SHARDRT_DEBUG",       "SHARDRT_COLL_TIMEOUT_S"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    if (getenv(vars[i])) printf("%-17s %s\n", vars[i], getenv(vars[i]));
  return 0;
}
