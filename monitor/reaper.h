/* Reaping: every child and every orphan that lands on the subreaper is
 * collected in one drain loop, and a wait status becomes conmon's exit code. */
#pragma once

#include <sys/types.h>

/* Pure: exit code for a waitpid() status: the code if it exited, 128+signal
 * if it was killed (137 for SIGKILL), -1 otherwise. */
int reaper_exit_code(int wstatus);

typedef void (*ReaperExitFn)(pid_t pid, int wstatus, void *user_data);

/* waitpid(-1, WNOHANG) until nothing is left to reap right now; `exit_cb`
 * is called for every reaped pid. Returns the number reaped. */
unsigned reaper_drain(ReaperExitFn exit_cb, void *user_data);
