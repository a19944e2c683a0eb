/* Launching ranks through mpirun, and the CLI's die-and-abort rule. */
#include "gv/launch.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm-impl.h"

static int gv_env_int(const char *name, int *v) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || *end || x < 0 || x > INT_MAX) return 0;
    *v = (int)x;
    return 1;
}

int gv_launch_is_rank(void) {
    int v;
    return gv_env_int("OMPI_COMM_WORLD_SIZE", &v) || gv_env_int("PMI_SIZE", &v) ||
           gv_env_int("PMIX_RANK", &v) || gv_env_int("SLURM_STEP_NUM_TASKS", &v);
}

int gv_launch_env_rank(void) {
    if (!gv_launch_is_rank()) return -1;
    int v;
    if (gv_env_int("OMPI_COMM_WORLD_RANK", &v) || gv_env_int("PMI_RANK", &v) || gv_env_int("PMIX_RANK", &v) ||
        gv_env_int("SLURM_PROCID", &v))
        return v;
    return -1;
}

int gv_launch_env_size(void) {
    int v;
    if (gv_env_int("OMPI_COMM_WORLD_SIZE", &v) || gv_env_int("PMI_SIZE", &v) ||
        gv_env_int("SLURM_STEP_NUM_TASKS", &v))
        return v;
    return 0;
}

/* "-n N", "-nN", "-n=N": the rank-count option that must not reach the ranks. Returns how many argv entries
 * it spans (0 if argv[i] is something else). */
static int gv_launch_n_option(int i, int argc, char **argv) {
    const char *a = argv[i];
    if (!strcmp(a, "-n")) return i + 1 < argc ? 2 : 1;
    if (!strncmp(a, "-n", 2) && (a[2] == '=' || (a[2] >= '0' && a[2] <= '9'))) return 1;
    return 0;
}

gv_status gv_launch_argv(int n, int argc, char **argv, char ***out) {
    if (!out) return gv_fail(GV_ERR_INVALID, "launch: out is NULL");
    *out = NULL;
    if (n < 1) return gv_fail(GV_ERR_INVALID, "launch: -n %d: expected at least 1 rank", n);
    if (argc < 1 || !argv || !argv[0]) return gv_fail(GV_ERR_INVALID, "launch: empty argv");

    char exe[PATH_MAX], nbuf[16];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0)
        exe[len] = '\0';
    else
        snprintf(exe, sizeof exe, "%s", argv[0]);
    snprintf(nbuf, sizeof nbuf, "%d", n);

    const char *mpirun = getenv("GV_MPIRUN");
    if (!mpirun || !*mpirun) mpirun = "mpirun";
    const char *extra_env = getenv("GV_MPIRUN_ARGS");
    char *extra = strdup(extra_env ? extra_env : "");
    size_t cap = (size_t)argc + 16 + strlen(extra ? extra : "");
    const char **list = malloc(cap * sizeof *list);
    if (!extra || !list) {
        free(extra);
        free(list);
        return gv_fail(GV_ERR_NOMEM, "launch: out of memory");
    }
    size_t k = 0;
    list[k++] = mpirun;
    if (geteuid() == 0) list[k++] = "--allow-run-as-root";
    list[k++] = "--oversubscribe";
    list[k++] = "--bind-to";
    list[k++] = "none";
    list[k++] = "-n";
    list[k++] = nbuf;
    for (char *save = NULL, *tok = strtok_r(extra, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save))
        list[k++] = tok;
    list[k++] = exe;
    int verbatim = 0;
    for (int i = 1; i < argc; i++) {
        if (!verbatim && !strcmp(argv[i], "--")) verbatim = 1;
        int skip = verbatim ? 0 : gv_launch_n_option(i, argc, argv);
        if (skip) {
            i += skip - 1;
            continue;
        }
        list[k++] = argv[i];
    }

    /* One block: k+1 pointers, then the strings. */
    size_t bytes = (k + 1) * sizeof(char *);
    for (size_t i = 0; i < k; i++) bytes += strlen(list[i]) + 1;
    char **res = malloc(bytes);
    if (!res) {
        free(extra);
        free(list);
        return gv_fail(GV_ERR_NOMEM, "launch: out of memory");
    }
    char *p = (char *)(res + k + 1);
    for (size_t i = 0; i < k; i++) {
        size_t l = strlen(list[i]) + 1;
        memcpy(p, list[i], l);
        res[i] = p;
        p += l;
    }
    res[k] = NULL;
    free(extra);
    free(list);
    *out = res;
    return GV_OK;
}

gv_status gv_launch_exec(int n, int argc, char **argv) {
    char **av;
    GV_TRY(gv_launch_argv(n, argc, argv, &av));
    if (geteuid() == 0) {
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    }
    /* A rank that exits non-zero or dies on a signal ends the whole job (the default; kept if the user set
     * these otherwise): OpenMPI 4 (ORTE) and OpenMPI 5 (PRRTE) spell it differently. */
    setenv("OMPI_MCA_orte_abort_on_non_zero_status", "1", 0);
    setenv("PRTE_MCA_state_base_error_non_zero_exit", "1", 0);
    fflush(stdout);
    fflush(stderr);
    execvp(av[0], av);
    gv_status st = gv_fail(GV_ERR_COMM, "launch: cannot run '%s' (%s): install OpenMPI or set GV_MPIRUN",
                           av[0], strerror(errno));
    free(av);
    return st;
}

_Noreturn void gv_launch_die(gv_comm *world, int code, const char *fmt, ...) {
    int rank = -1, size = 0;
    if (world) {
        rank = gv_comm_world_rank(world, gv_comm_rank(world));
        size = gv_comm_size(world->world);
    } else {
        rank = gv_launch_env_rank();
        size = gv_launch_env_size();
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (rank >= 0 && size > 1)
        fprintf(stderr, "rank %d: %s\n", rank, msg);
    else
        fprintf(stderr, "%s\n", msg);
    fflush(stderr);
    gv_comm_abort(world, code);
}
