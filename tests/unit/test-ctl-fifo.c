/* Unit tests for monitor/ctl-fifo.c: the ctl/winsz line protocol (parser and
 * line assembly, spec §5.1) and the real FIFOs driven through the default
 * GMainContext. */
#include "ctl-fifo.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- helpers --- */

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
        char *dir = g_dir_make_tmp("ctrmon-ctl-XXXXXX", &error);

        ck_assert_msg(dir != NULL, "g_dir_make_tmp: %s", error ? error->message : "?");
        return dir;
}

typedef struct {
        int n_resize;
        int rows[64];
        int cols[64];
        int n_reopen;
} Recorder;

static void record_resize_cb(int rows, int cols, void *user_data)
{
        Recorder *rec = user_data;

        ck_assert_int_lt(rec->n_resize, (int) G_N_ELEMENTS(rec->rows));
        rec->rows[rec->n_resize] = rows;
        rec->cols[rec->n_resize] = cols;
        rec->n_resize++;
}

static void record_reopen_cb(void *user_data)
{
        Recorder *rec = user_data;

        rec->n_reopen++;
}

/* The line callback a ctl reader would use, recording into a Recorder. */
static bool record_ctl_line(const char *line, void *user_data)
{
        CtlMessage msg;

        if (ctl_parse_line(line, &msg) < 0)
                return false;
        if (msg.type == CTL_MSG_RESIZE)
                record_resize_cb(msg.a, msg.b, user_data);
        else
                record_reopen_cb(user_data);
        return true;
}

static void feed_str(CtlLineBuffer *lb, const char *s, Recorder *rec)
{
        ctl_line_buffer_feed(lb, s, strlen(s), record_ctl_line, rec);
}

/* Iterate the default context until `*counter` reaches `want` or 20 s pass
 * (only a bound on slowness: generous for a loaded machine). */
static void pump_until(const int *counter, int want)
{
        gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

        while (*counter < want && g_get_monotonic_time() < deadline) {
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(1000);
        }
        ck_assert_int_eq(*counter, want);
}

static void write_all(int fd, const char *s)
{
        ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t) strlen(s));
}

/* --- the parser --- */

typedef struct {
        const char *line;
        int ret;
        int type, a, b;
} CtlCase;

static const CtlCase ctl_cases[] = {
        { "1 24 80", 0, 1, 24, 80 },
        { "1 24 80\n", 0, 1, 24, 80 },
        { "2 0 0", 0, 2, 0, 0 },
        { "1 0 0", 0, 1, 0, 0 },
        { "1 1000 1000", 0, 1, 1000, 1000 },
        { "1 2 2 3", 0, 1, 2, 2 },            /* extra tokens ignored */
        { "1 0010 0020", 0, 1, 10, 20 },      /* leading zeros are decimal */
        { "   1 \t 5   6", 0, 1, 5, 6 },      /* leading whitespace */
        { "1 2 3.5", 0, 1, 2, 3 },            /* sscanf stops at '.' after 3 ints */
        { "1 2 3abc", 0, 1, 2, 3 },
        { "1 +5 6", 0, 1, 5, 6 },             /* %d takes a sign */
        { "2 1000 0", 0, 2, 1000, 0 },
        { "1 -1 5", -EINVAL, 0, 0, 0 },
        { "1 5 -1", -EINVAL, 0, 0, 0 },
        { "1 1001 5", -EINVAL, 0, 0, 0 },
        { "1 5 1001", -EINVAL, 0, 0, 0 },
        { "2 0 1001", -EINVAL, 0, 0, 0 },     /* range checked for reopen too */
        { "2 -1 0", -EINVAL, 0, 0, 0 },
        { "2 0", -EINVAL, 0, 0, 0 },          /* reopen needs two numbers */
        { "2", -EINVAL, 0, 0, 0 },
        { "3 1 1", -EINVAL, 0, 0, 0 },
        { "0 1 1", -EINVAL, 0, 0, 0 },
        { "-1 1 1", -EINVAL, 0, 0, 0 },
        { "1 0x10 5", -EINVAL, 0, 0, 0 },     /* hex: "0" then "x10" fails */
        { "0x1 2 3", -EINVAL, 0, 0, 0 },
        { "1 1.5 2", -EINVAL, 0, 0, 0 },      /* float in the middle */
        { "1 24", -EINVAL, 0, 0, 0 },
        { "", -EINVAL, 0, 0, 0 },
        { "\n", -EINVAL, 0, 0, 0 },
        { "resize 1 2", -EINVAL, 0, 0, 0 },
};

START_TEST(test_parse_ctl_line_table)
{
        const CtlCase *c = &ctl_cases[_i];
        CtlMessage msg = { .type = -7, .a = -7, .b = -7 };
        int r = ctl_parse_line(c->line, &msg);

        ck_assert_msg(r == c->ret, "\"%s\": got %d, want %d", c->line, r, c->ret);
        if (c->ret == 0) {
                ck_assert_int_eq(msg.type, c->type);
                ck_assert_int_eq(msg.a, c->a);
                ck_assert_int_eq(msg.b, c->b);
        } else {
                /* Out-parameters are untouched on failure. */
                ck_assert_int_eq(msg.type, -7);
                ck_assert_int_eq(msg.a, -7);
                ck_assert_int_eq(msg.b, -7);
        }
}
END_TEST

typedef struct {
        const char *line;
        int ret;
        int rows, cols;
} WinszCase;

static const WinszCase winsz_cases[] = {
        { "5 6", 0, 5, 6 },
        { "5 6\n", 0, 5, 6 },
        { "0 0", 0, 0, 0 },
        { "1000 1000", 0, 1000, 1000 },
        { " 05 06 extra", 0, 5, 6 },
        { "24 80 1", 0, 24, 80 },
        { "5", -EINVAL, 0, 0 },
        { "-1 5", -EINVAL, 0, 0 },
        { "5 1001", -EINVAL, 0, 0 },
        { "x 5", -EINVAL, 0, 0 },
        { "0x5 5", -EINVAL, 0, 0 },
        { "", -EINVAL, 0, 0 },
};

START_TEST(test_parse_winsz_line_table)
{
        const WinszCase *c = &winsz_cases[_i];
        int rows = -7, cols = -7;
        int r = ctl_parse_winsz_line(c->line, &rows, &cols);

        ck_assert_msg(r == c->ret, "\"%s\": got %d, want %d", c->line, r, c->ret);
        ck_assert_int_eq(rows, c->ret == 0 ? c->rows : -7);
        ck_assert_int_eq(cols, c->ret == 0 ? c->cols : -7);
}
END_TEST

/* --- line assembly --- */

START_TEST(test_line_buffer_invalid_line_discards_rest_of_read)
{
        CtlLineBuffer lb = { 0 };
        Recorder rec = { 0 };

        feed_str(&lb, "1 -1 5\n1 20 30\n", &rec);
        ck_assert_int_eq(rec.n_resize, 0);

        feed_str(&lb, "1 40 50\n", &rec);
        ck_assert_int_eq(rec.n_resize, 1);
        ck_assert_int_eq(rec.rows[0], 40);
        ck_assert_int_eq(rec.cols[0], 50);
}
END_TEST

START_TEST(test_line_buffer_lines_before_invalid_are_applied)
{
        CtlLineBuffer lb = { 0 };
        Recorder rec = { 0 };

        feed_str(&lb, "1 1 2\n9 9 9\n1 3 4\n", &rec);
        ck_assert_int_eq(rec.n_resize, 1);
        ck_assert_int_eq(rec.rows[0], 1);
        ck_assert_int_eq(rec.cols[0], 2);
        ck_assert_uint_eq(lb.len, 0);
}
END_TEST

START_TEST(test_line_buffer_several_lines_in_order)
{
        CtlLineBuffer lb = { 0 };
        Recorder rec = { 0 };

        feed_str(&lb, "1 1 2\n2 0 0\n1 3 4\n", &rec);
        ck_assert_int_eq(rec.n_resize, 2);
        ck_assert_int_eq(rec.rows[0], 1);
        ck_assert_int_eq(rec.cols[0], 2);
        ck_assert_int_eq(rec.rows[1], 3);
        ck_assert_int_eq(rec.cols[1], 4);
        ck_assert_int_eq(rec.n_reopen, 1);
}
END_TEST

START_TEST(test_line_buffer_split_line_across_reads)
{
        CtlLineBuffer lb = { 0 };
        Recorder rec = { 0 };

        feed_str(&lb, "1 40", &rec);
        ck_assert_int_eq(rec.n_resize, 0);
        feed_str(&lb, " 50\n1 7", &rec);
        ck_assert_int_eq(rec.n_resize, 1);
        ck_assert_int_eq(rec.rows[0], 40);
        ck_assert_int_eq(rec.cols[0], 50);
        feed_str(&lb, " 8\n", &rec);
        ck_assert_int_eq(rec.n_resize, 2);
        ck_assert_int_eq(rec.rows[1], 7);
        ck_assert_int_eq(rec.cols[1], 8);
}
END_TEST

START_TEST(test_line_buffer_reopen)
{
        CtlLineBuffer lb = { 0 };
        Recorder rec = { 0 };

        feed_str(&lb, "2 0 0\n", &rec);
        ck_assert_int_eq(rec.n_reopen, 1);
        ck_assert_int_eq(rec.n_resize, 0);
}
END_TEST

START_TEST(test_line_buffer_does_not_join_lines)
{
        CtlLineBuffer lb = { 0 };
        Recorder rec = { 0 };

        /* conmon gives sscanf the rest of the buffer, so "1 2\n" borrowed
         * the next line's first number; each line stands alone here. */
        feed_str(&lb, "1 2\n", &rec);
        feed_str(&lb, "1 5 6\n", &rec);
        ck_assert_int_eq(rec.n_resize, 1);
        ck_assert_int_eq(rec.rows[0], 5);
        ck_assert_int_eq(rec.cols[0], 6);
}
END_TEST

START_TEST(test_line_buffer_overlong_line_never_recognised)
{
        CtlLineBuffer lb = { 0 };
        Recorder rec = { 0 };
        char chunk[CTL_READ_MAX];

        /* 199 spaces (a full read without newline), then the rest of the
         * same line, which on its own would be a valid message. */
        memset(chunk, ' ', sizeof(chunk));
        ctl_line_buffer_feed(&lb, chunk, sizeof(chunk), record_ctl_line, &rec);
        ck_assert_uint_eq(lb.len, 0);
        feed_str(&lb, "1 20 30\n", &rec);
        ck_assert_int_eq(rec.n_resize, 0);

        feed_str(&lb, "1 40 50\n", &rec);
        ck_assert_int_eq(rec.n_resize, 1);
        ck_assert_int_eq(rec.rows[0], 40);
        ck_assert_int_eq(rec.cols[0], 50);
}
END_TEST

START_TEST(test_line_buffer_overlong_tail_fills_buffer)
{
        CtlLineBuffer lb = { 0 };
        Recorder rec = { 0 };
        char chunk[CTL_READ_MAX - 3];

        /* A kept tail plus a read that fills the buffer without newline. */
        feed_str(&lb, "1 2", &rec);
        memset(chunk, '3', sizeof(chunk));
        ctl_line_buffer_feed(&lb, chunk, sizeof(chunk), record_ctl_line, &rec);
        ck_assert_uint_eq(lb.len, 0);
        feed_str(&lb, "33\n1 9 9\n", &rec);
        /* "33" ends the dropped line; the next line is new and applies. */
        ck_assert_int_eq(rec.n_resize, 1);
        ck_assert_int_eq(rec.rows[0], 9);
}
END_TEST

START_TEST(test_line_buffer_big_feed_is_chunked)
{
        CtlLineBuffer lb = { 0 };
        Recorder rec = { 0 };
        GString *s = g_string_new(NULL);

        /* More than one buffer's worth in one feed: every line arrives. */
        for (int i = 0; i < 40; i++)
                g_string_append_printf(s, "1 %d %d\n", i, i + 1);
        ck_assert_uint_gt(s->len, CTL_READ_MAX);
        ctl_line_buffer_feed(&lb, s->str, s->len, record_ctl_line, &rec);
        ck_assert_int_eq(rec.n_resize, 40);
        for (int i = 0; i < 40; i++) {
                ck_assert_int_eq(rec.rows[i], i);
                ck_assert_int_eq(rec.cols[i], i + 1);
        }
        g_string_free(s, TRUE);
}
END_TEST

/* --- the FIFOs --- */

static void assert_fifo_0640(const char *dir, const char *name)
{
        g_autofree char *path = g_build_filename(dir, name, NULL);
        struct stat st;

        ck_assert_int_eq(lstat(path, &st), 0);
        ck_assert_msg(S_ISFIFO(st.st_mode), "%s is not a FIFO", path);
        ck_assert_int_eq(st.st_mode & 07777, 0640);
}

START_TEST(test_fifos_created_0640)
{
        g_autofree char *dir = make_tmpdir();
        CtlHandlers h = { 0 };
        CtlFifos *fifos = NULL;
        GError *error = NULL;

        umask(022);
        ck_assert_int_eq(ctl_fifos_new(dir, &h, &fifos, &error), 0);
        ck_assert_ptr_null(error);
        assert_fifo_0640(dir, "ctl");
        assert_fifo_0640(dir, "winsz");

        /* Free leaves them behind, as conmon does. */
        ctl_fifos_free(fifos);
        assert_fifo_0640(dir, "ctl");
        rm_rf(dir);
}
END_TEST

START_TEST(test_fifo_ctl_resize_and_reopen_via_main_loop)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *ctl = g_build_filename(dir, "ctl", NULL);
        Recorder rec = { 0 };
        CtlHandlers h = { .resize_cb = record_resize_cb, .reopen_cb = record_reopen_cb, .user_data = &rec };
        g_autoptr(CtlFifos) fifos = NULL;
        GError *error = NULL;
        int fd;

        ck_assert_int_eq(ctl_fifos_new(dir, &h, &fifos, &error), 0);

        /* Blocking open for writing returns at once: we hold a reader. */
        alarm(10);
        fd = open(ctl, O_WRONLY | O_CLOEXEC);
        alarm(0);
        ck_assert_int_ge(fd, 0);

        write_all(fd, "1 24 80\n");
        pump_until(&rec.n_resize, 1);
        ck_assert_int_eq(rec.rows[0], 24);
        ck_assert_int_eq(rec.cols[0], 80);

        write_all(fd, "2 0 0\n");
        pump_until(&rec.n_reopen, 1);

        /* A bad write is dropped; the next one works. */
        write_all(fd, "1 -1 5\n1 20 30\n");
        for (int i = 0; i < 20; i++)
                g_main_context_iteration(NULL, FALSE);
        ck_assert_int_eq(rec.n_resize, 1);
        write_all(fd, "1 40");
        for (int i = 0; i < 20; i++)
                g_main_context_iteration(NULL, FALSE);
        write_all(fd, " 50\n");
        pump_until(&rec.n_resize, 2);
        ck_assert_int_eq(rec.rows[1], 40);
        ck_assert_int_eq(rec.cols[1], 50);
        close(fd);

        /* Our own writer keeps the FIFO from reporting HUP now that the
         * engine's writer is gone: nothing is left to dispatch. */
        for (int i = 0; i < 5; i++)
                g_main_context_iteration(NULL, FALSE);
        ck_assert(!g_main_context_iteration(NULL, FALSE));

        ctl_fifos_close(fifos, true);
        ck_assert_int_eq(access(ctl, F_OK), -1);
        rm_rf(dir);
}
END_TEST

START_TEST(test_fifo_winsz_resize_via_main_loop)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *winsz = g_build_filename(dir, "winsz", NULL);
        Recorder rec = { 0 };
        CtlHandlers h = { .resize_cb = record_resize_cb, .reopen_cb = record_reopen_cb, .user_data = &rec };
        g_autoptr(CtlFifos) fifos = NULL;
        GError *error = NULL;
        int fd;

        ck_assert_int_eq(ctl_fifos_new(dir, &h, &fifos, &error), 0);
        fd = open(winsz, O_WRONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        write_all(fd, "5 6\n");
        pump_until(&rec.n_resize, 1);
        ck_assert_int_eq(rec.rows[0], 5);
        ck_assert_int_eq(rec.cols[0], 6);
        ck_assert_int_eq(rec.n_reopen, 0);
        close(fd);
        rm_rf(dir);
}
END_TEST

START_TEST(test_fifo_replaces_stale_files)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *ctl = g_build_filename(dir, "ctl", NULL);
        g_autofree char *winsz = g_build_filename(dir, "winsz", NULL);
        Recorder rec = { 0 };
        CtlHandlers h = { .resize_cb = record_resize_cb, .user_data = &rec };
        CtlFifos *fifos = NULL;
        GError *error = NULL;
        int fd;

        umask(022);
        ck_assert(g_file_set_contents(ctl, "stale", -1, NULL));
        /* A FIFO left by an earlier monitor, too. */
        ck_assert_int_eq(mkfifo(winsz, 0600), 0);

        ck_assert_int_eq(ctl_fifos_new(dir, &h, &fifos, &error), 0);
        assert_fifo_0640(dir, "ctl");
        assert_fifo_0640(dir, "winsz");

        fd = open(ctl, O_WRONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        write_all(fd, "1 3 4\n");
        pump_until(&rec.n_resize, 1);
        close(fd);

        ctl_fifos_close(fifos, true);
        ctl_fifos_close(fifos, true);  /* idempotent */
        ck_assert_int_eq(access(ctl, F_OK), -1);
        ck_assert_int_eq(access(winsz, F_OK), -1);
        ctl_fifos_free(fifos);
        ctl_fifos_free(NULL);
        ctl_fifos_close(NULL, true);
        rm_rf(dir);
}
END_TEST

/* Issue 14: the engine's next monitor on the same bundle (restart policy)
 * has made its own ctl and winsz by the time this one exits: only what is
 * still ours is removed. Here the successor's ctl is a new FIFO and its
 * winsz a regular file, each put in place by rename() as a successor's
 * mkfifo over a removed name would be. */
START_TEST(test_fifo_close_removes_only_its_own_fifos)
{
        g_autofree char *dir = make_tmpdir();
        g_autofree char *ctl = g_build_filename(dir, "ctl", NULL);
        g_autofree char *winsz = g_build_filename(dir, "winsz", NULL);
        g_autofree char *next_ctl = g_build_filename(dir, "next-ctl", NULL);
        g_autofree char *next_winsz = g_build_filename(dir, "next-winsz", NULL);
        CtlHandlers h = { 0 };
        CtlFifos *fifos = NULL;
        GError *error = NULL;
        struct stat before_ctl, before_winsz, st;

        ck_assert_int_eq(ctl_fifos_new(dir, &h, &fifos, &error), 0);
        ck_assert_int_eq(mkfifo(next_ctl, 0600), 0);
        ck_assert(g_file_set_contents(next_winsz, "successor", -1, NULL));
        ck_assert_int_eq(rename(next_ctl, ctl), 0);
        ck_assert_int_eq(rename(next_winsz, winsz), 0);
        ck_assert_int_eq(lstat(ctl, &before_ctl), 0);
        ck_assert_int_eq(lstat(winsz, &before_winsz), 0);

        ctl_fifos_close(fifos, true);

        ck_assert_int_eq(lstat(ctl, &st), 0);
        ck_assert(S_ISFIFO(st.st_mode));
        ck_assert(st.st_ino == before_ctl.st_ino);
        ck_assert_int_eq(lstat(winsz, &st), 0);
        ck_assert(st.st_ino == before_winsz.st_ino);
        ctl_fifos_free(fifos);
        rm_rf(dir);
}
END_TEST


START_TEST(test_fifo_missing_bundle_is_an_error)
{
        CtlHandlers h = { 0 };
        CtlFifos *fifos = (CtlFifos *) 0x1;
        GError *error = NULL;
        int r = ctl_fifos_new("/nonexistent/ctrmon-bundle", &h, &fifos, &error);

        ck_assert_int_eq(r, -ENOENT);
        ck_assert_ptr_nonnull(error);
        ck_assert_int_eq(error->code, ENOENT);
        ck_assert_msg(strstr(error->message, "/nonexistent/ctrmon-bundle/ctl") != NULL,
                      "message: %s", error->message);
        ck_assert_ptr_eq(fifos, (CtlFifos *) 0x1);
        g_error_free(error);
}
END_TEST

static Suite *ctl_fifo_suite(void)
{
        Suite *s = suite_create("ctl-fifo");
        TCase *tc;

        tc = tcase_create("parse");
        tcase_add_loop_test(tc, test_parse_ctl_line_table, 0, G_N_ELEMENTS(ctl_cases));
        tcase_add_loop_test(tc, test_parse_winsz_line_table, 0, G_N_ELEMENTS(winsz_cases));
        suite_add_tcase(s, tc);

        tc = tcase_create("line-buffer");
        tcase_add_test(tc, test_line_buffer_invalid_line_discards_rest_of_read);
        tcase_add_test(tc, test_line_buffer_lines_before_invalid_are_applied);
        tcase_add_test(tc, test_line_buffer_several_lines_in_order);
        tcase_add_test(tc, test_line_buffer_split_line_across_reads);
        tcase_add_test(tc, test_line_buffer_reopen);
        tcase_add_test(tc, test_line_buffer_does_not_join_lines);
        tcase_add_test(tc, test_line_buffer_overlong_line_never_recognised);
        tcase_add_test(tc, test_line_buffer_overlong_tail_fills_buffer);
        tcase_add_test(tc, test_line_buffer_big_feed_is_chunked);
        suite_add_tcase(s, tc);

        tc = tcase_create("fifos");
        tcase_add_test(tc, test_fifos_created_0640);
        tcase_add_test(tc, test_fifo_ctl_resize_and_reopen_via_main_loop);
        tcase_add_test(tc, test_fifo_winsz_resize_via_main_loop);
        tcase_add_test(tc, test_fifo_replaces_stale_files);
        tcase_add_test(tc, test_fifo_close_removes_only_its_own_fifos);
        tcase_add_test(tc, test_fifo_missing_bundle_is_an_error);
        suite_add_tcase(s, tc);

        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(ctl_fifo_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
