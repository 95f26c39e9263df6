/* Signals enter the main loop through one signalfd. ctrmon blocks the signals
 * it handles before it forks anything and reads them as data, so no work ever
 * runs in an asynchronous handler. (One signalfd rather than GLib's
 * g_unix_signal_add: the latter starts a helper thread, and the monitor forks
 * the runtime and the exit command afterwards.) */
#pragma once

#include <glib.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <stdbool.h>

typedef struct Signals Signals;

typedef void (*SignalsHandlerFn)(int signo, const struct signalfd_siginfo *info, void *user_data);

/* Block the monitored signals (SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP,
 * SIGUSR1, SIGUSR2) and create the signalfd. *ret_original_mask receives the
 * mask from before, for children to restore. */
int signals_block(Signals **ret_signals, sigset_t *ret_original_mask, GError **error);

/* Start dispatching to `handler` from the default main context. */
void signals_attach(Signals *signals, SignalsHandlerFn handler, void *user_data);

/* Read and dispatch what is pending now, without the main loop. */
void signals_dispatch_pending(Signals *signals);

void signals_free(Signals *signals);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Signals, signals_free)
