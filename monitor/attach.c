/* attach: the attach socket server (spec §4). Owns the <socket-dir>/<cuuid>
 * symlink, the SEQPACKET listener at <bundle>/attach and every client with
 * its bounded output queue. It must never block the main loop (a client that
 * falls too far behind is disconnected, not waited for) and never logs above
 * g_debug: the monitor reads attach_server_get_stats() and decides. */
#include "attach.h"

#include <ctrmon/error.h>
#include <ctrmon/fd-util.h>

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ATTACH_DEFAULT_QUEUE_MAX (4u * 1024 * 1024)
/* conmon's client read buffer: a longer record is truncated by SEQPACKET. */
#define ATTACH_RECV_BUF 32768
#define ATTACH_BACKLOG 10
/* sun_path holds 108 bytes; conmon shortens a 107-char link name by one. */
#define ATTACH_LINK_QUIRK_LEN 107
/* Records read from one client per wake-up, so one chatty client cannot
 * starve the rest of the loop. */
#define ATTACH_RECV_BATCH 16
#define ATTACH_ACCEPT_BATCH 16

typedef struct AttachClient AttachClient;

typedef struct {
        GSource base;
        AttachClient *client;
        gpointer tag;
} AttachClientSource;

struct AttachClient {
        AttachServer *server;
        int fd;
        AttachClientSource *source;
        GIOCondition events;
        bool read_shut;
        bool write_shut;
        /* Set while the client's own GSource is dispatching: dropping it
         * then (from input_cb or hangup_cb re-entering the server) only
         * marks it dead, and the dispatch frees it once callbacks return. */
        bool in_dispatch;
        bool dead;
        GQueue queue;          /* GBytes: whole records, id byte included */
        size_t queued_bytes;
};

struct AttachServer {
        AttachConfig config;
        char *bundle;
        char *socket_dir_path;
        char *cuuid;
        char *link_path;       /* the name actually created (after the quirk) */
        bool link_created;
        int dir_fd;            /* O_PATH: the bundle, reached via the link */
        int listen_fd;
        bool socket_created;
        GSource *listen_source;
        GList *clients;        /* AttachClient*, in accept order */
        char *recv_buf;
        AttachStats stats;
        bool closed;
};

/* --- clients --- */

static void attach_client_update_events(AttachClient *client)
{
        /* HUP/ERR are always reported by poll; naming them keeps that
         * explicit. IN only while someone wants the input and the client
         * has not hung up (a shut-down read side polls readable forever). */
        GIOCondition events = G_IO_HUP | G_IO_ERR;

        if (client->server && client->server->config.input_cb && !client->read_shut)
                events |= G_IO_IN;
        if (!g_queue_is_empty(&client->queue))
                events |= G_IO_OUT;

        if (events != client->events && client->source) {
                g_source_modify_unix_fd(&client->source->base, client->source->tag, events);
                client->events = events;
        }
}

static void attach_client_free(AttachClient *client)
{
        if (!client)
                return;
        if (client->source) {
                g_source_destroy(&client->source->base);
                g_source_unref(&client->source->base);
                client->source = NULL;
        }
        ctrmon_close_fd(&client->fd);
        g_queue_clear_full(&client->queue, (GDestroyNotify) g_bytes_unref);
        g_free(client);
}

/* Disconnect a client: it sees EOF after what its socket already holds.
 * Safe from inside the client's own callbacks (see in_dispatch). */
static void attach_client_drop(AttachClient *client)
{
        AttachServer *server = client->server;

        if (client->dead)
                return;
        if (server)
                server->clients = g_list_remove(server->clients, client);
        if (server && server->config.client_cb)
                server->config.client_cb(false, server->config.user_data);
        client->server = NULL;
        client->dead = true;

        if (client->source)
                g_source_destroy(&client->source->base);
        ctrmon_close_fd(&client->fd);
        g_queue_clear_full(&client->queue, (GDestroyNotify) g_bytes_unref);
        client->queued_bytes = 0;

        if (!client->in_dispatch)
                attach_client_free(client);
}

static bool attach_client_reading(AttachClient *client)
{
        return !client->dead && !client->read_shut && client->server && client->server->config.input_cb;
}

/* Stop sending to a client (a write failed, or it fell too far behind): it
 * sees EOF. While its input is still read, only the write side is shut, as
 * conmon does on a failed write: its input keeps flowing, and the end of it
 * is reported through hangup_cb from the client's own dispatch, never from
 * inside attach_server_broadcast(). */
static void attach_client_stop_output(AttachClient *client)
{
        if (!attach_client_reading(client)) {
                attach_client_drop(client);
                return;
        }
        if (shutdown(client->fd, SHUT_WR) < 0)
                g_debug("Failed to shut down attach client %d for writing: %s",
                        client->fd, g_strerror(errno));
        client->write_shut = true;
        g_queue_clear_full(&client->queue, (GDestroyNotify) g_bytes_unref);
        client->queued_bytes = 0;
        attach_client_update_events(client);
}

/* Count a client dropped for falling behind; `extra` are bytes of the
 * current broadcast it will now never get. */
static void attach_client_drop_slow(AttachClient *client, size_t extra)
{
        AttachServer *server = client->server;

        server->stats.clients_dropped++;
        server->stats.bytes_dropped += client->queued_bytes + extra;
        g_debug("Attach client %d fell %zu bytes behind, disconnecting it",
                client->fd, client->queued_bytes + extra);
        attach_client_stop_output(client);
}

/* Send queued records until the socket is full. Returns false if the
 * client was dropped (write error). */
static bool attach_client_flush(AttachClient *client)
{
        GBytes *rec;

        while ((rec = g_queue_peek_head(&client->queue))) {
                gsize len;
                const void *data = g_bytes_get_data(rec, &len);
                ssize_t n = send(client->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        g_debug("Failed to write to attach client %d: %s, disconnecting it",
                                client->fd, g_strerror(errno));
                        attach_client_stop_output(client);
                        return false;
                }
                g_queue_pop_head(&client->queue);
                client->queued_bytes -= len;
                g_bytes_unref(rec);
        }
        attach_client_update_events(client);
        return true;
}

static void attach_client_hangup(AttachClient *client)
{
        AttachServer *server = client->server;

        /* Like conmon: stop reading, keep sending output (spec §4.4). */
        if (shutdown(client->fd, SHUT_RD) < 0)
                g_debug("Failed to shut down attach client %d for reading: %s",
                        client->fd, g_strerror(errno));
        client->read_shut = true;
        attach_client_update_events(client);
        if (server->config.hangup_cb)
                server->config.hangup_cb(server->config.user_data);
        /* Output had already stopped: nothing is left to do with it. */
        if (client->write_shut)
                attach_client_drop(client);
}

static void attach_client_read(AttachClient *client)
{
        for (int i = 0; i < ATTACH_RECV_BATCH && !client->dead && !client->read_shut; i++) {
                AttachServer *server = client->server;
                ssize_t n = recv(client->fd, server->recv_buf, ATTACH_RECV_BUF, MSG_DONTWAIT);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                /* A zero-length record reads as 0 too; conmon takes any 0
                 * for the end of input, and so do we. */
                if (n <= 0) {
                        if (n < 0)
                                g_debug("Failed to read from attach client %d: %s",
                                        client->fd, g_strerror(errno));
                        attach_client_hangup(client);
                        return;
                }
                if (server->config.input_cb)
                        server->config.input_cb(server->recv_buf, (size_t) n, server->config.user_data);
        }
}

static gboolean attach_client_source_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
        AttachClientSource *cs = (AttachClientSource *) source;
        AttachClient *client = cs->client;
        GIOCondition revents = g_source_query_unix_fd(source, cs->tag);

        client->in_dispatch = true;

        if ((revents & G_IO_OUT) && !client->dead)
                attach_client_flush(client);
        if ((revents & (G_IO_IN | G_IO_HUP | G_IO_ERR)) && attach_client_reading(client))
                attach_client_read(client);
        /* HUP on a socket means the peer can no longer receive either (it
         * closed, or shut its read side and we ours): nothing left to do
         * with it. Input still queued was read just above. */
        if ((revents & (G_IO_HUP | G_IO_ERR)) && !client->dead && !attach_client_reading(client)) {
                g_debug("Attach client %d went away", client->fd);
                attach_client_drop(client);
        }

        client->in_dispatch = false;
        if (client->dead) {
                attach_client_free(client);
                return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
}

static void attach_client_source_finalize(GSource *source)
{
        /* The client owns the source, not the other way round. */
        ((AttachClientSource *) source)->client = NULL;
}

static GSourceFuncs attach_client_source_funcs = {
        .dispatch = attach_client_source_dispatch,
        .finalize = attach_client_source_finalize,
};

static void attach_client_add(AttachServer *server, int fd)
{
        AttachClient *client = g_new0(AttachClient, 1);
        GSource *source;

        client->server = server;
        client->fd = fd;
        g_queue_init(&client->queue);

        source = g_source_new(&attach_client_source_funcs, sizeof(AttachClientSource));
        g_source_set_name(source, "ctrmon attach client");
        client->source = (AttachClientSource *) source;
        client->source->client = client;
        client->events = G_IO_HUP | G_IO_ERR;
        client->source->tag = g_source_add_unix_fd(source, fd, client->events);
        attach_client_update_events(client);
        g_source_attach(source, NULL);

        server->clients = g_list_append(server->clients, client);
        server->stats.clients_total++;
        g_debug("Accepted attach client %d", fd);
        if (server->config.client_cb)
                server->config.client_cb(true, server->config.user_data);
}

static gboolean attach_server_accept_cb(int fd, GIOCondition condition, gpointer user_data)
{
        AttachServer *server = user_data;

        for (int i = 0; i < ATTACH_ACCEPT_BATCH; i++) {
                /* conmon accepts blocking and without CLOEXEC; a client
                 * socket must neither block the loop nor leak into the
                 * runtime or the exit command. */
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno != EAGAIN)
                                g_debug("Failed to accept an attach client: %s", g_strerror(errno));
                        break;
                }
                attach_client_add(server, cfd);
        }
        return G_SOURCE_CONTINUE;
}

/* --- output --- */

/* Send one record to one client without ever waiting. Returns false if the
 * client was dropped; `rest` is what this broadcast still holds for it
 * after this record (counted as lost if it is dropped for being slow). */
static bool attach_client_send(AttachClient *client, GBytes **shared, const char *id,
                               const char *payload, size_t n, size_t rest)
{
        size_t reclen = n + 1;

        if (g_queue_is_empty(&client->queue)) {
                struct iovec iov[2] = {
                        { .iov_base = (void *) id, .iov_len = 1 },
                        { .iov_base = (void *) payload, .iov_len = n },
                };
                struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
                ssize_t r;

                do
                        r = sendmsg(client->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                while (r < 0 && errno == EINTR);
                /* SEQPACKET: a record goes whole or not at all. */
                if (r >= 0)
                        return true;
                if (errno != EAGAIN) {
                        g_debug("Failed to write to attach client %d: %s, disconnecting it",
                                client->fd, g_strerror(errno));
                        attach_client_stop_output(client);
                        return false;
                }
        }

        if (client->queued_bytes + reclen > client->server->config.client_queue_max) {
                attach_client_drop_slow(client, reclen + rest);
                return false;
        }

        /* One copy of the record, shared by every client that queues it. */
        if (!*shared) {
                char *rec = g_malloc(reclen);

                rec[0] = *id;
                memcpy(rec + 1, payload, n);
                *shared = g_bytes_new_take(rec, reclen);
        }
        g_queue_push_tail(&client->queue, g_bytes_ref(*shared));
        client->queued_bytes += reclen;
        attach_client_update_events(client);
        return true;
}

void attach_server_broadcast(AttachServer *server, CtrmonStream stream, const char *buf, size_t len)
{
        const char id = (char) stream;
        size_t nrec;

        g_return_if_fail(server != NULL);
        g_return_if_fail(buf != NULL || len == 0);

        if (server->closed || !server->clients || len == 0)
                return;

        /* Records in this broadcast: each has one stream-id byte. */
        nrec = (len + ATTACH_MAX_PAYLOAD - 1) / ATTACH_MAX_PAYLOAD;

        for (size_t off = 0, i = 0; off < len; off += ATTACH_MAX_PAYLOAD, i++) {
                size_t n = MIN(len - off, (size_t) ATTACH_MAX_PAYLOAD);
                size_t rest = (len - off - n) + (nrec - i - 1);
                g_autoptr(GBytes) shared = NULL;
                GList *l = server->clients;

                while (l) {
                        GList *next = l->next;
                        AttachClient *client = l->data;

                        if (!client->write_shut)
                                attach_client_send(client, &shared, &id, buf + off, n, rest);
                        l = next;
                }
                if (!server->clients)
                        break;
        }
}

/* --- set-up and tear-down --- */

static char *attach_fd_path(int dir_fd)
{
        return g_strdup_printf("/proc/self/fd/%d/attach", dir_fd);
}

static int attach_server_make_link(AttachServer *server, GError **error)
{
        server->link_path = g_build_filename(server->socket_dir_path, server->cuuid, NULL);
        /* conmon's quirk, kept because podman computes the same name: a
         * 107-char link is shortened by one. Unlike conmon, we remember the
         * name we used, so the link is removed at the end. */
        if (strlen(server->link_path) == ATTACH_LINK_QUIRK_LEN)
                server->link_path[ATTACH_LINK_QUIRK_LEN - 1] = '\0';

        if (unlink(server->link_path) < 0 && errno != ENOENT)
                return ctrmon_set_error_errno(error, errno,
                                              "Failed to remove existing %s for the attach socket",
                                              server->link_path);
        if (symlink(server->bundle, server->link_path) < 0)
                return ctrmon_set_error_errno(error, errno,
                                              "Failed to create symlink %s for the attach socket",
                                              server->link_path);
        server->link_created = true;
        return 0;
}

static int attach_server_listen(AttachServer *server, GError **error)
{
        const char *dir = server->link_path ? server->link_path : server->bundle;
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        g_autofree char *fd_path = NULL;

        /* Through the link when there is one, so the link is proven to work
         * for clients; O_PATH is enough to be a directory for the *at()
         * calls and for the /proc/self/fd path. */
        server->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (server->dir_fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to open %s for the attach socket", dir);

        server->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (server->listen_fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create the attach socket");

        if (unlinkat(server->dir_fd, "attach", 0) < 0 && errno != ENOENT)
                return ctrmon_set_error_errno(error, errno, "Failed to remove stale attach socket %s/attach", dir);

        /* bind() creates the file with the socket inode's mode minus the
         * umask, so set 0700 before it: no window where others may connect. */
        if (fchmod(server->listen_fd, 0700) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to change the attach socket's mode");

        /* sun_path is 108 bytes and bundles can be longer: bind through the
         * directory fd, whatever the bundle's length. */
        fd_path = attach_fd_path(server->dir_fd);
        g_assert(strlen(fd_path) < sizeof(addr.sun_path));
        strcpy(addr.sun_path, fd_path);
        if (bind(server->listen_fd, (struct sockaddr *) &addr, sizeof(addr)) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to bind the attach socket %s/attach", dir);
        server->socket_created = true;

        if (chmod(fd_path, 0700) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to change the mode of %s/attach", dir);
        if (listen(server->listen_fd, ATTACH_BACKLOG) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to listen on the attach socket %s/attach", dir);

        server->listen_source = g_unix_fd_source_new(server->listen_fd, G_IO_IN);
        g_source_set_callback(server->listen_source, G_SOURCE_FUNC(attach_server_accept_cb), server, NULL);
        g_source_set_name(server->listen_source, "ctrmon attach listener");
        g_source_attach(server->listen_source, NULL);
        return 0;
}

int attach_server_new(const AttachConfig *config, AttachServer **ret_server, GError **error)
{
        g_autoptr(AttachServer) server = NULL;
        int r;

        g_return_val_if_fail(config != NULL, -EINVAL);
        g_return_val_if_fail(ret_server != NULL, -EINVAL);
        g_return_val_if_fail(error == NULL || *error == NULL, -EINVAL);

        if (!config->bundle)
                return ctrmon_set_error(error, EINVAL, "The attach socket needs a bundle path");
        if (!config->full_attach && (!config->socket_dir_path || !config->cuuid))
                return ctrmon_set_error(error, EINVAL,
                                        "The attach socket needs a socket directory and a cuuid (or full attach)");

        server = g_new0(AttachServer, 1);
        server->config = *config;
        server->bundle = g_strdup(config->bundle);
        server->socket_dir_path = g_strdup(config->socket_dir_path);
        server->cuuid = g_strdup(config->cuuid);
        /* The config's strings are the caller's: point at our copies. */
        server->config.bundle = server->bundle;
        server->config.socket_dir_path = server->socket_dir_path;
        server->config.cuuid = server->cuuid;
        if (server->config.client_queue_max == 0)
                server->config.client_queue_max = ATTACH_DEFAULT_QUEUE_MAX;
        server->dir_fd = -1;
        server->listen_fd = -1;
        server->recv_buf = g_malloc(ATTACH_RECV_BUF);

        /* On failure, the autoptr removes whatever was already created
         * (conmon leaves the link and socket file behind). */
        if (!config->full_attach) {
                r = attach_server_make_link(server, error);
                if (r < 0)
                        return r;
        }
        r = attach_server_listen(server, error);
        if (r < 0)
                return r;

        *ret_server = g_steal_pointer(&server);
        return 0;
}

/* Spend at most timeout_ms getting queued records out. */
static void attach_server_flush_all(AttachServer *server, int timeout_ms)
{
        gint64 deadline = g_get_monotonic_time() + (gint64) MAX(timeout_ms, 0) * 1000;

        for (;;) {
                g_autofree struct pollfd *pfds = NULL;
                guint n = 0, len = g_list_length(server->clients);
                gint64 remaining;

                /* First an attempt without waiting, then wait for room. */
                for (GList *l = server->clients, *next; l; l = next) {
                        next = l->next;
                        attach_client_flush(l->data);
                }

                pfds = g_new0(struct pollfd, MAX(len, 1));
                for (GList *l = server->clients; l; l = l->next) {
                        AttachClient *client = l->data;

                        if (g_queue_is_empty(&client->queue))
                                continue;
                        pfds[n++] = (struct pollfd){ .fd = client->fd, .events = POLLOUT };
                }
                if (n == 0)
                        return;

                remaining = deadline - g_get_monotonic_time();
                if (remaining <= 0)
                        return;
                if (poll(pfds, n, (int) ((remaining + 999) / 1000)) < 0 && errno != EINTR)
                        return;
        }
}

void attach_server_close(AttachServer *server, int timeout_ms)
{
        if (!server || server->closed)
                return;
        server->closed = true;

        /* No new clients while we wind down. */
        if (server->listen_source) {
                g_source_destroy(server->listen_source);
                g_clear_pointer(&server->listen_source, g_source_unref);
        }
        ctrmon_close_fd(&server->listen_fd);

        attach_server_flush_all(server, timeout_ms);
        while (server->clients)
                attach_client_drop(server->clients->data);

        if (server->socket_created && server->dir_fd >= 0 &&
            unlinkat(server->dir_fd, "attach", 0) < 0 && errno != ENOENT)
                g_debug("Failed to remove the attach socket: %s", g_strerror(errno));
        server->socket_created = false;
        ctrmon_close_fd(&server->dir_fd);

        if (server->link_created && unlink(server->link_path) < 0 && errno != ENOENT)
                g_debug("Failed to remove %s: %s", server->link_path, g_strerror(errno));
        server->link_created = false;
}

void attach_server_free(AttachServer *server)
{
        if (!server)
                return;
        attach_server_close(server, 0);
        g_free(server->bundle);
        g_free(server->socket_dir_path);
        g_free(server->cuuid);
        g_free(server->link_path);
        g_free(server->recv_buf);
        g_free(server);
}

void attach_server_get_stats(AttachServer *server, AttachStats *ret_stats)
{
        g_return_if_fail(server != NULL);
        g_return_if_fail(ret_stats != NULL);

        *ret_stats = server->stats;
        ret_stats->clients = g_list_length(server->clients);
}
