/* The signals the control protocol's "kill" method accepts by name, shared
 * by the monitor (which parses the request) and its clients (which parse a
 * user's argument): a number, a name with or without "SIG" in any case
 * ("TERM", "sigkill"), or "RTMIN+N". Header-only so that the monitor, the
 * client library and ctrmonctl read the same table without linking each
 * other. */
#pragma once

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Returns the signal number, or -1 if `name` names none. */
static inline int ctrmon_signal_from_name(const char *name)
{
        static const struct {
                const char *name;
                int number;
        } names[] = {
                { "HUP", SIGHUP },   { "INT", SIGINT },     { "QUIT", SIGQUIT }, { "ILL", SIGILL },
                { "TRAP", SIGTRAP }, { "ABRT", SIGABRT },   { "BUS", SIGBUS },   { "FPE", SIGFPE },
                { "KILL", SIGKILL }, { "USR1", SIGUSR1 },   { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },
                { "PIPE", SIGPIPE }, { "ALRM", SIGALRM },   { "TERM", SIGTERM }, { "CHLD", SIGCHLD },
                { "CONT", SIGCONT }, { "STOP", SIGSTOP },   { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },
                { "TTOU", SIGTTOU }, { "URG", SIGURG },     { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ },
                { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
                { "PWR", SIGPWR },   { "SYS", SIGSYS },
        };
        /* Work on a bounded copy: no name or number is this long. */
        char buf[24];
        if (!name || !*name || strlen(name) >= sizeof buf)
                return -1;
        strcpy(buf, name);
        char *end;
        long n = strtol(buf, &end, 10);
        if (!*end)
                return n >= 1 && n < NSIG ? (int) n : -1;
        const char *s = strncasecmp(buf, "SIG", 3) == 0 ? buf + 3 : buf;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                if (strcasecmp(s, names[i].name) == 0)
                        return names[i].number;
        if (strncasecmp(s, "RTMIN+", 6) == 0 && s[6] >= '0' && s[6] <= '9') {
                n = strtol(s + 6, &end, 10);
                if (!*end && n <= SIGRTMAX - SIGRTMIN)
                        return SIGRTMIN + (int) n;
        }
        return -1;
}
