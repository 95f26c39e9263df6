/* --sdnotify-socket: relay the container's sd_notify messages (READY=1,
 * STATUS=..., WATCHDOG=1, ...) from <bundle>/notify/notify.sock to the host's
 * NOTIFY_SOCKET, keeping only the whitelisted fields (spec §8.5). */
#pragma once

#include <glib.h>
#include <stddef.h>

typedef struct SdNotifyRelay SdNotifyRelay;

/* Bind <bundle>/notify/notify.sock (mode 0777; the notify dir must exist) and
 * connect a datagram socket to `host_socket` (a path, or "@name" for the
 * abstract namespace). */
int sdnotify_relay_new(const char *bundle, const char *host_socket, SdNotifyRelay **ret_relay, GError **error);
/* Closes both sockets and removes notify.sock (conmon leaves it). */
void sdnotify_relay_free(SdNotifyRelay *relay);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SdNotifyRelay, sdnotify_relay_free)

/* Pure: the lines of `datagram` that may pass (split on '\n' and '\r'),
 * joined with '\n'; NULL if none passes. */
char *sdnotify_filter(const char *datagram, size_t len);
