/* The sd_notify protocol, both ways ctrmon speaks it:
 * - --sdnotify-socket: relay the container's messages (READY=1, STATUS=...,
 *   WATCHDOG=1, ...) from <bundle>/notify/notify.sock to the host's socket,
 *   keeping only the whitelisted fields (spec §8.5);
 * - unit mode (--start under a Type=notify unit): ctrmon's own READY=1,
 *   STATUS=, STOPPING=1 and watchdog pings. */
#pragma once

#include <glib.h>
#include <stddef.h>

typedef struct SdNotifyRelay SdNotifyRelay;

/* Bind <bundle>/notify/notify.sock (mode 0777; the notify dir must exist and
 * must not be a symlink) and connect a datagram socket to `host_socket` (a
 * path, or "@name" for the abstract namespace). The container can write the
 * notify dir: nothing there is followed (the mode is set on our socket's
 * inode only). Each wake-up relays at most 32 datagrams; the rest waits in
 * the socket, and a full host socket drops rather than queues. */
int sdnotify_relay_new(const char *bundle, const char *host_socket, SdNotifyRelay **ret_relay, GError **error);
/* Closes both sockets and removes notify.sock if it still is ours (conmon
 * leaves it). */
void sdnotify_relay_free(SdNotifyRelay *relay);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SdNotifyRelay, sdnotify_relay_free)

/* Pure: the lines of `datagram` that may pass (split on '\n' and '\r'),
 * joined with '\n'; NULL if none passes. */
char *sdnotify_filter(const char *datagram, size_t len);

/* ctrmon's own channel to its service manager. */
typedef struct SdNotifyClient SdNotifyClient;

/* Take NOTIFY_SOCKET (and WATCHDOG_USEC/WATCHDOG_PID) out of the environment,
 * so neither the runtime (runc would act on it) nor the container sees them,
 * and connect to it. *ret_client is NULL when NOTIFY_SOCKET is unset. */
int sdnotify_client_from_env(SdNotifyClient **ret_client, GError **error);
/* Send one message ("READY=1\nSTATUS=..."); failures are returned. */
int sdnotify_client_send(SdNotifyClient *client, const char *message, GError **error);
/* The watchdog interval the manager asked for (0: none). */
guint64 sdnotify_client_watchdog_usec(const SdNotifyClient *client);
void sdnotify_client_free(SdNotifyClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SdNotifyClient, sdnotify_client_free)
