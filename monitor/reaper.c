/* The drain loop behind every SIGCHLD: collect everything that has exited,
 * the container, the runtime and orphans alike, and dispatch by pid. It must
 * not block and must not decide anything about the container's life. */
#include "reaper.h"

#include <errno.h>
#include <signal.h>
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

bool reaper_peek(pid_t pid, int *wstatus)
{
        siginfo_t info = { 0 };
        int r;
        do
                r = waitid(P_PID, (id_t) pid, &info, WEXITED | WNOHANG | WNOWAIT);
        while (r < 0 && errno == EINTR);
        if (r < 0 || info.si_pid != pid)
                return false;
        /* The status waitpid() would have given. */
        switch (info.si_code) {
        case CLD_EXITED:
                *wstatus = (info.si_status & 0xff) << 8;
                return true;
        case CLD_KILLED:
                *wstatus = info.si_status & 0x7f;
                return true;
        case CLD_DUMPED:
                *wstatus = (info.si_status & 0x7f) | 0x80;
                return true;
        default:
                return false;
        }
}
