/* Terminal mode (-t): the console socket the runtime sends the pty master
 * through (SCM_RIGHTS), and the pty operations (ONLCR, resize). */
#pragma once

#include <glib.h>

typedef struct ConsoleSocket ConsoleSocket;

/* Listen at $TMPDIR/conmon-term.XXXXXX, mode 0700 (less the umask) from its
 * creation: the name is created by bind() itself (a random one, retried on
 * EADDRINUSE), never reserved beforehand nor chmod()ed by name, so nothing
 * planted in TMPDIR is ever followed. */
int console_socket_new(ConsoleSocket **ret_console, GError **error);
const char *console_socket_path(const ConsoleSocket *console);

typedef void (*ConsoleReadyFn)(int master_fd, void *user_data);
/* Accept from the default main context; `ready_cb` gets the master (owned by
 * the callee) once. The socket path is unlinked as soon as a peer connects. */
void console_socket_attach(ConsoleSocket *console, ConsoleReadyFn ready_cb, void *user_data);
/* Non-blocking: take a connection already queued (the runtime may have sent
 * the pty and exited before the loop looked). 1 = got one, 0 = none. */
int console_socket_try_accept(ConsoleSocket *console, int *ret_master_fd, GError **error);

/* Receive the pty master on an accepted connection `conn`: one recvmsg()
 * with SCM_RIGHTS (the payload, the pty name, is ignored). 0 and *ret_fd
 * (CLOEXEC, owned by the caller) or an error. Exposed for the fuzz target. */
int console_receive_fd(int conn, int *ret_fd, GError **error);

/* Closes the listener and removes the socket file if still there. */
void console_socket_free(ConsoleSocket *console);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ConsoleSocket, console_socket_free)

/* Output post-processing ONLCR on the master, as conmon: "\n" -> "\r\n". */
int console_set_onlcr(int master_fd, GError **error);
int console_resize(int master_fd, int rows, int cols, GError **error);
