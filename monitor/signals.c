/* The signalfd behind every signal the monitor handles. It only reads and
 * dispatches; what a signal means (reap, forward, reopen) is decided by the
 * handler in lifecycle.c. */
#include "signals.h"

#include "ctrmon/error.h"

#include <glib-unix.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct Signals {
        int fd;
        guint source_id;
        SignalsHandlerFn handler;
        void *user_data;
};

static const int signals_monitored[] = {
        SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2,
};

int signals_block(Signals **ret_signals, sigset_t *ret_original_mask, GError **error)
{
        sigset_t mask;
        sigemptyset(&mask);
        for (size_t i = 0; i < G_N_ELEMENTS(signals_monitored); i++)
                sigaddset(&mask, signals_monitored[i]);

        sigset_t original;
        if (sigprocmask(SIG_BLOCK, &mask, &original) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to block signals");

        int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0) {
                int e = errno;
                sigprocmask(SIG_SETMASK, &original, NULL);
                return ctrmon_set_error_errno(error, e, "Failed to create a signalfd");
        }

        Signals *s = g_new0(Signals, 1);
        s->fd = fd;
        *ret_signals = s;
        if (ret_original_mask)
                *ret_original_mask = original;
        return 0;
}

void signals_dispatch_pending(Signals *s)
{
        struct signalfd_siginfo info[8];
        for (;;) {
                ssize_t n = read(s->fd, info, sizeof info);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                for (size_t i = 0; i < (size_t) n / sizeof info[0]; i++)
                        if (s->handler)
                                s->handler((int) info[i].ssi_signo, &info[i], s->user_data);
        }
}

static gboolean signals_readable_cb(int fd, GIOCondition condition, gpointer user_data)
{
        signals_dispatch_pending(user_data);
        return G_SOURCE_CONTINUE;
}

void signals_attach(Signals *s, SignalsHandlerFn handler, void *user_data)
{
        s->handler = handler;
        s->user_data = user_data;
        if (!s->source_id)
                s->source_id = g_unix_fd_add(s->fd, G_IO_IN, signals_readable_cb, s);
}

void signals_free(Signals *s)
{
        if (!s)
                return;
        if (s->source_id)
                g_source_remove(s->source_id);
        if (s->fd >= 0)
                close(s->fd);
        g_free(s);
}
