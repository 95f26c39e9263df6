/* attach: the attach socket server (spec §4). Owns the <socket-dir>/<cuuid>
 * symlink, the SEQPACKET listener at <bundle>/attach and every client with
 * its bounded output queue. It must never block the main loop and never
 * lose a byte: a client whose queue is full is reported through
 * backlog_cb (the monitor then stops reading the container's output until
 * the client has caught up), never waited for and never cut off. It never
 * logs above g_debug: the monitor reads attach_server_get_stats(). */
#include "attach.h"

#include "fs-util.h"

#include <ctrmon/error.h>
#include <ctrmon/fd-util.h>

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <linux/sockios.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* How far (bytes queued here, beyond what its socket holds) a client may
 * fall behind before the monitor stops reading the container's output for
 * it (back-pressure); reading resumes once it is down to half. A queue only
 * smooths the stretches in which a fast reader is not scheduled: the
 * socket buffer below does most of that. A stopped client costs at most
 * this plus one read (128 KiB), plus what the pipes held at the
 * container's exit (stdio_relay_drain), plus its socket buffer. */
#define ATTACH_DEFAULT_QUEUE_MAX (4u * 1024 * 1024)
/* The kernel send buffer asked for each client; the kernel doubles it for
 * its own overhead (an 8 KiB record takes a 16 KiB skb), so about this much
 * output fits. The default (208 KiB) holds a dozen records: the monitor
 * and the reader then wake each other per few records, and the reader fell
 * behind for good (measured: dropped in 5 of 5 runs with 128 KiB). Capped
 * at the queue bound, so a small bound (tests) stays small. */
#define ATTACH_SOCKET_BUFFER (4 * 1024 * 1024)
/* Records per sendmmsg() (a 128 KiB read is 16 records). */
#define ATTACH_SEND_BATCH 64
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

/* Output waiting for one client: records are cut from `bytes`, up to
 * ATTACH_MAX_PAYLOAD at a time, from `off` on. The bytes are shared by every
 * client that queued the same broadcast. */
typedef struct {
        GBytes *bytes;
        size_t off;
        char id;
} AttachPending;

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
        bool disconnect_reported; /* client_cb(false) was called already */
        bool full;             /* counted in server->clients_full */
        GQueue queue;          /* AttachPending */
        size_t queued_bytes;   /* payload plus one id byte per record */
};

struct AttachServer {
        AttachConfig config;
        char *bundle;
        char *socket_dir_path;
        char *cuuid;
        char *link_path;       /* the name actually created (after the quirk) */
        bool link_created;
        FsFileId link_id;      /* the link and socket we made, so that only */
        FsFileId socket_id;    /* those are removed (issue 14)              */
        int dir_fd;            /* O_PATH: the bundle, reached via the link */
        int listen_fd;
        bool socket_created;
        GSource *listen_source;
        GList *clients;        /* AttachClient*, in accept order */
        char *recv_buf;
        AttachStats stats;
        unsigned clients_full; /* clients at the queue bound: output held */
        bool input_paused;     /* the container's stdin queue is full */
        bool closed;
};

/* --- clients --- */

static void attach_client_update_events(AttachClient *client)
{
        /* HUP/ERR are always reported by poll; naming them keeps that
         * explicit. IN only while someone wants the input and the client
         * has not hung up (a shut-down read side polls readable forever). */
        GIOCondition events = G_IO_HUP | G_IO_ERR;

        if (client->server && client->server->config.input_cb && !client->read_shut &&
            !client->server->input_paused)
                events |= G_IO_IN;
        if (!g_queue_is_empty(&client->queue))
                events |= G_IO_OUT;

        if (events != client->events && client->source) {
                g_source_modify_unix_fd(&client->source->base, client->source->tag, events);
                client->events = events;
        }
}

static void attach_pending_free(AttachPending *p)
{
        g_bytes_unref(p->bytes);
        g_free(p);
}

/* Record bytes (payload plus one id byte per record) in `len` payload bytes. */
static size_t attach_record_bytes(size_t len)
{
        return len + (len + ATTACH_MAX_PAYLOAD - 1) / ATTACH_MAX_PAYLOAD;
}

/* Full at the bound, and again below half of it: hysteresis, so a reader
 * just keeping up does not flip the relay on every record. The server
 * tells the monitor when the first client fills up and when the last one
 * has room again. */
static void attach_client_update_full(AttachClient *client)
{
        AttachServer *server = client->server;
        size_t max = server ? server->config.client_queue_max : 0;
        bool full = server && !client->dead && client->queued_bytes >= max;

        if (client->full && !full && server && !client->dead && client->queued_bytes > max / 2)
                return;
        if (full == client->full || !server)
                return;
        client->full = full;
        if (full) {
                server->stats.holds_total++;
                if (server->clients_full++ == 0 && server->config.backlog_cb)
                        server->config.backlog_cb(true, server->config.user_data);
        } else if (--server->clients_full == 0 && server->config.backlog_cb) {
                server->config.backlog_cb(false, server->config.user_data);
        }
}

static void attach_client_clear_queue(AttachClient *client)
{
        g_queue_clear_full(&client->queue, (GDestroyNotify) attach_pending_free);
        client->queued_bytes = 0;
        attach_client_update_full(client);
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
        attach_client_clear_queue(client);
        g_free(client);
}

/* Disconnect a client: it sees EOF after what its socket already holds.
 * Safe from inside the client's own callbacks (see in_dispatch). */
static void attach_client_drop(AttachClient *client)
{
        AttachServer *server = client->server;

        if (client->dead)
                return;
        /* Its backlog is gone with it: it holds nothing any more. */
        attach_client_clear_queue(client);
        if (server)
                server->clients = g_list_remove(server->clients, client);
        if (server && server->config.client_cb && !client->disconnect_reported)
                server->config.client_cb(false, server->config.user_data);
        client->disconnect_reported = true;
        client->server = NULL;
        client->dead = true;

        if (client->source)
                g_source_destroy(&client->source->base);
        ctrmon_close_fd(&client->fd);
        attach_client_clear_queue(client);

        if (!client->in_dispatch)
                attach_client_free(client);
}

static bool attach_client_reading(AttachClient *client)
{
        return !client->dead && !client->read_shut && client->server && client->server->config.input_cb;
}

/* Stop sending to a client (a write failed: it can no longer read): it
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
        attach_client_clear_queue(client);
        attach_client_update_events(client);
}

/* Up to ATTACH_SEND_BATCH records for one sendmmsg(): each is the stream
 * id byte and up to ATTACH_MAX_PAYLOAD bytes, referenced in place. */
typedef struct {
        struct mmsghdr msgs[ATTACH_SEND_BATCH];
        struct iovec iov[ATTACH_SEND_BATCH][2];
        unsigned n;
} AttachBatch;

static void attach_batch_add(AttachBatch *b, const char *id, const char *payload, size_t len)
{
        b->iov[b->n][0] = (struct iovec) { .iov_base = (void *) id, .iov_len = 1 };
        b->iov[b->n][1] = (struct iovec) { .iov_base = (void *) payload, .iov_len = len };
        b->msgs[b->n] = (struct mmsghdr) { .msg_hdr = { .msg_iov = b->iov[b->n], .msg_iovlen = 2 } };
        b->n++;
}

/* Returns the records sent (SEQPACKET: each whole or not at all), 0 if the
 * socket is full, -errno on a real failure. */
static int attach_batch_send(int fd, AttachBatch *b)
{
        int n;

        do
                n = sendmmsg(fd, b->msgs, b->n, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EAGAIN ? 0 : -errno;
        return n;
}

/* Fill `b` from the head of the queue. */
static void attach_client_batch_queue(AttachClient *client, AttachBatch *b)
{
        b->n = 0;
        for (GList *l = client->queue.head; l && b->n < ATTACH_SEND_BATCH; l = l->next) {
                AttachPending *p = l->data;
                gsize len;
                const char *data = g_bytes_get_data(p->bytes, &len);

                for (size_t off = p->off; off < len && b->n < ATTACH_SEND_BATCH; off += ATTACH_MAX_PAYLOAD)
                        attach_batch_add(b, &p->id, data + off, MIN(len - off, (size_t) ATTACH_MAX_PAYLOAD));
        }
}

/* Take `sent` records off the head of the queue. */
static void attach_client_advance(AttachClient *client, unsigned sent)
{
        while (sent > 0) {
                AttachPending *p = g_queue_peek_head(&client->queue);
                gsize len = g_bytes_get_size(p->bytes);

                while (sent > 0 && p->off < len) {
                        size_t k = MIN(len - p->off, (size_t) ATTACH_MAX_PAYLOAD);

                        p->off += k;
                        client->queued_bytes -= k + 1;
                        sent--;
                }
                if (p->off >= len)
                        attach_pending_free(g_queue_pop_head(&client->queue));
        }
        attach_client_update_full(client);
}

static void attach_client_write_failed(AttachClient *client, int r)
{
        g_debug("Failed to write to attach client %d: %s, disconnecting it",
                client->fd, g_strerror(-r));
        attach_client_stop_output(client);
}

/* Send queued records until the socket is full. Returns false if the
 * client was dropped (write error). */
static bool attach_client_flush(AttachClient *client)
{
        AttachBatch b;

        while (!g_queue_is_empty(&client->queue)) {
                int r;

                attach_client_batch_queue(client, &b);
                r = attach_batch_send(client->fd, &b);
                if (r < 0) {
                        attach_client_write_failed(client, r);
                        return false;
                }
                attach_client_advance(client, (unsigned) r);
                if ((unsigned) r < b.n)
                        break;
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

                /* The container's stdin is full: the rest waits in the
                 * client's socket (and then in the client). */
                if (server->input_paused)
                        return;
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

/* A bigger send buffer than the default: see ATTACH_SOCKET_BUFFER. Root may
 * pass net.core.wmem_max (SO_SNDBUFFORCE); others get what it allows. */
static void attach_client_grow_sndbuf(AttachServer *server, int fd)
{
        int size = (int) MIN((size_t) ATTACH_SOCKET_BUFFER, server->config.client_queue_max);

        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0 &&
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0)
                g_debug("Failed to set the send buffer of attach client %d: %s",
                        fd, g_strerror(errno));
}

static void attach_client_add(AttachServer *server, int fd)
{
        AttachClient *client = g_new0(AttachClient, 1);
        GSource *source;

        attach_client_grow_sndbuf(server, fd);

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

/* Queue buf[off, len) for a client. `shared` is one copy of this
 * broadcast from `*shared_off` on, made for the first client that needs one
 * and reused by the others (a client that needs more of it gets its own). */
static void attach_client_queue(AttachClient *client, GBytes **shared, size_t *shared_off, char id,
                                const char *buf, size_t off, size_t len)
{
        AttachPending *p = g_new(AttachPending, 1);

        if (!*shared || *shared_off > off) {
                GBytes *copy = g_bytes_new(buf + off, len - off);

                if (!*shared) {
                        *shared = g_bytes_ref(copy);
                        *shared_off = off;
                }
                p->bytes = copy;
                p->off = 0;
        } else {
                p->bytes = g_bytes_ref(*shared);
                p->off = off - *shared_off;
        }
        p->id = id;
        g_queue_push_tail(&client->queue, p);
        client->queued_bytes += attach_record_bytes(len - off);
        client->server->stats.bytes_queued_max = MAX(client->server->stats.bytes_queued_max,
                                                     (uint64_t) client->queued_bytes);
        attach_client_update_events(client);
}

/* Send what of one broadcast the socket takes right now, queue the rest,
 * never wait. A client whose backlog reaches the bound is reported full
 * (the relay stops reading); this broadcast is still queued whole. */
static void attach_client_send(AttachClient *client, GBytes **shared, size_t *shared_off,
                               const char *id, const char *buf, size_t len)
{
        size_t off = 0;

        /* Records go straight from the caller's buffer while nothing older
         * is waiting (order). */
        while (off < len && g_queue_is_empty(&client->queue)) {
                AttachBatch b = { .n = 0 };
                size_t batch_end = off;
                int r;

                for (; batch_end < len && b.n < ATTACH_SEND_BATCH; batch_end += ATTACH_MAX_PAYLOAD)
                        attach_batch_add(&b, id, buf + batch_end, MIN(len - batch_end, (size_t) ATTACH_MAX_PAYLOAD));
                r = attach_batch_send(client->fd, &b);
                if (r < 0) {
                        attach_client_write_failed(client, r);
                        return;
                }
                off = MIN(len, off + (size_t) r * ATTACH_MAX_PAYLOAD);
                if ((unsigned) r < b.n)
                        break;
        }
        if (off == len)
                return;
        attach_client_queue(client, shared, shared_off, *id, buf, off, len);
        attach_client_update_full(client);
}

void attach_server_broadcast(AttachServer *server, CtrmonStream stream, const char *buf, size_t len)
{
        const char id = (char) stream;
        g_autoptr(GBytes) shared = NULL;
        size_t shared_off = 0;

        g_return_if_fail(server != NULL);
        g_return_if_fail(buf != NULL || len == 0);

        if (server->closed || !server->clients || len == 0)
                return;

        for (GList *l = server->clients, *next; l; l = next) {
                AttachClient *client = l->data;

                next = l->next;
                if (!client->write_shut)
                        attach_client_send(client, &shared, &shared_off, &id, buf, len);
        }
}

void attach_server_set_input_paused(AttachServer *server, bool paused)
{
        g_return_if_fail(server != NULL);
        if (server->input_paused == paused)
                return;
        server->input_paused = paused;
        for (GList *l = server->clients; l; l = l->next)
                attach_client_update_events(l->data);
}

size_t attach_server_pending(AttachServer *server)
{
        size_t total = 0;
        g_return_val_if_fail(server != NULL, 0);
        for (GList *l = server->clients; l; l = l->next)
                total += ((AttachClient *) l->data)->queued_bytes;
        return total;
}

size_t attach_server_unread(AttachServer *server)
{
        size_t total = 0;
        g_return_val_if_fail(server != NULL, 0);
        for (GList *l = server->clients; l; l = l->next) {
                AttachClient *client = l->data;
                if (client->dead || client->write_shut)
                        continue;
                total += client->queued_bytes;
                /* What the socket holds that the peer has not read yet
                 * (AF_UNIX: still charged to our side; 0 once the peer has
                 * read it or hung up). */
                int outq = 0;
                if (ioctl(client->fd, SIOCOUTQ, &outq) == 0 && outq > 0)
                        total += (size_t) outq;
        }
        return total;
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
        (void) fs_file_id_at(AT_FDCWD, server->link_path, &server->link_id);
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
        (void) fs_file_id_at(server->dir_fd, "attach", &server->socket_id);

        /* Not chmod(fd_path): that follows whatever is at "attach" by now. */
        int r = fs_chmod_nofollow_at(server->dir_fd, "attach", S_IFSOCK, 0700, error);
        if (r < 0) {
                g_prefix_error(error, "Failed to change the mode of %s/attach: ", dir);
                return r;
        }
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

        /* Only what is still ours: a successor monitor on the same bundle
         * (the engine's restart) has made its own socket and link there. */
        int r;
        if (server->socket_created && server->dir_fd >= 0 &&
            (r = fs_unlink_if_same_at(server->dir_fd, "attach", &server->socket_id)) < 0)
                g_debug("Failed to remove the attach socket: %s", g_strerror(-r));
        server->socket_created = false;
        ctrmon_close_fd(&server->dir_fd);

        if (server->link_created && (r = fs_unlink_if_same_at(AT_FDCWD, server->link_path, &server->link_id)) < 0)
                g_debug("Failed to remove %s: %s", server->link_path, g_strerror(-r));
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
        ret_stats->clients_full = server->clients_full;
}
