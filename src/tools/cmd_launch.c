/* SPDX-License-Identifier: Apache-2.0 */
/* `shardrt launch`: start PROGRAM on num_processes ranks through OpenMPI's
 * mpirun, handing every rank the config and the overrides (through
 * SHARDRT_CONFIG_FILE / SHARDRT_OVERRIDES, read by shardrt_plan_from_args).
 * Forwards SIGINT/SIGTERM to mpirun and returns its exit status.
 *
 * Several machines: run on machine_rank 0 with a hostfile (--hostfile, the
 * config's mpirun_config.mpirun_hostfile or deepspeed_hostfile: the same
 * `HOST slots=N` format). As accelerate does for Open MPI, it places
 * num_processes / num_machines ranks on each host (--npernode), which Open
 * MPI numbers host by host; the hostfile is checked against the config
 * first (hostfile.h). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shardrt.h"
#include "src/config/config_internal.h"
#include "src/tools/hostfile.h"
#include "src/tools/tool.h"

#ifndef SHARDRT_MPIRUN_DEFAULT
#define SHARDRT_MPIRUN_DEFAULT "mpirun"
#endif
#define OVERRIDES_MAX 16384
#define MAX_MPI_ARGS 64

static void usage(FILE *out) {
  fprintf(out,
          "usage: shardrt launch [--config_file FILE] [OVERRIDES] [--hostfile FILE] [--dry_run] PROGRAM [ARGS]\n"
          "  Runs PROGRAM on num_processes ranks with mpirun. OVERRIDES are accelerate launch\n"
          "  flags (--num_processes, --mixed_precision, --fsdp_sharding_strategy, --zero_stage, ...);\n"
          "  every rank sees them through shardrt_plan_from_args. --dry_run prints the mpirun\n"
          "  command instead of running it. $SHARDRT_MPIRUN picks mpirun, $SHARDRT_MPIRUN_FLAGS\n"
          "  adds flags to it. --hostfile (or mpirun_config.mpirun_hostfile, deepspeed_hostfile):\n"
          "  'HOST slots=N' lines; num_processes / num_machines ranks start on each of the first\n"
          "  num_machines hosts (docs/multihost.md).\n");
}

static volatile sig_atomic_t child_pid;

static void forward_signal(int sig) {
  if (child_pid > 0) kill((pid_t)child_pid, sig);
}

static int fail(const char *fmt, const char *arg) {
  fprintf(stderr, "shardrt launch: error: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  return 2;
}

int shardrt_cmd_launch(int argc, char **argv) {
  /* Split: options up to the first word that is not an option or its value. */
  int prog = -1;
  bool dry_run = false;
  char overrides[OVERRIDES_MAX] = "";
  const char *config_file = NULL;
  const char *hostfile_flag = NULL;
  char **cfg_argv = calloc((size_t)argc + 1, sizeof *cfg_argv);
  if (!cfg_argv) return fail("%s", "out of memory");
  int cfg_argc = 0;
  cfg_argv[cfg_argc++] = argv[0];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return free(cfg_argv), usage(stdout), 0;
    if (strcmp(a, "--dry_run") == 0) {
      dry_run = true;
      continue;
    }
    if (strcmp(a, "--hostfile") == 0 || strcmp(a, "-H") == 0) { /* DeepSpeed's launcher flag */
      if (i + 1 >= argc) return free(cfg_argv), fail("%s needs a FILE", a);
      hostfile_flag = argv[++i];
      continue;
    }
    if (strncmp(a, "--hostfile=", 11) == 0) {
      hostfile_flag = a + 11;
      continue;
    }
    if (strcmp(a, "--") == 0) {
      prog = i + 1 < argc ? i + 1 : -1;
      break;
    }
    if (strncmp(a, "--", 2) != 0) {
      prog = i;
      break;
    }
    char name[SHARDRT_NAME_MAX];
    const char *eq = strchr(a + 2, '=');
    size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name - 1 ? len : sizeof name - 1), a + 2);
    int kind = shardrt__config_flag_kind(name);
    if (kind == SHARDRT__FLAG_UNKNOWN) {
      free(cfg_argv);
      return fail("unknown option '%s' before PROGRAM (see `shardrt launch --help` and docs/config.md)", a);
    }
    const char *value = eq ? eq + 1 : NULL;
    cfg_argv[cfg_argc++] = argv[i];
    bool b;
    if (!eq && kind == SHARDRT__FLAG_VALUE && i + 1 < argc) value = argv[++i], cfg_argv[cfg_argc++] = argv[i];
    else if (!eq && kind == SHARDRT__FLAG_BOOL && i + 1 < argc && shardrt__parse_bool(argv[i + 1], &b))
      value = argv[++i], cfg_argv[cfg_argc++] = argv[i];
    else if (!eq && kind == SHARDRT__FLAG_BOOL) value = "true";
    if (strcmp(name, "config_file") == 0) {
      config_file = value;
    } else if (shardrt__overrides_append(overrides, sizeof overrides, name, value) != SHARDRT_OK) {
      free(cfg_argv);
      return fail("%s", shardrt_last_error());
    }
  }
  if (prog < 0) {
    free(cfg_argv);
    usage(stderr);
    return fail("%s", "no PROGRAM to launch");
  }

  /* Validate here once, so a bad config fails before any rank starts. */
  shardrt_plan plan;
  int n = cfg_argc;
  shardrt_status rc = shardrt_plan_from_args(&n, cfg_argv, &plan);
  free(cfg_argv);
  if (rc != SHARDRT_OK) return fail("%s", shardrt_last_error());
  if (plan.num_processes < 1)
    return fail("%s", "num_processes is not set: pass --num_processes N or set it in the config");
  if (shardrt_plan_resolve(&plan, plan.num_processes) != SHARDRT_OK) return fail("%s", shardrt_last_error());
  if (plan.num_machines > 1 && plan.machine_rank != 0) {
    printf("shardrt launch: machine_rank %d: nothing to do here; mpirun on machine_rank 0 starts the ranks of every "
           "machine listed in mpirun_config.mpirun_hostfile\n", plan.machine_rank);
    return 0;
  }
  const char *hostfile = hostfile_flag ? hostfile_flag : plan.mpirun_hostfile[0] ? plan.mpirun_hostfile : NULL;
  char hf_err[1024], npernode[16] = "";
  if (hostfile) {
    shardrt_hostfile hf;
    if (shardrt_hostfile_read(hostfile, &hf, hf_err, sizeof hf_err) != 0) return fail("%s", hf_err);
    int bad = shardrt_hostfile_check(&hf, hostfile, plan.num_processes, plan.num_machines, hf_err, sizeof hf_err);
    shardrt_hostfile_free(&hf);
    if (bad) return fail("%s", hf_err);
    snprintf(npernode, sizeof npernode, "%d", plan.num_processes / plan.num_machines);
  }

  /* The ranks' environment: the config (absolute, ranks may start elsewhere)
   * and the overrides, after any the caller already had. */
  if (!config_file) config_file = getenv("SHARDRT_CONFIG_FILE");
  char abs_cfg[PATH_MAX];
  if (config_file && *config_file) {
    if (!realpath(config_file, abs_cfg)) return fail("cannot resolve the config path %s", config_file);
    setenv("SHARDRT_CONFIG_FILE", abs_cfg, 1);
  }
  const char *prev = getenv("SHARDRT_OVERRIDES");
  char all[2 * OVERRIDES_MAX];
  snprintf(all, sizeof all, "%s%s%s", prev ? prev : "", prev && *prev && overrides[0] ? " " : "", overrides);
  setenv("SHARDRT_OVERRIDES", all, 1);
  if (plan.main_process_ip[0]) setenv("MASTER_ADDR", plan.main_process_ip, 1);
  char port[16];
  if (plan.main_process_port > 0) {
    snprintf(port, sizeof port, "%d", plan.main_process_port);
    setenv("MASTER_PORT", port, 1);
  }
  if (plan.gpu_ids[0] && strcmp(plan.gpu_ids, "all") != 0) setenv("CUDA_VISIBLE_DEVICES", plan.gpu_ids, 1);
  if (geteuid() == 0) {
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  }

  const char *mpirun = getenv("SHARDRT_MPIRUN");
  if (!mpirun || !*mpirun) mpirun = SHARDRT_MPIRUN_DEFAULT;
  char np[16];
  snprintf(np, sizeof np, "%d", plan.num_processes);
  char *extra = strdup(getenv("SHARDRT_MPIRUN_FLAGS") ? getenv("SHARDRT_MPIRUN_FLAGS") : "");
  int n_prog = argc - prog;
  char **args = calloc((size_t)(MAX_MPI_ARGS + n_prog + 1), sizeof *args);
  if (!args || !extra) return free(args), free(extra), fail("%s", "out of memory");
  int k = 0;
  args[k++] = (char *)mpirun;
  args[k++] = "-np";
  args[k++] = np;
  if (hostfile) {
    /* Slots were checked above: no oversubscription across real hosts. */
    args[k++] = "--hostfile";
    args[k++] = (char *)hostfile;
    args[k++] = "--npernode";
    args[k++] = npernode;
  } else {
    args[k++] = "--oversubscribe";
  }
  if (!hostfile && plan.num_machines > 1) {
    fprintf(stderr, "shardrt: warning: num_machines is %d but mpirun_config.mpirun_hostfile is not set: starting all "
            "%d ranks on this machine\n", plan.num_machines, plan.num_processes);
  }
  static const char *const exported[] = {"SHARDRT_CONFIG_FILE", "SHARDRT_OVERRIDES",     "MASTER_ADDR",
                                         "MASTER_PORT",         "CUDA_VISIBLE_DEVICES",  "SHARDRT_MPI_PROGRESS",
                                         "SHARDRT_MPI_PROGRESS_US", "SHARDRT_DEBUG",        "SHARDRT_COLL_TIMEOUT_S",
                                         /* NCCL across hosts (docs/multihost.md): set on the main machine, seen by all */
                                         "NCCL_SOCKET_IFNAME", "NCCL_IB_HCA", "NCCL_IB_DISABLE", "NCCL_NET_GDR_LEVEL",
                                         "NCCL_DEBUG"};
  for (size_t e = 0; e < sizeof exported / sizeof exported[0]; e++)
    if (getenv(exported[e])) args[k++] = "-x", args[k++] = (char *)exported[e];
  for (char *tok = strtok(extra, " "); tok && k < MAX_MPI_ARGS - 2; tok = strtok(NULL, " ")) args[k++] = tok;
  for (int i = 0; i < n_prog; i++) args[k++] = argv[prog + i];
  args[k] = NULL;

  if (dry_run) {
    printf("SHARDRT_CONFIG_FILE=%s\nSHARDRT_OVERRIDES=%s\n", getenv("SHARDRT_CONFIG_FILE") ? abs_cfg : "", all);
    for (int i = 0; i < k; i++) printf("%s%s", i ? " " : "", args[i]);
    printf("\n");
    free(args);
    free(extra);
    return 0;
  }

  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return free(args), free(extra), fail("fork failed: %s", strerror(errno));
  if (pid == 0) {
    execvp(args[0], args);
    fprintf(stderr, "shardrt launch: error: cannot run %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  child_pid = pid;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      status = -1;
      break;
    }
  }
  free(args);
  free(extra);
  if (status == -1) return fail("waiting for mpirun failed: %s", strerror(errno));
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "shardrt launch: mpirun was killed by signal %d\n", WTERMSIG(status));
    return 128 + WTERMSIG(status);
  }
  int code = WEXITSTATUS(status);
  if (code != 0) fprintf(stderr, "shardrt launch: mpirun exited with status %d (a rank failed; see above)\n", code);
  return code;
}
