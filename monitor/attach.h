/* The attach socket (spec §4): AF_UNIX SOCK_SEQPACKET at <bundle>/attach,
 * reached by clients through <socket-dir>/<cuuid> (a symlink to the bundle)
 * or directly with --full-attach. Output goes to every client as records of
 * one stream-id byte + up to 8192 bytes; client records are the container's
 * input. As with conmon, a slow client gets every byte and slows the
 * container down; unlike conmon, it never blocks the monitor: each client
 * has a bounded queue (on top of a 4 MiB socket send buffer), and a full
 * one makes the monitor stop reading the container's output (backlog_cb)
 * while the rest of the loop goes on. */
#pragma once

#include "log-sink.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define ATTACH_MAX_PAYLOAD 8192

typedef struct AttachServer AttachServer;

typedef struct {
        const char *bundle;           /* where the socket file lives         */
        const char *socket_dir_path;  /* where the <cuuid> symlink lives     */
        const char *cuuid;            /* symlink name (not with full_attach) */
        bool full_attach;
        /* Input from a client (raw bytes, stream byte already stripped). NULL:
         * input is discarded and clients' sockets are not read. */
        void (*input_cb)(const char *buf, size_t len, void *user_data);
        /* A client shut down its write side or went away. Called from the
         * client's own dispatch in the main loop, never from inside
         * attach_server_broadcast(), and not for the clients that
         * attach_server_close() disconnects. */
        void (*hangup_cb)(void *user_data);
        /* A client connected (true) or was disconnected (false: it hung up,
         * its socket failed, or the server closed), once each. May be NULL. */
        void (*client_cb)(bool connected, void *user_data);
        /* The first client's queue reached client_queue_max (true: stop
         * reading output for it), or the last full one is down to half
         * (false: go on). Called from inside attach_server_broadcast() and
         * from the clients' dispatch. May be NULL. */
        void (*backlog_cb)(bool full, void *user_data);
        void *user_data;
        /* Bytes a client may have queued before it is full. */
        size_t client_queue_max;      /* 0: default (4 MiB)                 */
} AttachConfig;

/* Create the symlink (unless full_attach) and the listening socket, and add
 * a GSource to the default main context. */
int attach_server_new(const AttachConfig *config, AttachServer **ret_server, GError **error);

/* Send `len` bytes (any length: split into ATTACH_MAX_PAYLOAD records) to
 * every connected client, tagged with `stream`. Never blocks and never
 * drops: what a socket does not take is queued whole, and a client whose
 * queue reaches client_queue_max is reported through backlog_cb. Only a
 * client whose socket fails (it can no longer read) stops getting output;
 * if its input is being read, its socket stays open for that input until
 * it hangs up (then hangup_cb), otherwise it is closed at once. */
void attach_server_broadcast(AttachServer *server, CtrmonStream stream, const char *buf, size_t len);

/* The container's stdin is full (true): read no client's input until it is
 * called with false; what clients send waits in their sockets. */
void attach_server_set_input_paused(AttachServer *server, bool paused);

/* Output bytes queued for all clients together, not yet in their sockets. */
size_t attach_server_pending(AttachServer *server);
/* attach_server_pending() plus what the clients' sockets hold that they
 * have not read yet (SIOCOUTQ; up to the 4 MiB send buffer each): 0 once
 * every client has read all of the output, or gone. Nothing wakes the
 * loop when a socket empties: poll it. */
size_t attach_server_unread(AttachServer *server);

typedef struct {
        unsigned clients;              /* connected now                     */
        uint64_t clients_total;        /* accepted since start              */
        unsigned clients_full;         /* at the queue bound now            */
        uint64_t holds_total;          /* times a client reached the bound  */
        uint64_t bytes_queued_max;     /* largest backlog any client had     */
} AttachStats;
void attach_server_get_stats(AttachServer *server, AttachStats *ret_stats);

/* Try to send what is queued, for up to `timeout_ms`, then close every client
 * (they see EOF), the listener, unlink the socket file and the symlink.
 * What is still queued then is lost: the monitor waits in its main loop
 * until attach_server_pending() is 0 first (lifecycle.c). */
void attach_server_free(AttachServer *server);
void attach_server_close(AttachServer *server, int timeout_ms);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AttachServer, attach_server_free)
