/* The drain loop behind every SIGCHLD: collect everything that has exited,
 * the container, the runtime and orphans alike, and dispatch by pid. It must
 * not block and must not decide anything about the container's life. */
#include "reaper.h"

#include <errno.h>
#include <sys/wait.h>

int reaper_exit_code(int wstatus)
{
        if (WIFEXITED(wstatus))
                return WEXITSTATUS(wstatus);
        if (WIFSIGNALED(wstatus))
                return 128 + WTERMSIG(wstatus);
        return -1;
}

unsigned reaper_drain(ReaperExitFn exit_cb, void *user_data)
{
        unsigned reaped = 0;
        for (;;) {
                int wstatus = 0;
                pid_t pid = waitpid(-1, &wstatus, WNOHANG);
                if (pid < 0 && errno == EINTR)
                        continue;
                if (pid <= 0)
                        break; /* 0: children left but none exited; ECHILD: none */
                reaped++;
                if (exit_cb)
                        exit_cb(pid, wstatus, user_data);
        }
        return reaped;
}
