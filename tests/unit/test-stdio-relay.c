/* Unit tests for monitor/stdio-relay.c's back-pressure: a hold stops the
 * reading of the container's output and nothing is lost; the container's
 * stdin queue tells its producers when it is full and when it has room;
 * input written before the fd exists waits and goes first. Real pipes,
 * driven through the default GMainContext. */
#include "stdio-relay.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_USEC (10 * G_USEC_PER_SEC)

static void output_cb(CtrmonStream stream, const char *buf, size_t len, void *user_data)
{
        g_byte_array_append(user_data, (const guint8 *) buf, (guint) len);
}

static void pump_for(int ms)
{
        gint64 end = g_get_monotonic_time() + ms * 1000;
        while (g_get_monotonic_time() < end)
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(1000);
}

static void pump_until_len(GByteArray *got, guint want)
{
        gint64 deadline = g_get_monotonic_time() + WAIT_USEC;
        while (got->len < want && g_get_monotonic_time() < deadline)
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(1000);
        ck_assert_uint_eq(got->len, want);
}

static void make_pipe(int fds[2])
{
        ck_assert_int_eq(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
}

static guint8 pattern_byte(size_t i)
{
        return (guint8) ((i * 13 + i / 253) & 0xff);
}

START_TEST(test_hold_stops_reading_and_release_delivers_everything_in_order)
{
        int fds[2];
        g_autoptr(GByteArray) got = g_byte_array_new();
        StdioRelay *r = stdio_relay_new(NULL);
        guint8 buf[4096];

        make_pipe(fds);
        stdio_relay_add_listener(r, output_cb, got);
        stdio_relay_add_output(r, fds[0], CTRMON_STREAM_STDOUT);

        for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = pattern_byte(i);
        ck_assert_int_eq(write(fds[1], buf, 1000), 1000);
        pump_until_len(got, 1000);

        /* Held: what the container writes stays in the pipe. */
        stdio_relay_hold_output(r);
        stdio_relay_hold_output(r); /* two consumers */
        ck_assert(stdio_relay_output_held(r));
        ck_assert_int_eq(write(fds[1], buf + 1000, 3096), 3096);
        pump_for(50);
        ck_assert_uint_eq(got->len, 1000);
        stdio_relay_release_output(r);
        pump_for(50);
        ck_assert_uint_eq(got->len, 1000); /* one hold is left */

        stdio_relay_release_output(r);
        ck_assert(!stdio_relay_output_held(r));
        pump_until_len(got, sizeof buf);
        ck_assert_mem_eq(got->data, buf, sizeof buf);

        StdioStats st;
        stdio_relay_get_stats(r, &st);
        ck_assert_uint_eq(st.output_held_count, 1);
        ck_assert_uint_eq(st.bytes[0], sizeof buf);

        /* EOF while held is seen once released. */
        stdio_relay_hold_output(r);
        close(fds[1]);
        pump_for(30);
        ck_assert(stdio_relay_outputs_open(r));
        stdio_relay_release_output(r);
        {
                gint64 deadline = g_get_monotonic_time() + WAIT_USEC;
                while (stdio_relay_outputs_open(r) && g_get_monotonic_time() < deadline)
                        if (!g_main_context_iteration(NULL, FALSE))
                                g_usleep(1000);
        }
        ck_assert(!stdio_relay_outputs_open(r));
        stdio_relay_free(r);
}
END_TEST

START_TEST(test_drain_reads_even_while_held)
{
        int fds[2];
        g_autoptr(GByteArray) got = g_byte_array_new();
        StdioRelay *r = stdio_relay_new(NULL);

        make_pipe(fds);
        stdio_relay_add_listener(r, output_cb, got);
        stdio_relay_add_output(r, fds[0], CTRMON_STREAM_STDOUT);
        stdio_relay_hold_output(r);
        ck_assert_int_eq(write(fds[1], "last words", 10), 10);
        close(fds[1]);
        /* At the exit everything goes into the log before the exit files,
         * whoever holds the output. */
        stdio_relay_drain(r);
        ck_assert_uint_eq(got->len, 10);
        ck_assert_mem_eq(got->data, "last words", 10);
        stdio_relay_release_output(r);
        stdio_relay_free(r);
}
END_TEST

typedef struct {
        GString *events; /* '1' full, '0' room */
} Room;

static void room_cb(bool full, void *user_data)
{
        Room *room = user_data;
        g_string_append_c(room->events, full ? '1' : '0');
}

START_TEST(test_stdin_queue_says_full_at_1_mib_and_room_once_read_every_byte_in_order)
{
        const size_t chunk = 64 * 1024, total = 3 * 1024 * 1024;
        int fds[2];
        Room room = { g_string_new(NULL) };
        StdioRelay *r = stdio_relay_new(NULL);
        g_autoptr(GByteArray) got = g_byte_array_new();
        g_autofree guint8 *buf = g_malloc(chunk);
        size_t written = 0;

        make_pipe(fds);
        stdio_relay_watch_input(r, room_cb, &room);
        stdio_relay_set_input(r, fds[1]);

        /* A producer that obeys: it writes until told the queue is full. */
        while (room.events->len == 0 && written < total) {
                for (size_t i = 0; i < chunk; i++)
                        buf[i] = pattern_byte(written + i);
                stdio_relay_write_input(r, (const char *) buf, chunk);
                written += chunk;
        }
        ck_assert_str_eq(room.events->str, "1");
        ck_assert(stdio_relay_input_full(r));
        StdioStats st;
        stdio_relay_get_stats(r, &st);
        /* The pipe took its 64 KiB; the queue holds 1 MiB, no more than the
         * chunk that crossed the bound past it. */
        ck_assert_uint_ge(st.stdin_queued, 1024 * 1024);
        ck_assert_uint_lt(st.stdin_queued, 1024 * 1024 + chunk);

        /* The container reads: once it has taken everything, room again. */
        gint64 deadline = g_get_monotonic_time() + WAIT_USEC;
        while (got->len < written && g_get_monotonic_time() < deadline) {
                guint8 rb[65536];
                ssize_t n = read(fds[0], rb, sizeof rb);
                if (n > 0)
                        g_byte_array_append(got, rb, (guint) n);
                else if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(500);
        }
        pump_for(20);
        ck_assert_uint_eq(got->len, written);
        for (size_t i = 0; i < written; i++)
                if (got->data[i] != pattern_byte(i))
                        ck_abort_msg("stdin byte %zu differs", i);
        ck_assert_str_eq(room.events->str, "10");
        ck_assert(!stdio_relay_input_full(r));

        close(fds[0]);
        stdio_relay_free(r);
        g_string_free(room.events, TRUE);
}
END_TEST

START_TEST(test_input_before_the_fd_waits_then_goes_first)
{
        int fds[2];
        StdioRelay *r = stdio_relay_new(NULL);
        char buf[64];

        /* Without expect_input there is no stdin: input is dropped. */
        stdio_relay_write_input(r, "lost", 4);
        stdio_relay_expect_input(r);
        stdio_relay_write_input(r, "early ", 6);
        stdio_relay_write_input(r, "input ", 6);
        StdioStats st;
        stdio_relay_get_stats(r, &st);
        ck_assert_uint_eq(st.stdin_queued, 12);

        make_pipe(fds);
        stdio_relay_set_input(r, fds[1]);
        stdio_relay_write_input(r, "later", 5);
        ck_assert_int_eq(read(fds[0], buf, sizeof buf), 17);
        ck_assert_mem_eq(buf, "early input later", 17);
        stdio_relay_get_stats(r, &st);
        ck_assert_uint_eq(st.stdin_bytes, 17);
        close(fds[0]);
        stdio_relay_free(r);
}
END_TEST

static Suite *stdio_relay_suite(void)
{
        Suite *s = suite_create("stdio-relay");
        TCase *tc = tcase_create("back-pressure");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_hold_stops_reading_and_release_delivers_everything_in_order);
        tcase_add_test(tc, test_drain_reads_even_while_held);
        tcase_add_test(tc, test_stdin_queue_says_full_at_1_mib_and_room_once_read_every_byte_in_order);
        tcase_add_test(tc, test_input_before_the_fd_waits_then_goes_first);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(stdio_relay_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
