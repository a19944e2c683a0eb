/* Starting ranks: `galvatron <cmd> -n N ...` re-executes itself through OpenMPI's mpirun with N ranks unless
 * the process already is one rank of an MPI or Slurm job.
 *
 * Failure rule for the CLI: a rank that hits an error prints its message prefixed with "rank R: " and takes
 * the whole job down (gv_launch_die -> gv_comm_abort -> MPI_Abort), so no other rank hangs in a collective.
 * A rank that dies otherwise (non-zero exit, signal, exit without MPI_Finalize) also ends the job: mpirun
 * kills the remaining ranks and exits non-zero (OpenMPI's default, made explicit by gv_launch_exec through
 * OMPI_MCA_orte_abort_on_non_zero_status=1 for OpenMPI 4 and PRTE_MCA_state_base_error_non_zero_exit=1 for
 * OpenMPI 5). */
#ifndef GV_LAUNCH_H
#define GV_LAUNCH_H
#include "gv/comm.h"
#include "gv/status.h"
#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the process is a rank started by a launcher: mpirun/mpiexec of OpenMPI (OMPI_COMM_WORLD_SIZE),
 * a PMI/PMIx launcher (PMI_SIZE, PMIX_RANK) or srun (SLURM_STEP_NUM_TASKS; a plain sbatch script, which has
 * SLURM_NTASKS but no step, is not a rank). */
int gv_launch_is_rank(void);
/* World rank and size from the launcher's environment: -1 and 0 when not a rank. */
int gv_launch_env_rank(void);
int gv_launch_env_size(void);

/* The mpirun command line that gv_launch_exec runs, NULL-terminated, in one allocation (free() it):
 *   $GV_MPIRUN (default "mpirun") [--allow-run-as-root when uid 0] --oversubscribe --bind-to none -n N
 *   [$GV_MPIRUN_ARGS split on white space] <this executable (/proc/self/exe)> argv[1..] without "-n N"
 * ("-n N", "-nN" and "-n=N" are removed so the ranks do not launch again). */
gv_status gv_launch_argv(int n, int argc, char **argv, char ***out);
/* Replaces the process with mpirun running N copies of it (see gv_launch_argv); also sets
 * OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 when uid 0 and the abort-on-failure
 * variables above. Returns only on failure (no mpirun on PATH, n < 1). */
gv_status gv_launch_exec(int n, int argc, char **argv);

/* For the CLI: prints "rank R: <message>\n" to stderr (R from the world, else from the launcher's
 * environment; no prefix outside a job) and aborts the job with `code` through gv_comm_abort(world, code).
 * world may be NULL. */
_Noreturn void gv_launch_die(gv_comm *world, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
