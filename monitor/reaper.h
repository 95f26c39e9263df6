/* Reaping: every child and every orphan that lands on the subreaper is
 * collected in one drain loop, and a wait status becomes conmon's exit code. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Pure: exit code for a waitpid() status: the code if it exited, 128+signal
 * if it was killed (137 for SIGKILL), -1 otherwise. */
int reaper_exit_code(int wstatus);

typedef void (*ReaperExitFn)(pid_t pid, int wstatus, void *user_data);

/* waitpid(-1, WNOHANG) until nothing is left to reap right now; `exit_cb`
 * is called for every reaped pid. Returns the number reaped. */
unsigned reaper_drain(ReaperExitFn exit_cb, void *user_data);

/* Has `pid` (a child of ours) exited? If so, its waitpid()-style status goes
 * to *wstatus and true is returned, but the child is left a zombie (waitid
 * with WNOWAIT): reaping it (release_task(), /proc flush: 30-110 us traced)
 * can then wait until its exit has been reported, and its pid cannot be
 * reused meanwhile. False if it runs, is not our child, or is gone. */
bool reaper_peek(pid_t pid, int *wstatus);
