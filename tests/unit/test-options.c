/* Unit tests for monitor/options.c: GOption parse semantics, every §1.3
 * validation step with its exact message and its place in the order, the
 * §6.1 -l grammar, defaults, --version, --help and ctrmon's id hardening.
 * Each test runs in its own forked child inside a fresh temporary cwd. */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "options.h"

#define CID "0123456789abcdef"   /* 16 chars: long enough for journald */
#define CUUID "uuid-1"
#define RUNTIME "/bin/true"
/* GLib quotes values with U+201C / U+201D. */
#define LQ "\xe2\x80\x9c"
#define RQ "\xe2\x80\x9d"

static char *test_dir;

/* ---- fixture and helpers ------------------------------------------------ */

static void setup(void)
{
        const char *base = g_getenv("CTRMON_TEST_TMPDIR");
        g_autofree char *tmpl = g_build_filename(base ? base : g_get_tmp_dir(), "test-options-XXXXXX", NULL);

        test_dir = g_mkdtemp(g_steal_pointer(&tmpl));
        ck_assert_ptr_nonnull(test_dir);
        ck_assert_int_eq(chdir(test_dir), 0);
}

static int rm_entry(const char *path, G_GNUC_UNUSED const struct stat *st, int flag,
                    G_GNUC_UNUSED struct FTW *ftw)
{
        return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void teardown(void)
{
        if (chdir("/") < 0)
                return;
        if (test_dir)
                nftw(test_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        g_clear_pointer(&test_dir, g_free);
}

/* argv builder: args_new() holds argv[0]; args_add(a, "x", "y", NULL). */
static GPtrArray *args_new(void)
{
        GPtrArray *a = g_ptr_array_new_with_free_func(g_free);

        g_ptr_array_add(a, g_strdup("ctrmon"));
        return a;
}

static void args_add(GPtrArray *a, ...)
{
        va_list ap;
        const char *s;

        va_start(ap, a);
        while ((s = va_arg(ap, const char *)))
                g_ptr_array_add(a, g_strdup(s));
        va_end(ap);
}

/* The arguments every valid invocation needs, except -l. */
static void args_add_base(GPtrArray *a)
{
        args_add(a, "-c", CID, "-u", CUUID, "-r", RUNTIME, NULL);
}

static int args_parse(GPtrArray *a, CtrmonOptions **ret, GError **error)
{
        int argc = (int) a->len;

        g_ptr_array_add(a, NULL);
        int r = options_parse(argc, (char **) a->pdata, ret, error);
        g_ptr_array_remove_index(a, a->len - 1);
        return r;
}

/* Parse, expect failure with exactly `msg`, and an untouched out-param. */
static void expect_error(GPtrArray *a, const char *msg)
{
        CtrmonOptions *o = NULL;
        g_autoptr(GError) err = NULL;
        int r = args_parse(a, &o, &err);

        ck_assert_int_lt(r, 0);
        ck_assert_ptr_null(o);
        ck_assert_ptr_nonnull(err);
        ck_assert_str_eq(err->message, msg);
        ck_assert_int_eq(-r, err->code);
}

static CtrmonOptions *expect_ok(GPtrArray *a)
{
        CtrmonOptions *o = NULL;
        g_autoptr(GError) err = NULL;
        int r = args_parse(a, &o, &err);

        ck_assert_msg(r == 0, "parse failed (%d): %s", r, err ? err->message : "(no error)");
        ck_assert_ptr_nonnull(o);
        return o;
}

/* Redirect fd (1 or 2) into a temporary file until capture_end(). */
typedef struct {
        int fd;
        int saved;
        int file;
} Capture;

static Capture capture_begin(int fd)
{
        Capture c = { .fd = fd };
        g_autofree char *path = g_build_filename(test_dir, "capture-XXXXXX", NULL);

        /* options.c prints with g_print()/g_printerr(), which flush */
        c.file = g_mkstemp(path);
        ck_assert_int_ge(c.file, 0);
        c.saved = dup(fd);
        ck_assert_int_ge(c.saved, 0);
        ck_assert_int_eq(dup2(c.file, fd), fd);
        return c;
}

static char *capture_end(Capture *c)
{
        char buf[4096];
        ssize_t n;

        ck_assert_int_eq(dup2(c->saved, c->fd), c->fd);
        close(c->saved);
        n = pread(c->file, buf, sizeof(buf) - 1, 0);
        close(c->file);
        ck_assert_int_ge(n, 0);
        buf[n] = '\0';
        return g_strdup(buf);
}

static bool file_exists(const char *path)
{
        return access(path, F_OK) == 0;
}

/* ---- step 1: GLib parse errors ------------------------------------------ */

START_TEST(test_parse_unknown_option)
{
        g_autoptr(GPtrArray) a = args_new();

        args_add_base(a);
        args_add(a, "-l", "ctr.log", "--bogus", NULL);
        expect_error(a, "conmon: option parsing failed: Unknown option --bogus");
}
END_TEST

START_TEST(test_parse_missing_argument)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(GPtrArray) b = args_new();

        args_add(a, "-c", NULL);
        expect_error(a, "conmon: option parsing failed: Missing argument for -c");
        args_add(b, "--cuuid", NULL);
        expect_error(b, "conmon: option parsing failed: Missing argument for --cuuid");
}
END_TEST

START_TEST(test_parse_bad_integer_curly_quotes)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(GPtrArray) b = args_new();
        g_autoptr(GPtrArray) c = args_new();

        args_add(a, "--exit-delay", "abc", NULL);
        expect_error(a, "conmon: option parsing failed: Cannot parse integer value " LQ "abc" RQ " for --exit-delay");
        args_add(b, "--exit-delay", "99999999999", NULL);
        expect_error(b, "conmon: option parsing failed: Integer value " LQ "99999999999" RQ
                        " for --exit-delay out of range");
        args_add(c, "--log-size-max=12x", NULL);
        expect_error(c, "conmon: option parsing failed: Cannot parse integer value " LQ "12x" RQ " for --log-size-max");
}
END_TEST

START_TEST(test_parse_attached_short_value_is_unknown)
{
        g_autoptr(GPtrArray) a = args_new();

        /* GLib reads "-cX" as -c plus a short option X */
        args_add(a, "-cX", "-u", CUUID, NULL);
        expect_error(a, "conmon: option parsing failed: Unknown option -cX");
}
END_TEST

START_TEST(test_parse_error_beats_version)
{
        g_autoptr(GPtrArray) a = args_new();

        args_add(a, "--version", "--bogus", NULL);
        expect_error(a, "conmon: option parsing failed: Unknown option --bogus");
}
END_TEST

START_TEST(test_parse_seccomp_notify_accepted_and_ignored)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(CtrmonOptions) o = NULL;

        args_add_base(a);
        args_add(a, "-l", "ctr.log", "--seccomp-notify-socket", "/run/x.sock", "--seccomp-notify-plugins", "p1:p2",
                 NULL);
        o = expect_ok(a);
        ck_assert_str_eq(o->seccomp_notify_socket, "/run/x.sock");
}
END_TEST

/* ---- step 2: --version --------------------------------------------------- */

START_TEST(test_version_prints_and_returns_1)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(GError) err = NULL;
        g_autofree char *out = NULL;
        CtrmonOptions *o = NULL;
        Capture c;
        int r;

        /* no -c needed: --version comes before every other check */
        args_add(a, "--version", "--log-max-files", "-5", NULL);
        c = capture_begin(STDOUT_FILENO);
        r = args_parse(a, &o, &err);
        out = capture_end(&c);

        ck_assert_int_eq(r, 1);
        ck_assert_ptr_null(o);
        ck_assert_ptr_null(err);
        ck_assert_msg(g_str_has_prefix(out, "conmon version 2.2.1\n"), "got: %s", out);
        ck_assert_ptr_nonnull(strstr(out, "\nctrmon version "));
        /* Exactly two lines, as conmon's: `podman info` joins the first
         * two with ", " and would show a third on a line of its own. */
        ck_assert_ptr_nonnull(strstr(out, ", commit: "));
        guint newlines = 0;
        for (const char *p = out; *p; p++)
                newlines += *p == '\n';
        ck_assert_uint_eq(newlines, 2);
        ck_assert(g_str_has_suffix(out, "\n"));
}
END_TEST

/* ---- steps 3-16, each proving it wins over the steps after it ----------- */

START_TEST(test_step3_log_max_files_negative)
{
        g_autoptr(GPtrArray) a = args_new();

        /* no --cid either: step 3 comes first */
        args_add(a, "--log-max-files", "-1", "--log-level", "bogus", NULL);
        expect_error(a, "conmon: log-max-files must be non-negative, got -1");
}
END_TEST

START_TEST(test_step4_log_rotate_needs_files)
{
        g_autoptr(GPtrArray) a = args_new();

        args_add(a, "--log-rotate", "--log-max-files", "0", NULL);
        expect_error(a, "conmon: log-max-files must be at least 1 when log-rotate is enabled, got 0");
}
END_TEST

START_TEST(test_step5_missing_cid_beats_log_level)
{
        g_autoptr(GPtrArray) a = args_new();

        args_add(a, "--log-level", "bogus", "-u", CUUID, NULL);
        expect_error(a, "conmon: Container ID not provided. Use --cid");
}
END_TEST

START_TEST(test_step6_bad_log_level)
{
        g_autoptr(GPtrArray) a = args_new();

        /* also --restore with --exec and no --cuuid: step 6 comes first */
        args_add(a, "-c", CID, "--log-level", "bogus", "--restore", "x", "-e", NULL);
        expect_error(a, "[conmon:e]: No such log level bogus");
}
END_TEST

START_TEST(test_step7_exec_and_restore)
{
        g_autoptr(GPtrArray) a = args_new();

        args_add(a, "-c", CID, "--restore", "x", "-e", "--exec-attach", NULL);
        expect_error(a, "[conmon:e]: Cannot use 'exec' and 'restore' at the same time");
}
END_TEST

START_TEST(test_step8_attach_without_exec)
{
        g_autoptr(GPtrArray) a = args_new();

        args_add(a, "-c", CID, "--exec-attach", NULL);
        expect_error(a, "[conmon:e]: Attach can only be specified with exec");
}
END_TEST

START_TEST(test_step9_attach_needs_api_version)
{
        g_autoptr(GPtrArray) a = args_new();

        args_add(a, "-c", CID, "-e", "--exec-attach", NULL);
        expect_error(a, "[conmon:e]: Attach can only be specified for a non-legacy exec session");
}
END_TEST

START_TEST(test_step10_missing_cuuid)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(GPtrArray) b = args_new();
        g_autoptr(GPtrArray) c = args_new();

        /* create mode, no --runtime either */
        args_add(a, "-c", CID, NULL);
        expect_error(a, "[conmon:e]: Container UUID not provided. Use --cuuid");
        /* v1 exec needs it too */
        args_add(b, "-c", CID, "-e", "--api-version", NULL);
        expect_error(b, "[conmon:e]: Container UUID not provided. Use --cuuid");
        /* legacy exec does not: the next step reports */
        args_add(c, "-c", CID, "-e", NULL);
        expect_error(c, "[conmon:e]: Runtime path not provided. Use --runtime");
}
END_TEST

START_TEST(test_step11_runtime)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(GPtrArray) b = args_new();
        g_autoptr(GPtrArray) c = args_new();
        g_autofree char *noexec = g_build_filename(test_dir, "not-executable", NULL);
        g_autofree char *msg = NULL;

        args_add(a, "-c", CID, "-u", CUUID, "-e", NULL);
        expect_error(a, "[conmon:e]: Runtime path not provided. Use --runtime");

        args_add(b, "-c", CID, "-u", CUUID, "-r", "/nonexistent", "-e", NULL);
        expect_error(b, "[conmon:e]: Runtime path /nonexistent is not valid No such file or directory");

        ck_assert(g_file_set_contents(noexec, "#!/bin/sh\n", -1, NULL));
        ck_assert_int_eq(chmod(noexec, 0644), 0);
        args_add(c, "-c", CID, "-u", CUUID, "-r", noexec, NULL);
        msg = g_strdup_printf("[conmon:e]: Runtime path %s is not valid Permission denied", noexec);
        expect_error(c, msg);
}
END_TEST

START_TEST(test_step12_exec_needs_process_spec)
{
        g_autoptr(GPtrArray) a = args_new();

        args_add_base(a);
        args_add(a, "-e", "--exit-delay", "-1", NULL);
        expect_error(a, "[conmon:e]: Exec process spec path not provided. Use --exec-process-spec");
}
END_TEST

START_TEST(test_step13_getcwd_failure)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autofree char *gone = g_build_filename(test_dir, "gone", NULL);

        ck_assert_int_eq(mkdir(gone, 0755), 0);
        ck_assert_int_eq(chdir(gone), 0);
        ck_assert_int_eq(rmdir(gone), 0);
        args_add_base(a);
        args_add(a, "--exit-delay", "-1", NULL);
        expect_error(a, "[conmon:e]: Failed to get working directory");
}
END_TEST

START_TEST(test_step14_negative_exit_delay)
{
        g_autoptr(GPtrArray) a = args_new();

        args_add_base(a); /* and no -l */
        args_add(a, "--exit-delay", "-1", NULL);
        expect_error(a, "[conmon:e]: Delay before invoking exit command must be greater than or equal to 0");
}
END_TEST

START_TEST(test_step15_log_driver_required)
{
        g_autoptr(GPtrArray) a = args_new();

        args_add_base(a);
        expect_error(a, "[conmon:e]: Log driver not provided. Use --log-path");
}
END_TEST

START_TEST(test_step15_log_open_failure)
{
        g_autoptr(GPtrArray) a = args_new();

        args_add_base(a);
        args_add(a, "-l", "k8s-file:/nonexistent-dir/ctr.log", "--log-tag", "t", NULL);
        expect_error(a, "[conmon:e]: Failed to open log file No such file or directory");
}
END_TEST

START_TEST(test_step15_k8s_rejects_tag_and_label)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(GPtrArray) b = args_new();
        g_autoptr(GPtrArray) c = args_new();
        g_autoptr(GPtrArray) d = args_new();
        g_autoptr(CtrmonOptions) o1 = NULL;
        g_autoptr(CtrmonOptions) o2 = NULL;

        args_add_base(a);
        args_add(a, "-l", "ctr.log", "--log-tag", "t", "--log-label", "BAD", NULL);
        expect_error(a, "[conmon:e]: k8s-file doesn't support --log-tag");
        /* the file was created before the check, as conmon does */
        ck_assert(file_exists("ctr.log"));

        args_add_base(b);
        args_add(b, "-l", "ctr.log", "--log-label", "A=b", NULL);
        expect_error(b, "[conmon:e]: k8s-file doesn't support --log-label");

        /* fine when journald is also enabled */
        args_add_base(c);
        args_add(c, "-l", "ctr.log", "-l", "journald", "--log-tag", "t", "--log-label", "A=b", NULL);
        o1 = expect_ok(c);
        ck_assert(o1->log.k8s_file && o1->log.journald);
        ck_assert_str_eq(o1->log_tag, "t");

        /* and silently ignored with none / passthrough */
        args_add_base(d);
        args_add(d, "-l", "none", "-l", "passthrough", "--log-tag", "t", "--log-label", "bad", NULL);
        o2 = expect_ok(d);
        ck_assert(!o2->log.k8s_file && o2->log.passthrough);
}
END_TEST

START_TEST(test_step15_journald_cid_length)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(GPtrArray) b = args_new();
        g_autoptr(CtrmonOptions) o = NULL;

        args_add(a, "-c", "0123456789ab", "-u", CUUID, "-r", RUNTIME, "-l", "journald", NULL);
        expect_error(a, "[conmon:e]: Container ID must be longer than 12 characters");
        args_add(b, "-c", "0123456789abc", "-u", CUUID, "-r", RUNTIME, "-l", "journald", NULL);
        o = expect_ok(b);
        ck_assert(o->log.journald);
}
END_TEST

START_TEST(test_step15_journald_labels)
{
        static const struct {
                const char *label;
                const char *msg;
        } rows[] = {
                { "=x", "[conmon:e]: Container labels must be in format LABEL=VALUE (no LABEL present in '=x')" },
                { "NOEQ",
                  "[conmon:e]: Container labels must be in format LABEL=VALUE (none or more than one '=' present in 'NOEQ')" },
                { "A=B=C",
                  "[conmon:e]: Container labels must be in format LABEL=VALUE (none or more than one '=' present in 'A=B=C')" },
                { "MY%LABEL=x",
                  "[conmon:e]: Container label names must contain only uppercase letters, numbers and underscore (in 'MY%LABEL=x')" },
                { "lower=x",
                  "[conmon:e]: Container label names must contain only uppercase letters, numbers and underscore (in 'lower=x')" },
        };
        g_autoptr(GPtrArray) ok = args_new();
        g_autoptr(CtrmonOptions) o = NULL;

        for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
                g_autoptr(GPtrArray) a = args_new();

                args_add_base(a);
                args_add(a, "-l", "journald", "--log-label", "GOOD_1=x", "--log-label", rows[i].label, NULL);
                expect_error(a, rows[i].msg);
        }

        args_add_base(ok);
        args_add(ok, "-l", "journald", "--log-label", "A_1=x y", "--log-label", "B=", NULL);
        o = expect_ok(ok);
        ck_assert_str_eq(o->log_labels[0], "A_1=x y");
        ck_assert_str_eq(o->log_labels[1], "B=");
        ck_assert_ptr_null(o->log_labels[2]);
}
END_TEST

START_TEST(test_step16_partial_message_warning)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(GPtrArray) b = args_new();
        g_autoptr(GPtrArray) c = args_new();
        g_autoptr(CtrmonOptions) o1 = NULL;
        g_autoptr(CtrmonOptions) o2 = NULL;
        g_autoptr(CtrmonOptions) o3 = NULL;
        g_autofree char *err1 = NULL;
        g_autofree char *err2 = NULL;
        g_autofree char *err3 = NULL;
        Capture cap;

        args_add_base(a);
        args_add(a, "-l", "ctr.log", "--no-container-partial-message", NULL);
        cap = capture_begin(STDERR_FILENO);
        o1 = expect_ok(a);
        err1 = capture_end(&cap);
        ck_assert_str_eq(err1, "[conmon:w]: --no-container-partial-message has no effect without journald log driver\n");
        ck_assert(o1->no_container_partial_message);

        /* warnings are filtered by --log-level, like conmon's nwarn */
        args_add_base(b);
        args_add(b, "-l", "ctr.log", "--no-container-partial-message", "--log-level", "error", NULL);
        cap = capture_begin(STDERR_FILENO);
        o2 = expect_ok(b);
        err2 = capture_end(&cap);
        ck_assert_str_eq(err2, "");

        args_add_base(c);
        args_add(c, "-l", "journald", "--no-container-partial-message", NULL);
        cap = capture_begin(STDERR_FILENO);
        o3 = expect_ok(c);
        err3 = capture_end(&cap);
        ck_assert_str_eq(err3, "");
}
END_TEST

/* ---- §6.1 -l grammar ---------------------------------------------------- */

START_TEST(test_log_path_grammar)
{
        static const struct {
                const char *spec;
                const char *error;      /* NULL: valid */
                const char *k8s_path;   /* NULL: no k8s-file */
                bool journald;
                bool passthrough;
        } rows[] = {
                { "", "[conmon:e]: log-path must not be empty", NULL, false, false },
                { ":", "[conmon:e]: log-path must not be empty", NULL, false, false },
                { "::", "[conmon:e]: log-path must not be empty", NULL, false, false },
                { "none", NULL, NULL, false, false },
                { "off", NULL, NULL, false, false },
                { "null", NULL, NULL, false, false },
                { "none:x", NULL, NULL, false, false },
                { "off:", NULL, NULL, false, false },
                { "passthrough", NULL, NULL, false, true },
                { "passthrough:x", NULL, NULL, false, true },
                { "journald", NULL, NULL, true, false },
                { "journald:", NULL, NULL, true, false },
                { "journald:x", NULL, NULL, true, false },
                { "k8s-file:ctr.log", NULL, "ctr.log", false, false },
                { "ctr.log", NULL, "ctr.log", false, false },
                { ":ctr.log", NULL, "ctr.log", false, false },
                { ":journald", NULL, "journald", false, false },
                { ":none", NULL, "none", false, false },
                { "::x", NULL, "x", false, false },
                { "k8s-file:a:b", NULL, "a", false, false },
                { "k8s-file::b", NULL, "b", false, false },
                { "k8s-file", "[conmon:e]: k8s-file requires a filename", NULL, false, false },
                { "k8s-file:", "[conmon:e]: k8s-file requires a filename", NULL, false, false },
                { "k8s-file::", "[conmon:e]: k8s-file requires a filename", NULL, false, false },
                { "x:ctr.log", "[conmon:e]: No such log driver x", NULL, false, false },
                { "x:", "[conmon:e]: No such log driver x", NULL, false, false },
                { "/x:y", "[conmon:e]: No such log driver /x", NULL, false, false },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
                g_autoptr(GPtrArray) a = args_new();
                g_autoptr(CtrmonOptions) o = NULL;

                args_add_base(a);
                args_add(a, "-l", rows[i].spec, NULL);
                if (rows[i].error) {
                        expect_error(a, rows[i].error);
                        continue;
                }
                o = expect_ok(a);
                ck_assert_msg(o->log.k8s_file == (rows[i].k8s_path != NULL), "row '%s'", rows[i].spec);
                if (rows[i].k8s_path) {
                        ck_assert_str_eq(o->log.k8s_path, rows[i].k8s_path);
                        ck_assert_int_ge(o->log.k8s_fd, 0);
                        ck_assert(file_exists(rows[i].k8s_path));
                } else
                        ck_assert_int_eq(o->log.k8s_fd, -1);
                ck_assert_msg(o->log.journald == rows[i].journald, "row '%s'", rows[i].spec);
                ck_assert_msg(o->log.passthrough == rows[i].passthrough, "row '%s'", rows[i].spec);
        }
}
END_TEST

START_TEST(test_log_path_multiple)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(GPtrArray) b = args_new();
        g_autoptr(GPtrArray) c = args_new();
        g_autoptr(CtrmonOptions) o1 = NULL;
        g_autoptr(CtrmonOptions) o2 = NULL;

        /* none does not cancel journald */
        args_add_base(a);
        args_add(a, "-l", "journald", "-l", "none", NULL);
        o1 = expect_ok(a);
        ck_assert(o1->log.journald && !o1->log.k8s_file);

        /* the last k8s path wins and only it is opened */
        args_add_base(b);
        args_add(b, "-l", "first.log", "--log-path", "k8s-file:second.log", "-l", "journald", NULL);
        o2 = expect_ok(b);
        ck_assert_str_eq(o2->log.k8s_path, "second.log");
        ck_assert(o2->log.journald);
        ck_assert(!file_exists("first.log"));
        ck_assert(file_exists("second.log"));

        /* an error in any entry fails the whole set */
        args_add_base(c);
        args_add(c, "-l", "journald", "-l", "bogus:x", NULL);
        expect_error(c, "[conmon:e]: No such log driver bogus");
}
END_TEST

START_TEST(test_log_file_mode_0640_append)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(CtrmonOptions) o = NULL;
        struct stat st;
        int flags;

        umask(022);
        args_add_base(a);
        args_add(a, "-l", "k8s-file:ctr.log", NULL);
        o = expect_ok(a);
        ck_assert_int_eq(stat("ctr.log", &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0640);
        flags = fcntl(o->log.k8s_fd, F_GETFL);
        ck_assert(flags & O_APPEND);
        ck_assert_int_eq(flags & O_ACCMODE, O_WRONLY);
        ck_assert(fcntl(o->log.k8s_fd, F_GETFD) & FD_CLOEXEC);
}
END_TEST

/* ---- parse semantics ---------------------------------------------------- */

START_TEST(test_defaults)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(GPtrArray) b = args_new();
        g_autoptr(CtrmonOptions) o = NULL;
        g_autoptr(CtrmonOptions) e = NULL;
        g_autofree char *cwd = g_get_current_dir();
        g_autofree char *pidfile = g_strdup_printf("%s/pidfile-%s", cwd, CID);

        args_add_base(a);
        args_add(a, "-l", "ctr.log", NULL);
        o = expect_ok(a);
        ck_assert_str_eq(o->cid, CID);
        ck_assert_str_eq(o->cuuid, CUUID);
        ck_assert_str_eq(o->runtime_path, RUNTIME);
        ck_assert_str_eq(o->bundle, cwd);
        ck_assert_str_eq(o->container_pidfile, pidfile);
        ck_assert_str_eq(o->socket_dir_path, "/var/run/crio");
        ck_assert_int_eq(o->log_max_files, 1);
        ck_assert_int_eq(o->log_size_max, -1);
        ck_assert_int_eq(o->log_global_size_max, -1);
        ck_assert_int_eq(o->log_level, CTRMON_LOG_LEVEL_WARNING);
        ck_assert_int_eq(o->exit_delay, 0);
        ck_assert_int_eq(o->timeout, 0);
        ck_assert(!o->api_version_1 && !o->exec && !o->terminal && !o->sync);
        ck_assert_ptr_null(o->runtime_args);
        ck_assert_ptr_null(o->runtime_opts);
        ck_assert_ptr_null(o->exit_command_args);
        ck_assert_ptr_null(o->name);

        /* exec: no default bundle, the pidfile default stays */
        args_add_base(b);
        args_add(b, "-l", "ctr.log", "-e", "--exec-process-spec", "spec.json", NULL);
        e = expect_ok(b);
        ck_assert(e->exec);
        ck_assert_ptr_null(e->bundle);
        ck_assert_str_eq(e->container_pidfile, pidfile);
        ck_assert_str_eq(e->exec_process_spec, "spec.json");
}
END_TEST

START_TEST(test_api_version_positional_ignored)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(GPtrArray) b = args_new();
        g_autoptr(CtrmonOptions) o = NULL;
        g_autoptr(CtrmonOptions) o2 = NULL;

        args_add(a, "--api-version", "1", NULL);
        args_add_base(a);
        args_add(a, "-l", "ctr.log", "stray", NULL);
        o = expect_ok(a);
        ck_assert(o->api_version_1);
        ck_assert_str_eq(o->cid, CID);

        /* a flag ignores "=value": --api-version=0 still sets it */
        args_add_base(b);
        args_add(b, "-l", "ctr.log", "--api-version=0", NULL);
        o2 = expect_ok(b);
        ck_assert(o2->api_version_1);
}
END_TEST

START_TEST(test_array_args_keep_order_and_empty)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(CtrmonOptions) o = NULL;

        args_add_base(a);
        args_add(a, "-l", "ctr.log",
                 "--runtime-arg", "--log-format=json", "--runtime-arg", "--log", "--runtime-arg=/u/oci-log",
                 "--exit-command", "/usr/bin/podman",
                 "--exit-command-arg", "--root", "--exit-command-arg", "", "--exit-command-arg=cleanup",
                 "--log-allowlist-dir", "/a", "--log-allowlist-dir=/b", NULL);
        o = expect_ok(a);
        ck_assert_int_eq(g_strv_length(o->runtime_args), 3);
        ck_assert_str_eq(o->runtime_args[0], "--log-format=json");
        ck_assert_str_eq(o->runtime_args[1], "--log");
        ck_assert_str_eq(o->runtime_args[2], "/u/oci-log");
        ck_assert_str_eq(o->exit_command, "/usr/bin/podman");
        ck_assert_int_eq(g_strv_length(o->exit_command_args), 3);
        ck_assert_str_eq(o->exit_command_args[0], "--root");
        ck_assert_str_eq(o->exit_command_args[1], "");
        ck_assert_str_eq(o->exit_command_args[2], "cleanup");
        ck_assert_str_eq(o->log_allowlist_dirs[1], "/b");
}
END_TEST

START_TEST(test_runtime_opt_restore_arg_interleaved)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(CtrmonOptions) o = NULL;

        args_add_base(a);
        args_add(a, "-l", "ctr.log", "--runtime-opt", "o1", "--restore-arg", "r1", "--runtime-opt=o2",
                 "--restore-arg=r2", "--runtime-opt", "", NULL);
        o = expect_ok(a);
        ck_assert_int_eq(g_strv_length(o->runtime_opts), 5);
        ck_assert_str_eq(o->runtime_opts[0], "o1");
        ck_assert_str_eq(o->runtime_opts[1], "r1");
        ck_assert_str_eq(o->runtime_opts[2], "o2");
        ck_assert_str_eq(o->runtime_opts[3], "r2");
        ck_assert_str_eq(o->runtime_opts[4], "");
        ck_assert_ptr_null(o->runtime_opts[5]);
}
END_TEST

START_TEST(test_strings_last_wins)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(CtrmonOptions) o = NULL;

        args_add(a, "-c", "first-cid-xxxxxx", "--cid", CID, "-u", "u1", "-u", CUUID, "-r", "/nonexistent", "-r",
                 RUNTIME, "-l", "ctr.log", "--pidfile", "/p1", "-p", "/p2", "-b", "/b1", "--bundle=/b2",
                 "-n", "n1", "--name", "n2", "--log-level", "bogus", "--log-level", "DEBUG", NULL);
        o = expect_ok(a);
        ck_assert_str_eq(o->cid, CID);
        ck_assert_str_eq(o->cuuid, CUUID);
        ck_assert_str_eq(o->runtime_path, RUNTIME);
        ck_assert_str_eq(o->container_pidfile, "/p2");
        ck_assert_str_eq(o->bundle, "/b2");
        ck_assert_str_eq(o->name, "n2");
        ck_assert_int_eq(o->log_level, CTRMON_LOG_LEVEL_DEBUG);
}
END_TEST

START_TEST(test_every_option_reaches_its_field)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(CtrmonOptions) o = NULL;

        args_add_base(a);
        args_add(a, "-l", "journald", "-ti", "-s", "--no-pivot", "--no-new-keyring", "--replace-listen-pid",
                 "--sync", "--syslog", "--full-attach", "--no-sync-log", "--no-container-partial-message",
                 "--log-rotate", "--log-max-files", "3", "--leave-stdin-open", "--restore", "/ckpt",
                 "-P", "/run/c.pid", "--socket-dir-path", "/run/s", "--exit-dir", "/run/exits", "-0", "/persist",
                 "--exit-delay", "7", "-T", "30", "--log-size-max", "8589934592", "--log-global-size-max", "-5",
                 "--log-tag", "tag", "--sdnotify-socket", "/run/notify", "--log-level", "Trace", "--", "-c", "x",
                 NULL);
        o = expect_ok(a);
        ck_assert(o->terminal && o->stdin_open && o->systemd_cgroup && o->no_pivot && o->no_new_keyring);
        ck_assert(o->replace_listen_pid && o->sync && o->syslog && o->full_attach && o->no_sync_log);
        ck_assert(o->no_container_partial_message && o->log_rotate && o->leave_stdin_open);
        ck_assert_int_eq(o->log_max_files, 3);
        ck_assert_str_eq(o->restore_path, "/ckpt");
        ck_assert_str_eq(o->conmon_pidfile, "/run/c.pid");
        ck_assert_str_eq(o->socket_dir_path, "/run/s");
        ck_assert_str_eq(o->exit_dir, "/run/exits");
        ck_assert_str_eq(o->persist_dir, "/persist");
        ck_assert_int_eq(o->exit_delay, 7);
        ck_assert_int_eq(o->timeout, 30);
        ck_assert(o->log_size_max == INT64_C(8589934592));
        ck_assert(o->log_global_size_max == -5);
        ck_assert_str_eq(o->log_tag, "tag");
        ck_assert_str_eq(o->sdnotify_socket, "/run/notify");
        ck_assert_int_eq(o->log_level, CTRMON_LOG_LEVEL_TRACE);
        /* "--" ended option parsing: "-c x" after it is ignored */
        ck_assert_str_eq(o->cid, CID);
}
END_TEST

START_TEST(test_exec_attach_valid)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(CtrmonOptions) o = NULL;

        args_add_base(a);
        args_add(a, "-l", "none", "-e", "--exec-attach", "--api-version", "--exec-process-spec", "/p.json", NULL);
        o = expect_ok(a);
        ck_assert(o->exec && o->exec_attach && o->api_version_1);
}
END_TEST

/* ---- ctrmon hardening of --cid / --cuuid -------------------------------- */

START_TEST(test_invalid_ids_rejected)
{
        g_autofree char *longid = g_strnfill(1025, 'a');
        g_autofree char *maxid = g_strnfill(1024, 'a');
        g_autofree char *shown = g_strnfill(64, 'a');
        g_autofree char *longmsg = g_strdup_printf(
                "[conmon:e]: Invalid container ID '%s...': must not be longer than 1024 bytes", shown);
        const struct {
                const char *cid;
                const char *cuuid;
                const char *msg;
        } rows[] = {
                { "", CUUID, "[conmon:e]: Invalid container ID '': must not be empty" },
                { "a/b", CUUID, "[conmon:e]: Invalid container ID 'a/b': must not contain '/'" },
                { ".", CUUID, "[conmon:e]: Invalid container ID '.': must not be '.' or '..'" },
                { "..", CUUID, "[conmon:e]: Invalid container ID '..': must not be '.' or '..'" },
                { "a\nb", CUUID, "[conmon:e]: Invalid container ID 'a\\x0ab': must not contain control characters" },
                { "a\x7f", CUUID, "[conmon:e]: Invalid container ID 'a\\x7f': must not contain control characters" },
                { longid, CUUID, longmsg },
                { CID, "../x", "[conmon:e]: Invalid container UUID '../x': must not contain '/'" },
                { CID, "", "[conmon:e]: Invalid container UUID '': must not be empty" },
                { CID, "\t", "[conmon:e]: Invalid container UUID '\\x09': must not contain control characters" },
                /* the cid is the runtime's last word: no option there */
                { "-h", CUUID, "[conmon:e]: Invalid container ID '-h': must not start with '-'" },
                { "--help", CUUID, "[conmon:e]: Invalid container ID '--help': must not start with '-'" },
                { "-", CUUID, "[conmon:e]: Invalid container ID '-': must not start with '-'" },
                { CID, "--all", "[conmon:e]: Invalid container UUID '--all': must not start with '-'" },
        };
        g_autoptr(GPtrArray) ok = args_new();
        g_autoptr(GPtrArray) order = args_new();
        g_autoptr(CtrmonOptions) o = NULL;

        for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
                g_autoptr(GPtrArray) a = args_new();

                args_add(a, "-c", rows[i].cid, "-u", rows[i].cuuid, "-r", RUNTIME, "-l", "none", NULL);
                expect_error(a, rows[i].msg);
        }

        /* conmon's own checks come first */
        args_add(order, "-c", "a/b", "-u", CUUID, "-r", RUNTIME, "-l", "bogus:x", NULL);
        expect_error(order, "[conmon:e]: No such log driver bogus");

        /* 1024 bytes, UTF-8 and punctuation are fine */
        args_add(ok, "-c", maxid, "-u", "caf\xc3\xa9-uuid_1.2:3", "-r", RUNTIME, "-l", "none", NULL);
        o = expect_ok(ok);
        ck_assert_str_eq(o->cid, maxid);
}
END_TEST

/* Issue 14: an id that starts with '-' would reach the runtime as an option
 * ("runc create ... --help" prints help and exits 0): refused, with a
 * message, for -c, -u and -n, and nothing created (the k8s-file log). */
START_TEST(test_ids_starting_with_dash_refused)
{
        g_autoptr(GPtrArray) name = args_new();
        g_autoptr(GPtrArray) cid_log = args_new();
        g_autoptr(GPtrArray) dash_inside = args_new();
        g_autoptr(CtrmonOptions) o = NULL;

        args_add(name, "-c", CID, "-u", CUUID, "-n", "--rm", "-r", RUNTIME, "-l", "none", NULL);
        expect_error(name, "[conmon:e]: Invalid container name '--rm': must not start with '-'");

        args_add(cid_log, "-c", "--version", "-u", CUUID, "-r", RUNTIME, "-l", "k8s-file:ctr.log", NULL);
        expect_error(cid_log, "[conmon:e]: Invalid container ID '--version': must not start with '-'");
        ck_assert_int_eq(access("ctr.log", F_OK), -1);

        /* '-' anywhere but first is fine (podman's names may hold it). */
        args_add(dash_inside, "-c", "a-" CID, "-u", "u-1", "-n", "web-1", "-r", RUNTIME, "-l", "none", NULL);
        o = expect_ok(dash_inside);
        ck_assert_str_eq(o->name, "web-1");
}
END_TEST

/* Issue 14: --log-max-files is bounded (every rotation renames each slot on
 * the main loop); --log-buffer-size too (what the container can make the
 * monitor hold). The bounds themselves are accepted. */
START_TEST(test_numeric_upper_bounds)
{
        g_autoptr(GPtrArray) files = args_new();
        g_autoptr(GPtrArray) files_huge = args_new();
        g_autoptr(GPtrArray) files_max = args_new();
        g_autoptr(GPtrArray) buf = args_new();
        g_autoptr(GPtrArray) buf_max = args_new();
        g_autoptr(CtrmonOptions) o1 = NULL, o2 = NULL;

        args_add_base(files);
        args_add(files, "-l", "k8s-file:ctr.log", "--log-rotate", "--log-max-files", "129", NULL);
        expect_error(files, "[conmon:e]: --log-max-files must be between 1 and 128, not 129");
        ck_assert_int_eq(access("ctr.log", F_OK), -1);

        args_add_base(files_huge);
        args_add(files_huge, "-l", "none", "--log-max-files", "5000000", NULL);
        expect_error(files_huge, "[conmon:e]: --log-max-files must be between 1 and 128, not 5000000");

        args_add_base(files_max);
        args_add(files_max, "-l", "none", "--log-rotate", "--log-max-files", "128", "--log-buffer-size", "1g", NULL);
        o1 = expect_ok(files_max);
        ck_assert_int_eq(o1->log_max_files, 128);
        ck_assert(o1->log_buffer_size == (UINT64_C(1) << 30));

        args_add_base(buf);
        args_add(buf, "-l", "none", "--log-buffer-size", "1073741825", NULL);
        expect_error(buf, "conmon: option parsing failed: Invalid --log-buffer-size \"1073741825\": must be "
                          "between 0 and 1g (1073741824 bytes)");

        args_add_base(buf_max);
        args_add(buf_max, "-l", "none", "--log-buffer-size", "0", NULL);
        o2 = expect_ok(buf_max);
        ck_assert(o2->log_buffer_size == 0);
}
END_TEST

START_TEST(test_legacy_exec_without_cuuid_ok)
{
        g_autoptr(GPtrArray) a = args_new();
        g_autoptr(CtrmonOptions) o = NULL;

        args_add(a, "-c", CID, "-r", RUNTIME, "-e", "--exec-process-spec", "/p.json", "-l", "none", NULL);
        o = expect_ok(a);
        ck_assert_ptr_null(o->cuuid);
}
END_TEST

/* ---- help, log level, free ---------------------------------------------- */

START_TEST(test_help_lists_every_option)
{
        static const char *const visible[] = {
                "--api-version", "--bundle", "--cid", "--conmon-pidfile", "--container-pidfile", "--cuuid",
                "--exec", "--exec-attach", "--exec-process-spec", "--exit-command", "--exit-command-arg",
                "--exit-delay", "--exit-dir", "--leave-stdin-open", "--log-level", "--log-path",
                "--log-size-max", "--log-global-size-max", "--log-tag", "--log-label",
                "--no-container-partial-message", "--name", "--no-new-keyring", "--no-pivot", "--no-sync-log",
                "--persist-dir", "--replace-listen-pid", "--restore", "--runtime", "--runtime-arg",
                "--runtime-opt", "--sdnotify-socket", "--socket-dir-path", "--stdin", "--sync", "--syslog",
                "--systemd-cgroup", "--terminal", "--timeout", "--version", "--full-attach", "--log-rotate",
                "--log-max-files", "--log-allowlist-dir",
        };
        static const char *const shorts[] = {
                "-b, --bundle", "-c, --cid", "-P, --conmon-pidfile", "-p, --container-pidfile", "-u, --cuuid",
                "-e, --exec", "-l, --log-path", "-n, --name", "-0, --persist-dir", "-r, --runtime",
                "-i, --stdin", "-s, --systemd-cgroup", "-t, --terminal", "-T, --timeout",
        };
        g_autofree char *help = options_help_text();

        ck_assert_ptr_nonnull(strstr(help, "- ctrmon container monitor (conmon-compatible)"));
        for (size_t i = 0; i < G_N_ELEMENTS(visible); i++) {
                /* the name followed by '=' (takes a value) or by spaces (a flag) */
                g_autofree char *with_arg = g_strconcat(visible[i], "=", NULL);
                g_autofree char *flag = g_strconcat(visible[i], " ", NULL);

                ck_assert_msg(strstr(help, with_arg) || strstr(help, flag), "%s missing from --help", visible[i]);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(shorts); i++)
                ck_assert_msg(strstr(help, shorts[i]), "'%s' missing from --help", shorts[i]);
        ck_assert_ptr_null(strstr(help, "--restore-arg"));
        ck_assert_ptr_null(strstr(help, " --pidfile"));
        ck_assert_ptr_null(strstr(help, "--seccomp"));
}
END_TEST

START_TEST(test_help_exits_0)
{
        g_autoptr(GPtrArray) a = args_new();
        CtrmonOptions *o = NULL;
        int devnull = open("/dev/null", O_WRONLY);

        ck_assert_int_eq(dup2(devnull, STDOUT_FILENO), STDOUT_FILENO);
        args_add(a, "--help", NULL);
        args_parse(a, &o, NULL);
        ck_abort_msg("--help returned");
}
END_TEST

START_TEST(test_parse_log_level)
{
        static const struct {
                const char *s;
                CtrmonLogLevel level;
        } rows[] = {
                { "error", CTRMON_LOG_LEVEL_ERROR },   { "FATAL", CTRMON_LOG_LEVEL_ERROR },
                { "panic", CTRMON_LOG_LEVEL_ERROR },   { "warn", CTRMON_LOG_LEVEL_WARNING },
                { "Warning", CTRMON_LOG_LEVEL_WARNING }, { "info", CTRMON_LOG_LEVEL_INFO },
                { "DeBuG", CTRMON_LOG_LEVEL_DEBUG },   { "trace", CTRMON_LOG_LEVEL_TRACE },
        };
        CtrmonLogLevel level = CTRMON_LOG_LEVEL_INFO;

        for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
                ck_assert_int_eq(options_parse_log_level(rows[i].s, &level), 0);
                ck_assert_int_eq(level, rows[i].level);
        }
        level = CTRMON_LOG_LEVEL_INFO;
        ck_assert_int_eq(options_parse_log_level("verbose", &level), -EINVAL);
        ck_assert_int_eq(options_parse_log_level("", &level), -EINVAL);
        ck_assert_int_eq(options_parse_log_level(NULL, &level), -EINVAL);
        ck_assert_int_eq(level, CTRMON_LOG_LEVEL_INFO);
}
END_TEST

START_TEST(test_free_null_and_closes_fd)
{
        g_autoptr(GPtrArray) a = args_new();
        CtrmonOptions *o;
        int fd;

        options_free(NULL);
        args_add_base(a);
        args_add(a, "-l", "ctr.log", NULL);
        o = expect_ok(a);
        fd = o->log.k8s_fd;
        ck_assert_int_ge(fd, 0);
        options_free(o);
        ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
}
END_TEST

static Suite *options_suite(void)
{
        Suite *s = suite_create("options");
        TCase *parse = tcase_create("parse");
        TCase *validate = tcase_create("validate");
        TCase *logs = tcase_create("log-path");
        TCase *misc = tcase_create("misc");
        TCase *help = tcase_create("help-exit"); /* exits: no fixture to leak */

        tcase_add_checked_fixture(parse, setup, teardown);
        tcase_add_test(parse, test_parse_unknown_option);
        tcase_add_test(parse, test_parse_missing_argument);
        tcase_add_test(parse, test_parse_bad_integer_curly_quotes);
        tcase_add_test(parse, test_parse_attached_short_value_is_unknown);
        tcase_add_test(parse, test_parse_error_beats_version);
        tcase_add_test(parse, test_parse_seccomp_notify_accepted_and_ignored);
        tcase_add_test(parse, test_version_prints_and_returns_1);
        tcase_add_test(parse, test_defaults);
        tcase_add_test(parse, test_api_version_positional_ignored);
        tcase_add_test(parse, test_array_args_keep_order_and_empty);
        tcase_add_test(parse, test_runtime_opt_restore_arg_interleaved);
        tcase_add_test(parse, test_strings_last_wins);
        tcase_add_test(parse, test_every_option_reaches_its_field);
        suite_add_tcase(s, parse);

        tcase_add_checked_fixture(validate, setup, teardown);
        tcase_add_test(validate, test_step3_log_max_files_negative);
        tcase_add_test(validate, test_step4_log_rotate_needs_files);
        tcase_add_test(validate, test_step5_missing_cid_beats_log_level);
        tcase_add_test(validate, test_step6_bad_log_level);
        tcase_add_test(validate, test_step7_exec_and_restore);
        tcase_add_test(validate, test_step8_attach_without_exec);
        tcase_add_test(validate, test_step9_attach_needs_api_version);
        tcase_add_test(validate, test_step10_missing_cuuid);
        tcase_add_test(validate, test_step11_runtime);
        tcase_add_test(validate, test_step12_exec_needs_process_spec);
        tcase_add_test(validate, test_step13_getcwd_failure);
        tcase_add_test(validate, test_step14_negative_exit_delay);
        tcase_add_test(validate, test_step15_log_driver_required);
        tcase_add_test(validate, test_step15_log_open_failure);
        tcase_add_test(validate, test_step15_k8s_rejects_tag_and_label);
        tcase_add_test(validate, test_step15_journald_cid_length);
        tcase_add_test(validate, test_step15_journald_labels);
        tcase_add_test(validate, test_step16_partial_message_warning);
        tcase_add_test(validate, test_exec_attach_valid);
        tcase_add_test(validate, test_invalid_ids_rejected);
        tcase_add_test(validate, test_ids_starting_with_dash_refused);
        tcase_add_test(validate, test_numeric_upper_bounds);
        tcase_add_test(validate, test_legacy_exec_without_cuuid_ok);
        suite_add_tcase(s, validate);

        tcase_add_checked_fixture(logs, setup, teardown);
        tcase_add_test(logs, test_log_path_grammar);
        tcase_add_test(logs, test_log_path_multiple);
        tcase_add_test(logs, test_log_file_mode_0640_append);
        suite_add_tcase(s, logs);

        tcase_add_checked_fixture(misc, setup, teardown);
        tcase_add_test(misc, test_help_lists_every_option);
        tcase_add_test(misc, test_parse_log_level);
        tcase_add_test(misc, test_free_null_and_closes_fd);
        suite_add_tcase(s, misc);

        tcase_add_exit_test(help, test_help_exits_0, 0);
        suite_add_tcase(s, help);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(options_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
