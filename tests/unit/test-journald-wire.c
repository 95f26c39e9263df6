/* Proves the journald driver's own transport (no libsystemd) puts on the
 * journal's socket exactly what sd_journal_sendv_with_location() would:
 * "FIELD=value\n" fields, the length-prefixed form for a value holding a
 * newline, the location fields last, a sealed memfd for an entry too big for
 * a datagram, and nothing (no error) when no journal listens. */

#include "log-journald.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ctrmon/error.h>

#define CID "0123456789abcdef0123"
#define SHORT "0123456789ab"

static char *dir;
static char *socket_path;
static int journal_fd = -1;

static void setup(void)
{
        dir = g_dir_make_tmp("ctrmon-jw-XXXXXX", NULL);
        ck_assert_ptr_nonnull(dir);
        socket_path = g_build_filename(dir, "socket", NULL);
        journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(journal_fd, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        ck_assert_uint_lt(strlen(socket_path), sizeof sa.sun_path);
        strcpy(sa.sun_path, socket_path);
        ck_assert_int_eq(bind(journal_fd, (struct sockaddr *) &sa, sizeof sa), 0);
}

static void teardown(void)
{
        close(journal_fd);
        journal_fd = -1;
        g_unlink(socket_path);
        g_rmdir(dir);
        g_clear_pointer(&socket_path, g_free);
        g_clear_pointer(&dir, g_free);
}

static LogSink *make_sink(const char *path, const char *const *labels)
{
        JournaldConfig config = { .cid = CID, .labels = labels, .socket_path = path };
        g_autoptr(GError) error = NULL;
        LogSink *s = NULL;
        ck_assert_int_eq(journald_sink_new(&config, &s, &error), 0);
        return s;
}

static void write_line(LogSink *s, const char *line)
{
        static const struct timespec now = { 1, 2 };
        g_autoptr(GError) error = NULL;
        ck_assert_int_eq(s->ops->write(s, CTRMON_STREAM_STDOUT, &now, line, strlen(line), &error), 0);
        ck_assert_ptr_null(error);
}

/* One datagram from the journal socket, and the descriptor it carried (or
 * -1); fails if none is queued. */
static GBytes *receive(int *ret_fd, size_t max)
{
        g_autofree char *buf = g_malloc(max);
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        struct iovec iov = { buf, max };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof control.buf };
        ssize_t n = recvmsg(journal_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        ck_assert_msg(n >= 0, "no datagram: %s", g_strerror(errno));
        ck_assert(!(mh.msg_flags & MSG_TRUNC));
        *ret_fd = -1;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
        return g_bytes_new(buf, (size_t) n);
}

static void assert_nothing_queued(void)
{
        char b;
        ck_assert_int_eq(recv(journal_fd, &b, 1, MSG_DONTWAIT), -1);
        ck_assert_int_eq(errno, EAGAIN);
}

/* The fixed tail every entry ends with; CODE_LINE's number is the source's. */
static void assert_location_tail(const char *data, size_t len, size_t *ret_tail_start)
{
        static const char func[] = "\nCODE_FUNC=journald_send_native\n";
        ck_assert_uint_gt(len, strlen(func));
        ck_assert(memcmp(data + len - strlen(func), func, strlen(func)) == 0);
        static const char file_line[] = "CODE_FILE=monitor/log-journald.c\nCODE_LINE=";
        const char *file = memmem(data, len, file_line, strlen(file_line));
        ck_assert_ptr_nonnull(file);
        const char *digits = file + strlen(file_line);
        const char *end = data + len - strlen(func);
        ck_assert(digits < end);
        for (const char *p = digits; p < end; p++)
                ck_assert(g_ascii_isdigit(*p));
        *ret_tail_start = (size_t) (file - data);
}

static GByteArray *binary_field(GByteArray *a, const char *name, const char *value)
{
        guint64 le = GUINT64_TO_LE((guint64) strlen(value));
        g_byte_array_append(a, (const guint8 *) name, (guint) strlen(name));
        g_byte_array_append(a, (const guint8 *) "\n", 1);
        g_byte_array_append(a, (const guint8 *) &le, sizeof le);
        g_byte_array_append(a, (const guint8 *) value, (guint) strlen(value));
        g_byte_array_append(a, (const guint8 *) "\n", 1);
        return a;
}

static void text(GByteArray *a, const char *s)
{
        g_byte_array_append(a, (const guint8 *) s, (guint) strlen(s));
}

START_TEST(test_entry_is_native_protocol_with_newline_values_length_prefixed)
{
        static const char *const labels[] = { "PLAIN_LABEL=v", "MULTI=a\nb", NULL };
        LogSink *s = make_sink(socket_path, labels);
        write_line(s, "hello\n");

        int fd;
        g_autoptr(GBytes) got = receive(&fd, 65536);
        ck_assert_int_eq(fd, -1);
        gsize len;
        const char *data = g_bytes_get_data(got, &len);
        size_t tail;
        assert_location_tail(data, len, &tail);

        g_autoptr(GByteArray) want = g_byte_array_new();
        binary_field(want, "MESSAGE", "hello\n");
        text(want, "CONTAINER_ID_FULL=" CID "\nPRIORITY=6\nCONTAINER_ID=" SHORT "\nSYSLOG_IDENTIFIER=" SHORT
                   "\nPLAIN_LABEL=v\n");
        binary_field(want, "MULTI", "a\nb");
        ck_assert_uint_eq(tail, want->len);
        ck_assert(memcmp(data, want->data, want->len) == 0);
        assert_nothing_queued();
        ck_assert_uint_eq(journald_sink_get_dropped(s), 0);
        log_sink_free(s);
}
END_TEST

START_TEST(test_entry_too_big_for_a_datagram_goes_as_sealed_memfd)
{
        /* Bigger than any send buffer the kernel grants (wmem_max, or twice
         * the 8 MiB asked for with SO_SNDBUFFORCE). */
        size_t big = 40u * 1024 * 1024;
        g_autofree char *label = g_malloc(big + 1);
        memcpy(label, "BIG=", 4);
        memset(label + 4, 'x', big - 4);
        label[big] = '\0';
        const char *const labels[] = { label, NULL };
        LogSink *s = make_sink(socket_path, labels);
        write_line(s, "line\n");

        int fd;
        g_autoptr(GBytes) got = receive(&fd, 16);
        ck_assert_uint_eq(g_bytes_get_size(got), 0);
        ck_assert_int_ge(fd, 0);
        int seals = fcntl(fd, F_GET_SEALS);
        ck_assert_int_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL),
                         F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
        off_t size = lseek(fd, 0, SEEK_END);
        ck_assert_int_gt(size, (off_t) big);
        g_autofree char *data = g_malloc((size_t) size);
        ck_assert_int_eq(pread(fd, data, (size_t) size, 0), size);
        close(fd);

        size_t tail;
        assert_location_tail(data, (size_t) size, &tail);
        g_autoptr(GByteArray) want = g_byte_array_new();
        binary_field(want, "MESSAGE", "line\n");
        text(want, "CONTAINER_ID_FULL=" CID "\nPRIORITY=6\nCONTAINER_ID=" SHORT "\nSYSLOG_IDENTIFIER=" SHORT "\n");
        text(want, label);
        text(want, "\n");
        ck_assert_uint_eq(tail, want->len);
        ck_assert(memcmp(data, want->data, want->len) == 0);
        assert_nothing_queued();
        log_sink_free(s);
}
END_TEST

START_TEST(test_no_journal_listening_drops_silently_like_sd_journal)
{
        g_autofree char *absent = g_build_filename(dir, "absent", NULL);
        LogSink *s = make_sink(absent, NULL);
        write_line(s, "lost\n");
        ck_assert_uint_eq(journald_sink_get_dropped(s), 0);
        assert_nothing_queued();
        log_sink_free(s);
}
END_TEST

START_TEST(test_field_without_equals_sign_is_refused_and_counted)
{
        static const char *const labels[] = { "NOEQUALS", NULL };
        LogSink *s = make_sink(socket_path, labels);
        static const struct timespec now = { 1, 2 };
        g_autoptr(GError) error = NULL;
        ck_assert_int_eq(s->ops->write(s, CTRMON_STREAM_STDOUT, &now, "x\n", 2, &error), -EINVAL);
        ck_assert_ptr_nonnull(error);
        ck_assert_uint_eq(journald_sink_get_dropped(s), 1);
        assert_nothing_queued();
        log_sink_free(s);
}
END_TEST

static Suite *journald_wire_suite(void)
{
        Suite *s = suite_create("journald-wire");
        TCase *tc = tcase_create("wire");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_entry_is_native_protocol_with_newline_values_length_prefixed);
        tcase_add_test(tc, test_entry_too_big_for_a_datagram_goes_as_sealed_memfd);
        tcase_add_test(tc, test_no_journal_listening_drops_silently_like_sd_journal);
        tcase_add_test(tc, test_field_without_equals_sign_is_refused_and_counted);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(journald_wire_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
