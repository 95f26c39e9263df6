/* The attach socket (spec §4): AF_UNIX SOCK_SEQPACKET at <bundle>/attach,
 * reached by clients through <socket-dir>/<cuuid> (a symlink to the bundle)
 * or directly with --full-attach. Output goes to every client as records of
 * one stream-id byte + up to 8192 bytes; client records are the container's
 * input. Unlike conmon, a slow client never blocks the monitor: each client
 * has a bounded queue (on top of a 4 MiB socket send buffer), and one that
 * falls too far behind is disconnected. */
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
        /* A client connected (true) or was disconnected (false), once each.
         * `reason` says why it was disconnected: ATTACH_REASON_CLOSED (it hung
         * up, or its socket failed) or ATTACH_REASON_TOO_FAR_BEHIND (reported
         * the moment its output is cut off, with the queued bytes it will
         * never get in `bytes_dropped`). May be NULL. */
        void (*client_cb)(bool connected, const char *reason, uint64_t bytes_dropped, void *user_data);
        void *user_data;
        /* Bytes a client may have queued before it is disconnected. */
        size_t client_queue_max;      /* 0: default (32 MiB)                */
} AttachConfig;

#define ATTACH_REASON_CLOSED "closed"
#define ATTACH_REASON_TOO_FAR_BEHIND "too far behind"

/* Create the symlink (unless full_attach) and the listening socket, and add
 * a GSource to the default main context. */
int attach_server_new(const AttachConfig *config, AttachServer **ret_server, GError **error);

/* Send `len` bytes (any length: split into ATTACH_MAX_PAYLOAD records) to
 * every connected client, tagged with `stream`. Never blocks. A client whose
 * queue would pass client_queue_max gets no more output and sees EOF; if its
 * input is being read, its socket stays open for that input until it hangs
 * up (then hangup_cb), otherwise it is closed at once. */
void attach_server_broadcast(AttachServer *server, CtrmonStream stream, const char *buf, size_t len);

typedef struct {
        unsigned clients;              /* connected now                     */
        uint64_t clients_total;        /* accepted since start              */
        uint64_t clients_dropped;      /* disconnected for falling behind   */
        uint64_t bytes_dropped;        /* queued bytes thrown away with them */
        uint64_t bytes_queued_max;     /* largest backlog any client had     */
} AttachStats;
void attach_server_get_stats(AttachServer *server, AttachStats *ret_stats);

/* Try to send what is queued, for up to `timeout_ms`, then close every client
 * (they see EOF), the listener, unlink the socket file and the symlink. */
void attach_server_free(AttachServer *server);
void attach_server_close(AttachServer *server, int timeout_ms);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AttachServer, attach_server_free)
