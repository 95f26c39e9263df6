/* Unit tests for monitor/out-queue.c: the non-blocking output queue behind
 * API answers, API attach frames, an exec's stdin and the container's stdin.
 * Real socketpairs and pipes, driven through the default GMainContext. */
#include "out-queue.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
        int drained;
        int failed;
        int last_error;
        bool free_on_event; /* the owner frees the queue from its callback */
        OutQueue *q;
} Events;

static void events_cb(OutQueue *q, OutQueueEvent event, int error, void *user_data)
{
        Events *e = user_data;
        ck_assert_ptr_eq(q, e->q);
        if (event == OUT_QUEUE_DRAINED)
                e->drained++;
        else
                e->failed++;
        e->last_error = error;
        if (e->free_on_event) {
                out_queue_free(q);
                e->q = NULL;
        }
}

static void make_stream_pair(int fds[2], int sndbuf)
{
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds), 0);
        if (sndbuf > 0)
                setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
}

/* The i-th byte of a test stream: a function of the offset, so a lost,
 * doubled or reordered piece shows. */
static guint8 pattern_byte(size_t i)
{
        return (guint8) ((i * 7 + i / 251) & 0xff);
}

static void fill_pattern(guint8 *buf, size_t off, size_t len)
{
        for (size_t i = 0; i < len; i++)
                buf[i] = pattern_byte(off + i);
}

/* Read what is there now from a non-blocking fd into `got`. */
static void read_available(int fd, GByteArray *got)
{
        guint8 buf[65536];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n <= 0)
                        return;
                g_byte_array_append(got, buf, (guint) n);
        }
}

START_TEST(test_append_writes_at_once_and_reports_drained)
{
        int fds[2];
        make_stream_pair(fds, 0);
        Events e = { 0 };
        e.q = out_queue_new(fds[0], OUT_QUEUE_SOCKET, events_cb, &e);
        out_queue_append(e.q, "hello\n", 6);
        ck_assert_int_eq(e.drained, 1);
        ck_assert_int_eq(e.failed, 0);
        ck_assert_uint_eq(out_queue_pending(e.q), 0);
        ck_assert_uint_eq(out_queue_written(e.q), 6);
        char buf[16] = { 0 };
        ck_assert_int_eq(read(fds[1], buf, sizeof buf), 6);
        ck_assert_str_eq(buf, "hello\n");
        out_queue_free(e.q);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

START_TEST(test_iov_pieces_leave_together_in_order)
{
        int fds[2];
        make_stream_pair(fds, 0);
        Events e = { 0 };
        e.q = out_queue_new(fds[0], OUT_QUEUE_SOCKET, events_cb, &e);
        struct iovec iov[3] = { { "ab", 2 }, { "", 0 }, { "cde", 3 } };
        out_queue_append_iov(e.q, iov, 3);
        char buf[16] = { 0 };
        ck_assert_int_eq(read(fds[1], buf, sizeof buf), 5);
        ck_assert_str_eq(buf, "abcde");
        ck_assert_int_eq(e.drained, 1);
        out_queue_free(e.q);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

/* More than the socket holds: the rest waits for a G_IO_OUT watch, every
 * byte arrives once and in order, DRAINED comes when all is out. */
START_TEST(test_full_socket_is_written_from_the_main_loop_byte_exact)
{
        int fds[2];
        make_stream_pair(fds, 4096);
        Events e = { 0 };
        e.q = out_queue_new(fds[0], OUT_QUEUE_SOCKET, events_cb, &e);
        const size_t total = 3 * 1024 * 1024, piece = 100000;
        g_autofree guint8 *chunk = g_malloc(piece);
        for (size_t off = 0; off < total; off += piece) {
                size_t len = MIN(piece, total - off);
                fill_pattern(chunk, off, len);
                out_queue_append(e.q, chunk, len);
        }
        ck_assert_uint_gt(out_queue_pending(e.q), 0);
        ck_assert_int_eq(e.drained, 0);

        g_autoptr(GByteArray) got = g_byte_array_new();
        gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
        while (got->len < total && g_get_monotonic_time() < deadline) {
                read_available(fds[1], got);
                g_main_context_iteration(NULL, FALSE);
        }
        read_available(fds[1], got);
        ck_assert_uint_eq(got->len, total);
        for (size_t i = 0; i < total; i++)
                if (got->data[i] != pattern_byte(i))
                        ck_abort_msg("byte %zu differs", i);
        ck_assert_uint_eq(out_queue_written(e.q), total);
        ck_assert_uint_eq(out_queue_pending(e.q), 0);
        ck_assert_int_eq(e.drained, 1);
        ck_assert_int_eq(e.failed, 0);
        out_queue_free(e.q);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

/* Appending while earlier bytes are only partly written (the compaction
 * path, with a big consumed prefix) keeps the stream exact. */
START_TEST(test_appends_between_partial_writes_keep_the_stream_exact)
{
        int fds[2];
        make_stream_pair(fds, 4096);
        Events e = { 0 };
        e.q = out_queue_new(fds[0], OUT_QUEUE_SOCKET, events_cb, &e);
        const size_t total = 2 * 1024 * 1024, piece = 70000;
        g_autofree guint8 *chunk = g_malloc(piece);
        g_autoptr(GByteArray) got = g_byte_array_new();
        size_t off = 0;
        while (off < total) {
                size_t len = MIN(piece, total - off);
                fill_pattern(chunk, off, len);
                out_queue_append(e.q, chunk, len);
                off += len;
                read_available(fds[1], got);
                g_main_context_iteration(NULL, FALSE);
        }
        gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
        while (got->len < total && g_get_monotonic_time() < deadline) {
                read_available(fds[1], got);
                g_main_context_iteration(NULL, FALSE);
        }
        ck_assert_uint_eq(got->len, total);
        for (size_t i = 0; i < total; i++)
                if (got->data[i] != pattern_byte(i))
                        ck_abort_msg("byte %zu differs", i);
        out_queue_free(e.q);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

START_TEST(test_closed_peer_reports_failed_and_takes_nothing_more)
{
        int fds[2];
        make_stream_pair(fds, 0);
        close(fds[1]);
        Events e = { 0 };
        e.q = out_queue_new(fds[0], OUT_QUEUE_SOCKET, events_cb, &e);
        out_queue_append(e.q, "x", 1);
        ck_assert_int_eq(e.failed, 1);
        ck_assert_int_eq(e.last_error, EPIPE);
        ck_assert(out_queue_failed(e.q));
        out_queue_append(e.q, "y", 1);
        ck_assert_int_eq(e.failed, 1);
        ck_assert_uint_eq(out_queue_pending(e.q), 0);
        ck_assert_uint_eq(out_queue_written(e.q), 0);
        out_queue_free(e.q);
        close(fds[0]);
}
END_TEST

/* A pipe whose reader is gone: EPIPE (SIGPIPE is ignored, as in the
 * monitor), reported once. */
START_TEST(test_pipe_without_reader_reports_epipe)
{
        signal(SIGPIPE, SIG_IGN);
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        close(p[0]);
        Events e = { 0 };
        e.q = out_queue_new(p[1], OUT_QUEUE_PIPE, events_cb, &e);
        out_queue_append(e.q, "data", 4);
        ck_assert_int_eq(e.failed, 1);
        ck_assert_int_eq(e.last_error, EPIPE);
        out_queue_free(e.q);
        close(p[1]);
}
END_TEST

/* The owner may free the queue from its callback, both when called from
 * append and from the main loop's watch (run under ASan in CI). */
START_TEST(test_callback_may_free_the_queue)
{
        int fds[2];
        make_stream_pair(fds, 4096);
        Events e = { .free_on_event = true };
        e.q = out_queue_new(fds[0], OUT_QUEUE_SOCKET, events_cb, &e);
        out_queue_append(e.q, "a", 1);
        ck_assert_ptr_null(e.q);
        ck_assert_int_eq(e.drained, 1);

        Events f = { .free_on_event = true };
        f.q = out_queue_new(fds[0], OUT_QUEUE_SOCKET, events_cb, &f);
        g_autofree guint8 *big = g_malloc0(1024 * 1024);
        out_queue_append(f.q, big, 1024 * 1024);
        ck_assert_ptr_nonnull(f.q);
        close(fds[1]); /* the watch now finds the peer gone */
        gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        while (f.q && g_get_monotonic_time() < deadline)
                g_main_context_iteration(NULL, FALSE);
        ck_assert_ptr_null(f.q);
        ck_assert_int_eq(f.failed, 1);
        close(fds[0]);
}
END_TEST

START_TEST(test_flush_nothing_pending_reports_drained)
{
        int fds[2];
        make_stream_pair(fds, 0);
        Events e = { 0 };
        e.q = out_queue_new(fds[0], OUT_QUEUE_SOCKET, events_cb, &e);
        out_queue_flush(e.q);
        ck_assert_int_eq(e.drained, 1);
        out_queue_free(e.q);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

START_TEST(test_push_writes_nothing_until_flush_until)
{
        int fds[2];
        make_stream_pair(fds, 0);
        Events e = { 0 };
        e.q = out_queue_new(fds[0], OUT_QUEUE_SOCKET, events_cb, &e);
        struct iovec iov = { "frame", 5 };
        out_queue_push_iov(e.q, &iov, 1);
        char buf[16] = { 0 };
        ck_assert_int_eq(read(fds[1], buf, sizeof buf), -1);
        ck_assert_int_eq(errno, EAGAIN);
        ck_assert_uint_eq(out_queue_pending(e.q), 5);
        ck_assert_int_eq(out_queue_flush_until(e.q, g_get_monotonic_time() + G_USEC_PER_SEC), 0);
        ck_assert_int_eq(read(fds[1], buf, sizeof buf), 5);
        ck_assert_str_eq(buf, "frame");
        ck_assert_int_eq(e.drained + e.failed, 0); /* flush_until makes no callback */
        out_queue_free(e.q);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

/* A peer that never reads: flush_until gives up at its deadline. */
START_TEST(test_flush_until_stops_at_the_deadline)
{
        int fds[2];
        make_stream_pair(fds, 4096);
        Events e = { 0 };
        e.q = out_queue_new(fds[0], OUT_QUEUE_SOCKET, events_cb, &e);
        g_autofree guint8 *big = g_malloc0(1024 * 1024);
        struct iovec iov = { big, 1024 * 1024 };
        out_queue_push_iov(e.q, &iov, 1);
        ck_assert_int_eq(out_queue_flush_until(e.q, g_get_monotonic_time() + 50 * 1000), -EAGAIN);
        ck_assert_uint_gt(out_queue_pending(e.q), 0);
        ck_assert_uint_gt(out_queue_written(e.q), 0);
        out_queue_discard(e.q);
        ck_assert_uint_eq(out_queue_pending(e.q), 0);
        out_queue_free(e.q);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

static Suite *out_queue_suite(void)
{
        Suite *s = suite_create("out-queue");
        TCase *tc = tcase_create("queue");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_append_writes_at_once_and_reports_drained);
        tcase_add_test(tc, test_iov_pieces_leave_together_in_order);
        tcase_add_test(tc, test_full_socket_is_written_from_the_main_loop_byte_exact);
        tcase_add_test(tc, test_appends_between_partial_writes_keep_the_stream_exact);
        tcase_add_test(tc, test_closed_peer_reports_failed_and_takes_nothing_more);
        tcase_add_test(tc, test_pipe_without_reader_reports_epipe);
        tcase_add_test(tc, test_callback_may_free_the_queue);
        tcase_add_test(tc, test_flush_nothing_pending_reports_drained);
        tcase_add_test(tc, test_push_writes_nothing_until_flush_until);
        tcase_add_test(tc, test_flush_until_stops_at_the_deadline);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(out_queue_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
