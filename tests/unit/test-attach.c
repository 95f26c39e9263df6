/* Unit tests for monitor/attach.c: the attach socket (spec §4) with real
 * SEQPACKET clients, driven through the default GMainContext. */
#include "attach.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* --- helpers --- */

/* How long the helpers wait for the server (or a client) to get to
 * something: only a bound on slowness. Generous, for loaded machines, where
 * even a trivial check was seen to take 6 s; a passing check waits no longer
 * than the event takes. */
#define WAIT_USEC (20 * G_USEC_PER_SEC)

static int rm_rf_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        remove(path);
        return 0;
}

static void rm_rf(const char *path)
{
        nftw(path, rm_rf_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *make_tmpdir(void)
{
        GError *error = NULL;
        char *dir = g_dir_make_tmp("ctrmon-attach-XXXXXX", &error);

        ck_assert_msg(dir != NULL, "g_dir_make_tmp: %s", error ? error->message : "?");
        return dir;
}

static char *make_subdir(const char *parent, const char *name)
{
        char *dir = g_build_filename(parent, name, NULL);

        ck_assert_int_eq(mkdir(dir, 0755), 0);
        return dir;
}

typedef struct {
        GPtrArray *inputs;   /* GBytes per input_cb call */
        int hangups;
} Recorder;

static void record_input_cb(const char *buf, size_t len, void *user_data)
{
        Recorder *rec = user_data;

        g_ptr_array_add(rec->inputs, g_bytes_new(buf, len));
}

static void record_hangup_cb(void *user_data)
{
        Recorder *rec = user_data;

        rec->hangups++;
}

static void recorder_init(Recorder *rec)
{
        rec->inputs = g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref);
        rec->hangups = 0;
}

static void pump(int iterations)
{
        for (int i = 0; i < iterations; i++)
                g_main_context_iteration(NULL, FALSE);
}

/* Connect a SEQPACKET client to <dir>/attach, whatever the length of dir:
 * through /proc/self/fd, like podman does for long paths. */
static int client_connect(const char *dir)
{
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        int dfd = open(dir, O_PATH | O_CLOEXEC);
        int fd;

        ck_assert_int_ge(dfd, 0);
        snprintf(addr.sun_path, sizeof(addr.sun_path), "/proc/self/fd/%d/attach", dfd);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_msg(connect(fd, (struct sockaddr *) &addr, sizeof(addr)) == 0,
                      "connect %s/attach: %s", dir, strerror(errno));
        close(dfd);
        return fd;
}

static void wait_for_clients(AttachServer *server, unsigned want)
{
        gint64 deadline = g_get_monotonic_time() + WAIT_USEC;
        AttachStats st;

        for (;;) {
                attach_server_get_stats(server, &st);
                if (st.clients == want || g_get_monotonic_time() > deadline)
                        break;
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(1000);
        }
        ck_assert_uint_eq(st.clients, want);
}

/* Receive one record, running the main loop while none is there (the
 * server's queues are flushed from it). Fails after WAIT_USEC. */
static ssize_t client_recv(int fd, char *buf, size_t size)
{
        gint64 deadline = g_get_monotonic_time() + WAIT_USEC;

        for (;;) {
                ssize_t n = recv(fd, buf, size, MSG_DONTWAIT);

                if (n >= 0)
                        return n;
                ck_assert_msg(errno == EAGAIN, "recv: %s", strerror(errno));
                ck_assert_msg(g_get_monotonic_time() < deadline, "no record within %d s",
                              (int) (WAIT_USEC / G_USEC_PER_SEC));
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(1000);
        }
}

static void wait_for(const int *counter, int want)
{
        gint64 deadline = g_get_monotonic_time() + WAIT_USEC;

        while (*counter < want && g_get_monotonic_time() < deadline) {
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(1000);
        }
        ck_assert_int_eq(*counter, want);
}

static char *pattern(size_t len, unsigned seed)
{
        char *p = g_malloc(len);

        for (size_t i = 0; i < len; i++)
                p[i] = (char) ((i * 7 + seed) % 251);
        return p;
}

static AttachServer *new_full_attach(const char *bundle, Recorder *rec, size_t queue_max)
{
        AttachConfig cfg = {
                .bundle = bundle,
                .full_attach = true,
                .input_cb = rec ? record_input_cb : NULL,
                .hangup_cb = rec ? record_hangup_cb : NULL,
                .user_data = rec,
                .client_queue_max = queue_max,
        };
        AttachServer *server = NULL;
        GError *error = NULL;

        ck_assert_msg(attach_server_new(&cfg, &server, &error) == 0, "attach_server_new: %s",
                      error ? error->message : "?");
        ck_assert_ptr_null(error);
        return server;
}

/* --- tests --- */

START_TEST(test_full_attach_socket_file_0700)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *sock = g_build_filename(dir, "attach", NULL);
        AttachServer *server;
        struct stat st;

        umask(022);
        /* A stale socket file from an earlier monitor is replaced. */
        ck_assert(g_file_set_contents(sock, "stale", -1, NULL));
        server = new_full_attach(dir, NULL, 0);
        ck_assert_int_eq(lstat(sock, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_int_eq(st.st_mode & 07777, 0700);

        attach_server_free(server);
        ck_assert_int_eq(lstat(sock, &st), -1);
        ck_assert_int_eq(errno, ENOENT);
        attach_server_free(NULL);
        rm_rf(dir);
}
END_TEST

START_TEST(test_output_framing_stdout_and_stderr)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *data = pattern(20000, 3);
        g_autofree char *buf = g_malloc(65536);
        AttachServer *server = new_full_attach(dir, NULL, 0);
        int fd = client_connect(dir);
        size_t want[] = { 8193, 8193, 3617 };
        size_t off = 0;
        ssize_t n;

        wait_for_clients(server, 1);
        attach_server_broadcast(server, CTRMON_STREAM_STDOUT, data, 20000);
        for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
                n = client_recv(fd, buf, 65536);
                ck_assert_int_eq(n, (ssize_t) want[i]);
                ck_assert_int_eq(buf[0], 2);
                ck_assert_mem_eq(buf + 1, data + off, (size_t) n - 1);
                off += (size_t) n - 1;
        }
        ck_assert_uint_eq(off, 20000);

        attach_server_broadcast(server, CTRMON_STREAM_STDERR, "oops\n", 5);
        n = client_recv(fd, buf, 65536);
        ck_assert_int_eq(n, 6);
        ck_assert_mem_eq(buf, "\3oops\n", 6);

        /* Nothing else arrived; empty broadcasts send nothing. */
        attach_server_broadcast(server, CTRMON_STREAM_STDOUT, "", 0);
        pump(10);
        ck_assert_int_eq(recv(fd, buf, 65536, MSG_DONTWAIT), -1);
        ck_assert_int_eq(errno, EAGAIN);

        close(fd);
        attach_server_free(server);
        rm_rf(dir);
}
END_TEST

START_TEST(test_input_records_reach_input_cb_verbatim)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *big = pattern(20000, 9);
        Recorder rec;
        AttachServer *server;
        int fd;
        gsize len;

        recorder_init(&rec);
        server = new_full_attach(dir, &rec, 0);
        fd = client_connect(dir);
        wait_for_clients(server, 1);

        ck_assert_int_eq(send(fd, "hello\n", 6, 0), 6);
        ck_assert_int_eq(send(fd, "\0\1\2", 3, 0), 3);
        ck_assert_int_eq(send(fd, big, 20000, 0), 20000);

        {
                gint64 deadline = g_get_monotonic_time() + WAIT_USEC;

                while (rec.inputs->len < 3 && g_get_monotonic_time() < deadline)
                        if (!g_main_context_iteration(NULL, FALSE))
                                g_usleep(1000);
        }
        ck_assert_uint_eq(rec.inputs->len, 3);
        ck_assert_mem_eq(g_bytes_get_data(rec.inputs->pdata[0], &len), "hello\n", 6);
        ck_assert_uint_eq(len, 6);
        ck_assert_mem_eq(g_bytes_get_data(rec.inputs->pdata[1], &len), "\0\1\2", 3);
        ck_assert_uint_eq(len, 3);
        ck_assert_mem_eq(g_bytes_get_data(rec.inputs->pdata[2], &len), big, 20000);
        ck_assert_uint_eq(len, 20000);
        ck_assert_int_eq(rec.hangups, 0);

        close(fd);
        attach_server_free(server);
        g_ptr_array_unref(rec.inputs);
        rm_rf(dir);
}
END_TEST

START_TEST(test_client_shutdown_write_calls_hangup_keeps_output)
{
        g_autofree char *dir = make_tmpdir();
        char buf[16384];
        Recorder rec;
        AttachServer *server;
        AttachStats st;
        ssize_t n;
        int fd;

        recorder_init(&rec);
        server = new_full_attach(dir, &rec, 0);
        fd = client_connect(dir);
        wait_for_clients(server, 1);

        ck_assert_int_eq(send(fd, "last", 4, 0), 4);
        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
        wait_for(&rec.hangups, 1);
        /* Input sent before the shutdown still arrived, first. */
        ck_assert_uint_eq(rec.inputs->len, 1);

        /* The client keeps receiving output (spec §4.4). */
        attach_server_broadcast(server, CTRMON_STREAM_STDOUT, "after", 5);
        n = client_recv(fd, buf, sizeof(buf));
        ck_assert_int_eq(n, 6);
        ck_assert_mem_eq(buf, "\2after", 6);

        /* No hangup storm from the shut-down read side. */
        pump(50);
        ck_assert_int_eq(rec.hangups, 1);
        attach_server_get_stats(server, &st);
        ck_assert_uint_eq(st.clients, 1);

        /* Once the client closes, the server forgets it. */
        close(fd);
        wait_for_clients(server, 0);
        attach_server_get_stats(server, &st);
        ck_assert_uint_eq(st.clients_total, 1);
        ck_assert_uint_eq(st.clients_full, 0);

        attach_server_free(server);
        g_ptr_array_unref(rec.inputs);
        rm_rf(dir);
}
END_TEST

START_TEST(test_symlink_mode_and_close_gives_eof)
{
        g_autofree char *tmp = make_tmpdir();
        g_autofree char *bundle = make_subdir(tmp, "bundle");
        g_autofree char *sockdir = make_subdir(tmp, "sockets");
        g_autofree char *link = g_build_filename(sockdir, "0123456789abcdef", NULL);
        g_autofree char *sock = g_build_filename(bundle, "attach", NULL);
        g_autofree char *target = NULL;
        AttachConfig cfg = {
                .bundle = bundle,
                .socket_dir_path = sockdir,
                .cuuid = "0123456789abcdef",
        };
        AttachServer *server = NULL;
        GError *error = NULL;
        char buf[16384];
        struct stat st;
        int fd1, fd2;

        ck_assert_int_eq(attach_server_new(&cfg, &server, &error), 0);
        ck_assert_int_eq(lstat(link, &st), 0);
        ck_assert(S_ISLNK(st.st_mode));
        target = g_file_read_link(link, NULL);
        ck_assert_str_eq(target, bundle);
        ck_assert_int_eq(lstat(sock, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));

        /* Clients reach the socket through the link. */
        fd1 = client_connect(link);
        fd2 = client_connect(link);
        wait_for_clients(server, 2);
        attach_server_broadcast(server, CTRMON_STREAM_STDOUT, "hi", 2);
        ck_assert_int_eq(client_recv(fd1, buf, sizeof(buf)), 3);
        ck_assert_int_eq(client_recv(fd2, buf, sizeof(buf)), 3);

        attach_server_close(server, 1000);
        ck_assert_int_eq(client_recv(fd1, buf, sizeof(buf)), 0);
        ck_assert_int_eq(client_recv(fd2, buf, sizeof(buf)), 0);
        ck_assert_int_eq(lstat(sock, &st), -1);
        ck_assert_int_eq(lstat(link, &st), -1);
        ck_assert_int_eq(errno, ENOENT);
        /* After close, broadcasts go nowhere and free is still fine. */
        attach_server_broadcast(server, CTRMON_STREAM_STDOUT, "x", 1);
        attach_server_close(server, 0);
        attach_server_free(server);

        close(fd1);
        close(fd2);
        rm_rf(tmp);
}
END_TEST

START_TEST(test_link_of_107_chars_is_truncated_and_removed)
{
        g_autofree char *tmp = make_tmpdir();
        g_autofree char *bundle = make_subdir(tmp, "bundle");
        g_autofree char *sockdir = make_subdir(tmp, "s");
        size_t cuuid_len = 107 - strlen(sockdir) - 1;
        g_autofree char *cuuid = g_strnfill(cuuid_len, 'c');
        g_autofree char *full = g_build_filename(sockdir, cuuid, NULL);
        g_autofree char *truncated = g_strndup(full, 106);
        AttachConfig cfg = { .bundle = bundle, .socket_dir_path = sockdir, .cuuid = cuuid };
        AttachServer *server = NULL;
        GError *error = NULL;
        struct stat st;
        int fd;

        ck_assert_uint_eq(strlen(full), 107);
        ck_assert_int_eq(attach_server_new(&cfg, &server, &error), 0);
        ck_assert_int_eq(lstat(truncated, &st), 0);
        ck_assert(S_ISLNK(st.st_mode));
        ck_assert_int_eq(lstat(full, &st), -1);

        fd = client_connect(truncated);
        wait_for_clients(server, 1);
        close(fd);

        /* conmon leaks this link; we remove the name we actually made. */
        attach_server_free(server);
        ck_assert_int_eq(lstat(truncated, &st), -1);
        ck_assert_int_eq(errno, ENOENT);
        rm_rf(tmp);
}
END_TEST

START_TEST(test_full_attach_long_bundle_path)
{
        g_autofree char *tmp = make_tmpdir();
        g_autofree char *name = g_strnfill(150, 'b');
        g_autofree char *bundle = make_subdir(tmp, name);
        g_autofree char *sock = g_build_filename(bundle, "attach", NULL);
        AttachServer *server;
        char buf[64];
        int fd;

        /* Longer than sun_path: bound through /proc/self/fd/N/attach. */
        ck_assert_uint_gt(strlen(sock), 108);
        server = new_full_attach(bundle, NULL, 0);
        ck_assert_int_eq(access(sock, F_OK), 0);
        fd = client_connect(bundle);
        wait_for_clients(server, 1);
        attach_server_broadcast(server, CTRMON_STREAM_STDOUT, "ok", 2);
        ck_assert_int_eq(client_recv(fd, buf, sizeof(buf)), 3);
        close(fd);
        attach_server_free(server);
        ck_assert_int_eq(access(sock, F_OK), -1);
        rm_rf(tmp);
}
END_TEST

START_TEST(test_missing_socket_dir_is_a_clear_error)
{
        g_autofree char *tmp = make_tmpdir();
        g_autofree char *bundle = make_subdir(tmp, "bundle");
        g_autofree char *sockdir = g_build_filename(tmp, "missing", NULL);
        g_autofree char *sock = g_build_filename(bundle, "attach", NULL);
        AttachConfig cfg = { .bundle = bundle, .socket_dir_path = sockdir, .cuuid = "abc" };
        AttachServer *server = (AttachServer *) 0x1;
        GError *error = NULL;

        ck_assert_int_eq(attach_server_new(&cfg, &server, &error), -ENOENT);
        ck_assert_ptr_nonnull(error);
        ck_assert_int_eq(error->code, ENOENT);
        ck_assert_msg(g_str_has_prefix(error->message, "Failed to create symlink ") &&
                              strstr(error->message, "/missing/abc") != NULL,
                      "message: %s", error->message);
        ck_assert_ptr_eq(server, (AttachServer *) 0x1);
        ck_assert_int_eq(access(sock, F_OK), -1);
        g_clear_error(&error);

        /* Without full_attach, a socket dir and cuuid are required. */
        cfg.cuuid = NULL;
        ck_assert_int_eq(attach_server_new(&cfg, &server, &error), -EINVAL);
        ck_assert_ptr_nonnull(error);
        g_clear_error(&error);
        rm_rf(tmp);
}
END_TEST

/* What backlog_cb said, in order: 1 full, 0 room again. */
typedef struct {
        GString *events;
        AttachServer *server;
        size_t pending_at_full;  /* attach_server_pending() when it filled up */
} Backlog;

static void record_backlog_cb(bool full, void *user_data)
{
        Backlog *b = user_data;
        g_string_append_c(b->events, full ? '1' : '0');
        if (full)
                b->pending_at_full = attach_server_pending(b->server);
}

/* Drain `fd` (records) into `got` until `want` payload bytes arrived,
 * running the loop so that queued records follow. */
static void read_records(int fd, GString *got, size_t want, char *buf)
{
        gint64 deadline = g_get_monotonic_time() + WAIT_USEC;
        while (got->len < want) {
                ssize_t n = recv(fd, buf, 65536, MSG_DONTWAIT);
                if (n > 0) {
                        ck_assert_int_eq(buf[0], 2);
                        g_string_append_len(got, buf + 1, n - 1);
                        continue;
                }
                ck_assert_msg(n < 0 && errno == EAGAIN, "client lost: %zd after %zu bytes", n, got->len);
                ck_assert_msg(g_get_monotonic_time() < deadline, "client starved at %zu of %zu", got->len, want);
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(500);
        }
}

START_TEST(test_slow_client_is_full_not_dropped_and_gets_every_byte)
{
        const size_t chunk = 20000, queue_max = 64 * 1024;
        g_autofree char *dir = make_tmpdir();
        g_autofree char *buf = g_malloc(65536);
        GString *got_slow = g_string_new(NULL), *got_fast = g_string_new(NULL);
        GString *sent = g_string_new(NULL);
        Backlog bl = { .events = g_string_new(NULL) };
        AttachConfig cfg = {
                .bundle = dir, .full_attach = true, .backlog_cb = record_backlog_cb,
                .user_data = &bl, .client_queue_max = queue_max,
        };
        AttachServer *server = NULL;
        AttachStats st;
        int slow, fast;

        ck_assert_int_eq(attach_server_new(&cfg, &server, NULL), 0);
        bl.server = server;
        slow = client_connect(dir);
        wait_for_clients(server, 1);
        fast = client_connect(dir);
        wait_for_clients(server, 2);

        /* As the relay does: broadcast until a client is full, then stop.
         * The fast client reads as it goes; the slow one reads nothing. */
        unsigned r = 0;
        for (; r < 1000 && bl.events->len == 0; r++) {
                g_autofree char *data = pattern(chunk, r);
                attach_server_broadcast(server, CTRMON_STREAM_STDOUT, data, chunk);
                g_string_append_len(sent, data, (gssize) chunk);
                read_records(fast, got_fast, sent->len, buf);
        }
        ck_assert_str_eq(bl.events->str, "1");
        attach_server_get_stats(server, &st);
        ck_assert_uint_eq(st.clients, 2);
        ck_assert_uint_eq(st.clients_full, 1);
        ck_assert_uint_eq(st.holds_total, 1);
        /* Full at the bound, past it by less than the broadcast that filled
         * it (20000 bytes + 3 record ids). */
        ck_assert_uint_ge(bl.pending_at_full, queue_max);
        ck_assert_uint_lt(bl.pending_at_full, queue_max + chunk + 3);
        ck_assert_uint_le(st.bytes_queued_max, queue_max + chunk + 3);

        /* Nothing was cut: the slow client now reads every byte, in order,
         * and once its backlog is down to half the server says so. */
        read_records(slow, got_slow, sent->len, buf);
        ck_assert_str_eq(bl.events->str, "10");
        ck_assert_uint_eq(got_slow->len, sent->len);
        ck_assert_mem_eq(got_slow->str, sent->str, sent->len);
        ck_assert_mem_eq(got_fast->str, sent->str, sent->len);
        attach_server_get_stats(server, &st);
        ck_assert_uint_eq(st.clients_full, 0);
        ck_assert_uint_eq(attach_server_pending(server), 0);

        close(slow);
        close(fast);
        attach_server_free(server);
        g_string_free(got_slow, TRUE);
        g_string_free(got_fast, TRUE);
        g_string_free(sent, TRUE);
        g_string_free(bl.events, TRUE);
        rm_rf(dir);
}
END_TEST

START_TEST(test_full_client_that_goes_away_releases_the_hold)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *data = pattern(20000, 3);
        Backlog bl = { .events = g_string_new(NULL) };
        AttachConfig cfg = {
                .bundle = dir, .full_attach = true, .backlog_cb = record_backlog_cb,
                .user_data = &bl, .client_queue_max = 64 * 1024,
        };
        AttachServer *server = NULL;
        int fd;

        ck_assert_int_eq(attach_server_new(&cfg, &server, NULL), 0);
        bl.server = server;
        fd = client_connect(dir);
        wait_for_clients(server, 1);
        for (int i = 0; i < 1000 && bl.events->len == 0; i++)
                attach_server_broadcast(server, CTRMON_STREAM_STDOUT, data, 20000);
        ck_assert_str_eq(bl.events->str, "1");
        /* It hangs up with its backlog unread: nothing holds the output
         * any more, and nothing is left pending. */
        close(fd);
        wait_for_clients(server, 0);
        ck_assert_str_eq(bl.events->str, "10");
        ck_assert_uint_eq(attach_server_pending(server), 0);
        attach_server_free(server);
        g_string_free(bl.events, TRUE);
        rm_rf(dir);
}
END_TEST

START_TEST(test_input_paused_waits_in_the_socket_then_arrives_in_order)
{
        g_autofree char *dir = make_tmpdir();
        Recorder rec;
        AttachServer *server;
        int fd;

        recorder_init(&rec);
        server = new_full_attach(dir, &rec, 0);
        fd = client_connect(dir);
        wait_for_clients(server, 1);

        attach_server_set_input_paused(server, true);
        for (int i = 0; i < 10; i++) {
                char b[8];
                g_snprintf(b, sizeof b, "in%d", i);
                ck_assert_int_eq(send(fd, b, strlen(b), 0), (ssize_t) strlen(b));
        }
        pump(50);
        ck_assert_uint_eq(rec.inputs->len, 0);

        attach_server_set_input_paused(server, false);
        {
                gint64 deadline = g_get_monotonic_time() + WAIT_USEC;
                while (rec.inputs->len < 10 && g_get_monotonic_time() < deadline)
                        if (!g_main_context_iteration(NULL, FALSE))
                                g_usleep(1000);
        }
        ck_assert_uint_eq(rec.inputs->len, 10);
        for (guint i = 0; i < 10; i++) {
                g_autofree char *want = g_strdup_printf("in%u", i);
                GBytes *got = g_ptr_array_index(rec.inputs, i);
                gsize len;
                const char *p = g_bytes_get_data(got, &len);
                ck_assert_uint_eq(len, strlen(want));
                ck_assert_mem_eq(p, want, len);
        }
        ck_assert_int_eq(rec.hangups, 0);
        close(fd);
        wait_for(&rec.hangups, 1);
        attach_server_free(server);
        g_ptr_array_unref(rec.inputs);
        rm_rf(dir);
}
END_TEST

typedef struct {
        int fd;
        const char *expect;      /* the payload sent, or NULL */
        size_t expect_len;
        size_t payload;          /* payload bytes received */
        bool mismatch;           /* payload differs from `expect` */
        size_t bytes;
        size_t largest;          /* largest record, id byte included */
        size_t not_stdout;       /* records without the stdout id */
        bool eof;
} Reader;

static gpointer reader_thread(gpointer data)
{
        Reader *r = data;
        char buf[16384];
        ssize_t n;

        /* Start late so the server has to queue. */
        g_usleep(100 * 1000);
        while ((n = recv(r->fd, buf, sizeof(buf), 0)) > 0) {
                r->bytes += (size_t) n;
                r->largest = MAX(r->largest, (size_t) n);
                r->not_stdout += buf[0] != CTRMON_STREAM_STDOUT;
                if (r->expect && (r->payload + (size_t) n - 1 > r->expect_len ||
                                  memcmp(buf + 1, r->expect + r->payload, (size_t) n - 1) != 0))
                        r->mismatch = true;
                r->payload += (size_t) n - 1;
        }
        r->eof = n == 0;
        return NULL;
}

/* More than the client's socket buffer (4 MiB asked) holds: most of it
 * has to wait in the server's queue. */
#define BIG_BROADCAST (16 * 1024 * 1024)

START_TEST(test_close_flushes_queued_output_before_eof)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *data = pattern(BIG_BROADCAST, 1);
        AttachServer *server = new_full_attach(dir, NULL, 0);
        Reader r = { .expect = data, .expect_len = BIG_BROADCAST };
        GThread *thread;

        r.fd = client_connect(dir);
        wait_for_clients(server, 1);
        attach_server_broadcast(server, CTRMON_STREAM_STDOUT, data, BIG_BROADCAST);
        thread = g_thread_new("reader", reader_thread, &r);
        attach_server_close(server, 20000);
        g_thread_join(thread);

        /* Every byte, in records of at most 8192 + 1 (podman's buffer). */
        ck_assert(r.eof);
        ck_assert_uint_eq(r.bytes, BIG_BROADCAST + BIG_BROADCAST / ATTACH_MAX_PAYLOAD);
        ck_assert_uint_eq(r.largest, ATTACH_MAX_PAYLOAD + 1);
        ck_assert_uint_eq(r.not_stdout, 0);
        ck_assert(!r.mismatch);
        close(r.fd);
        attach_server_free(server);
        rm_rf(dir);
}
END_TEST

START_TEST(test_close_gives_up_after_timeout)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *data = pattern(BIG_BROADCAST, 1);
        AttachServer *server = new_full_attach(dir, NULL, 0);
        gint64 start;
        char buf[16384];
        ssize_t n;
        int fd;

        fd = client_connect(dir);
        wait_for_clients(server, 1);
        attach_server_broadcast(server, CTRMON_STREAM_STDOUT, data, BIG_BROADCAST);
        start = g_get_monotonic_time();
        attach_server_close(server, 200);
        /* The client never reads: without giving up, close would never
         * return. 25 times the 200 ms asked leaves room for a loaded machine
         * (descheduling, freeing the 16 MiB queue) and still shows it. */
        ck_assert_int_lt(g_get_monotonic_time() - start, 5 * G_USEC_PER_SEC);

        while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
                ;
        ck_assert_int_eq(n, 0);
        close(fd);
        attach_server_free(server);
        rm_rf(dir);
}
END_TEST

START_TEST(test_no_input_cb_discards_input_and_notices_close)
{
        g_autofree char *dir = make_tmpdir();
        AttachServer *server = new_full_attach(dir, NULL, 0);
        char buf[64];
        int fd;

        fd = client_connect(dir);
        wait_for_clients(server, 1);
        ck_assert_int_eq(send(fd, "ignored", 7, 0), 7);
        pump(20);
        attach_server_broadcast(server, CTRMON_STREAM_STDOUT, "out", 3);
        ck_assert_int_eq(client_recv(fd, buf, sizeof(buf)), 4);
        close(fd);
        wait_for_clients(server, 0);
        attach_server_free(server);
        rm_rf(dir);
}
END_TEST

static Suite *attach_suite(void)
{
        Suite *s = suite_create("attach");
        TCase *tc;

        tc = tcase_create("socket");
        tcase_add_test(tc, test_full_attach_socket_file_0700);
        tcase_add_test(tc, test_symlink_mode_and_close_gives_eof);
        tcase_add_test(tc, test_link_of_107_chars_is_truncated_and_removed);
        tcase_add_test(tc, test_full_attach_long_bundle_path);
        tcase_add_test(tc, test_missing_socket_dir_is_a_clear_error);
        suite_add_tcase(s, tc);

        tc = tcase_create("io");
        tcase_add_test(tc, test_output_framing_stdout_and_stderr);
        tcase_add_test(tc, test_input_records_reach_input_cb_verbatim);
        tcase_add_test(tc, test_client_shutdown_write_calls_hangup_keeps_output);
        tcase_add_test(tc, test_no_input_cb_discards_input_and_notices_close);
        suite_add_tcase(s, tc);

        tc = tcase_create("backpressure");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_slow_client_is_full_not_dropped_and_gets_every_byte);
        tcase_add_test(tc, test_full_client_that_goes_away_releases_the_hold);
        tcase_add_test(tc, test_input_paused_waits_in_the_socket_then_arrives_in_order);
        tcase_add_test(tc, test_close_flushes_queued_output_before_eof);
        tcase_add_test(tc, test_close_gives_up_after_timeout);
        suite_add_tcase(s, tc);

        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(attach_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
