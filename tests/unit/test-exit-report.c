/* Proves the exit and oom files (names, bytes, modes) and the exit command's
 * contract: args in order, delay, /dev/null stdio, no inherited fds. */
#include "exit-report.h"
#include "fs-util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>

#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *tmpdir;

static void setup(void)
{
        umask(022);
        tmpdir = g_dir_make_tmp("ctrmon-exit-XXXXXX", NULL);
        ck_assert_ptr_nonnull(tmpdir);
}

static void teardown(void)
{
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
        ck_assert_int_eq(system(cmd), 0);
        g_free(tmpdir);
}

static char *read_file(const char *dir, const char *name)
{
        g_autofree char *path = g_build_filename(dir, name, NULL);
        char *content = NULL;
        if (!g_file_get_contents(path, &content, NULL, NULL))
                return NULL;
        return content;
}

static unsigned mode_of(const char *dir, const char *name)
{
        g_autofree char *path = g_build_filename(dir, name, NULL);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        return st.st_mode & 07777;
}

START_TEST(test_exit_files_hold_status_without_newline_mode_0644)
{
        g_autofree char *exits = g_build_filename(tmpdir, "exits", NULL);
        g_autofree char *persist = g_build_filename(tmpdir, "persist", NULL);
        ck_assert_int_eq(g_mkdir_with_parents(exits, 0755), 0);
        ck_assert_int_eq(g_mkdir_with_parents(persist, 0755), 0);
        ck_assert_int_eq(exit_report_write_status(exits, persist, "abc123", 137, NULL), 0);
        g_autofree char *a = read_file(exits, "abc123");
        g_autofree char *b = read_file(persist, "exit");
        ck_assert_str_eq(a, "137");
        ck_assert_str_eq(b, "137");
        ck_assert_uint_eq(mode_of(exits, "abc123"), 0644);
        ck_assert_uint_eq(mode_of(persist, "exit"), 0644);
}
END_TEST

START_TEST(test_timeout_status_is_written_as_minus_one)
{
        ck_assert_int_eq(exit_report_write_status(tmpdir, NULL, "c1", -1, NULL), 0);
        g_autofree char *a = read_file(tmpdir, "c1");
        ck_assert_str_eq(a, "-1");
}
END_TEST

START_TEST(test_exit_file_in_missing_dir_fails_with_message)
{
        GError *error = NULL;
        g_autofree char *missing = g_build_filename(tmpdir, "nope", NULL);
        ck_assert_int_lt(exit_report_write_status(missing, NULL, "c1", 0, &error), 0);
        ck_assert(strstr(error->message, "Failed to write 0 to the exit file") != NULL);
        g_error_free(error);
}
END_TEST

START_TEST(test_oom_files_are_empty_mode_0644_in_both_dirs)
{
        g_autofree char *persist = g_build_filename(tmpdir, "p", NULL);
        g_autofree char *bundle = g_build_filename(tmpdir, "b", NULL);
        g_mkdir_with_parents(persist, 0755);
        g_mkdir_with_parents(bundle, 0755);
        ck_assert_int_eq(exit_report_write_oom(persist, bundle, NULL), 0);
        g_autofree char *a = read_file(persist, "oom");
        g_autofree char *b = read_file(bundle, "oom");
        ck_assert_str_eq(a, "");
        ck_assert_str_eq(b, "");
        ck_assert_uint_eq(mode_of(persist, "oom"), 0644);
}
END_TEST

/* The inode of the unnamed file exit_report_prepare() left open in `dir`
 * (found through /proc/self/fd), or 0. */
static ino_t prepared_inode_in(const char *dir)
{
        g_autoptr(GDir) fds = g_dir_open("/proc/self/fd", 0, NULL);
        ck_assert_ptr_nonnull(fds);
        g_autofree char *prefix = g_strconcat(dir, "/#", NULL);
        const char *name;
        while ((name = g_dir_read_name(fds))) {
                g_autofree char *link = g_build_filename("/proc/self/fd", name, NULL);
                g_autofree char *target = g_file_read_link(link, NULL);
                struct stat st;
                if (target && g_str_has_prefix(target, prefix) && stat(link, &st) == 0)
                        return st.st_ino;
        }
        return 0;
}

static guint entries_in(const char *dir)
{
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        ck_assert_ptr_nonnull(d);
        guint n = 0;
        while (g_dir_read_name(d))
                n++;
        return n;
}

/* --- issue 14: names in directories others can write to (fs-util) --- */

static char *make_secret(const char *name)
{
        char *path = g_build_filename(tmpdir, name, NULL);
        ck_assert(g_file_set_contents(path, "top secret\n", -1, NULL));
        ck_assert_int_eq(chmod(path, 0600), 0);
        return path;
}

static void assert_secret_untouched(const char *path)
{
        g_autofree char *content = NULL;
        struct stat st;
        ck_assert(g_file_get_contents(path, &content, NULL, NULL));
        ck_assert_str_eq(content, "top secret\n");
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
}

static void assert_regular_0644(const char *dir, const char *name)
{
        g_autofree char *path = g_build_filename(dir, name, NULL);
        struct stat st;
        ck_assert_int_eq(lstat(path, &st), 0);
        ck_assert_msg(S_ISREG(st.st_mode), "%s is not a regular file (mode %o)", path, st.st_mode);
        ck_assert_uint_eq(st.st_mode & 07777, 0644);
        ck_assert_int_eq((int) st.st_size, 0);
}

/* <persist>/oom and <bundle>/oom planted as symlinks, one to a 0600 file,
 * one to a name that does not exist: neither is followed (nothing is
 * created at the dangling target), and both become empty files. */
START_TEST(test_oom_files_never_follow_a_planted_symlink)
{
        g_autofree char *persist = g_build_filename(tmpdir, "persist", NULL);
        g_autofree char *bundle = g_build_filename(tmpdir, "bundle", NULL);
        g_autofree char *secret = make_secret("secret");
        g_autofree char *nowhere = g_build_filename(tmpdir, "created-through-the-link", NULL);
        g_autofree char *p_oom = g_build_filename(persist, "oom", NULL);
        g_autofree char *b_oom = g_build_filename(bundle, "oom", NULL);
        ck_assert_int_eq(g_mkdir_with_parents(persist, 0755), 0);
        ck_assert_int_eq(g_mkdir_with_parents(bundle, 0755), 0);
        ck_assert_int_eq(symlink(secret, p_oom), 0);
        ck_assert_int_eq(symlink(nowhere, b_oom), 0);

        GError *error = NULL;
        ck_assert_msg(exit_report_write_oom(persist, bundle, &error) == 0, "%s", error ? error->message : "");
        assert_secret_untouched(secret);
        ck_assert_int_eq(access(nowhere, F_OK), -1);
        assert_regular_0644(persist, "oom");
        assert_regular_0644(bundle, "oom");
        /* Again, with the files now there: still fine, still untouched. */
        ck_assert_int_eq(exit_report_write_oom(persist, bundle, NULL), 0);
        assert_regular_0644(bundle, "oom");
}
END_TEST

/* A FIFO at <bundle>/oom made open(O_WRONLY) block the monitor forever at
 * the container's OOM; a socket or a directory must not hang it either. */
START_TEST(test_oom_file_over_a_fifo_does_not_block)
{
        g_autofree char *bundle = g_build_filename(tmpdir, "bundle", NULL);
        g_autofree char *b_oom = g_build_filename(bundle, "oom", NULL);
        g_autofree char *persist = g_build_filename(tmpdir, "persist", NULL);
        g_autofree char *p_oom = g_build_filename(persist, "oom", NULL);
        ck_assert_int_eq(g_mkdir_with_parents(bundle, 0755), 0);
        ck_assert_int_eq(g_mkdir_with_parents(p_oom, 0755), 0);
        ck_assert_int_eq(mkfifo(b_oom, 0600), 0);

        alarm(5);
        GError *error = NULL;
        /* The directory is reported, the FIFO replaced. */
        ck_assert_int_eq(exit_report_write_oom(persist, bundle, &error), -EISDIR);
        alarm(0);
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error->message, p_oom) != NULL, "%s", error->message);
        g_clear_error(&error);
        assert_regular_0644(bundle, "oom");
}
END_TEST

START_TEST(test_private_dir_is_made_0700_and_repaired)
{
        g_autofree char *dir = g_build_filename(tmpdir, "ctrmon", NULL);
        struct stat st;
        GError *error = NULL;

        int fd = fs_open_private_dir(dir, 0700, &error);
        ck_assert_msg(fd >= 0, "%s", error ? error->message : "");
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0700);
        ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
        close(fd);

        /* An existing one of ours with a wider mode is narrowed. */
        ck_assert_int_eq(chmod(dir, 0755), 0);
        fd = fs_open_private_dir(dir, 0700, &error);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_uint_eq(mode_of(tmpdir, "ctrmon"), 0700);
}
END_TEST

/* <bundle>/ctrmon planted as a symlink to a 0600 file and to a directory of
 * someone's: the targets keep their mode, the link is replaced by our own
 * directory. Anything else in the way is refused, not removed. */
START_TEST(test_private_dir_never_follows_a_planted_symlink)
{
        g_autofree char *dir = g_build_filename(tmpdir, "ctrmon", NULL);
        g_autofree char *secret = make_secret("secret");
        g_autofree char *other = g_build_filename(tmpdir, "other", NULL);
        struct stat st;
        GError *error = NULL;

        ck_assert_int_eq(symlink(secret, dir), 0);
        int fd = fs_open_private_dir(dir, 0700, &error);
        ck_assert_msg(fd >= 0, "%s", error ? error->message : "");
        close(fd);
        assert_secret_untouched(secret);
        ck_assert_int_eq(lstat(dir, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        ck_assert_int_eq(rmdir(dir), 0);

        ck_assert_int_eq(mkdir(other, 0755), 0);
        ck_assert_int_eq(symlink(other, dir), 0);
        fd = fs_open_private_dir(dir, 0700, &error);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_uint_eq(mode_of(tmpdir, "other"), 0755);
        ck_assert_int_eq(rmdir(dir), 0);

        /* A regular file: ENOTDIR, left alone. */
        g_autofree char *file = make_secret("ctrmon");
        ck_assert_int_eq(fs_open_private_dir(dir, 0700, &error), -ENOTDIR);
        ck_assert_msg(strstr(error->message, dir) != NULL, "%s", error->message);
        g_clear_error(&error);
        assert_secret_untouched(file);
        ck_assert_int_eq(unlink(file), 0);

        /* A directory of another user's (needs root to stage). */
        if (geteuid() == 0) {
                ck_assert_int_eq(mkdir(dir, 0755), 0);
                ck_assert_int_eq(chown(dir, 65534, 65534), 0);
                ck_assert_int_eq(fs_open_private_dir(dir, 0700, &error), -EPERM);
                ck_assert_msg(strstr(error->message, "owned by uid 65534") != NULL, "%s", error->message);
                g_clear_error(&error);
                ck_assert_uint_eq(mode_of(tmpdir, "ctrmon"), 0755);
        }
}
END_TEST

START_TEST(test_unlink_if_same_removes_only_the_recorded_file)
{
        g_autofree char *a = g_build_filename(tmpdir, "a", NULL);
        g_autofree char *b = g_build_filename(tmpdir, "b", NULL);
        FsFileId id = { 0 };

        ck_assert(g_file_set_contents(a, "mine", -1, NULL));
        ck_assert_int_eq(fs_file_id_at(AT_FDCWD, a, &id), 0);
        /* Replaced under the same name: kept. */
        ck_assert(g_file_set_contents(b, "theirs", -1, NULL));
        ck_assert_int_eq(rename(b, a), 0);
        ck_assert_int_eq(fs_unlink_if_same_at(AT_FDCWD, a, &id), 0);
        ck_assert_int_eq(access(a, F_OK), 0);
        /* Ours: removed; then gone: 0. */
        ck_assert_int_eq(fs_file_id_at(AT_FDCWD, a, &id), 0);
        ck_assert_int_eq(fs_unlink_if_same_at(AT_FDCWD, a, &id), 1);
        ck_assert_int_eq(access(a, F_OK), -1);
        ck_assert_int_eq(fs_unlink_if_same_at(AT_FDCWD, a, &id), 0);
        /* Nothing recorded: nothing removed. */
        FsFileId unset = { 0 };
        ck_assert(g_file_set_contents(a, "x", -1, NULL));
        ck_assert_int_eq(fs_unlink_if_same_at(AT_FDCWD, a, &unset), 0);
        ck_assert_int_eq(access(a, F_OK), 0);
}
END_TEST

START_TEST(test_prepared_exit_files_are_the_files_made_at_start_mode_0644)
{
        g_autofree char *exits = g_build_filename(tmpdir, "exits", NULL);
        g_autofree char *persist = g_build_filename(tmpdir, "persist", NULL);
        ck_assert_int_eq(g_mkdir_with_parents(exits, 0755), 0);
        ck_assert_int_eq(g_mkdir_with_parents(persist, 0755), 0);
        /* The mode must not depend on the umask at start-up. */
        mode_t old_umask = umask(077);
        g_autoptr(ExitReport) report = exit_report_prepare(exits, persist, "abc123");
        umask(old_umask);

        /* Nothing is visible until the status is known. */
        ck_assert_uint_eq(entries_in(exits), 0);
        ck_assert_uint_eq(entries_in(persist), 0);
        ino_t exit_ino = prepared_inode_in(exits);
        ino_t persist_ino = prepared_inode_in(persist);
        ck_assert_uint_ne(exit_ino, 0);
        ck_assert_uint_ne(persist_ino, 0);

        ck_assert_int_eq(exit_report_write(report, 137, NULL), 0);
        g_autofree char *a = read_file(exits, "abc123");
        g_autofree char *b = read_file(persist, "exit");
        ck_assert_str_eq(a, "137");
        ck_assert_str_eq(b, "137");
        ck_assert_uint_eq(mode_of(exits, "abc123"), 0644);
        ck_assert_uint_eq(mode_of(persist, "exit"), 0644);
        /* The very files made at start, and no temporary name left over. */
        g_autofree char *exit_path = g_build_filename(exits, "abc123", NULL);
        g_autofree char *persist_path = g_build_filename(persist, "exit", NULL);
        struct stat st;
        ck_assert_int_eq(stat(exit_path, &st), 0);
        ck_assert_uint_eq(st.st_ino, exit_ino);
        ck_assert_int_eq(stat(persist_path, &st), 0);
        ck_assert_uint_eq(st.st_ino, persist_ino);
        ck_assert_uint_eq(entries_in(exits), 1);
        ck_assert_uint_eq(entries_in(persist), 1);
        /* Written once: the report no longer holds the files. */
        ck_assert_uint_eq(prepared_inode_in(exits), 0);
}
END_TEST

/* linkat(AT_EMPTY_PATH) is refused without CAP_DAC_READ_SEARCH (before
 * Linux 6.10; since then, when the credentials differ from the opener's):
 * the /proc link must do. The child prepares, then drops the capability,
 * which also changes its credentials. */
START_TEST(test_prepared_exit_file_is_linked_where_at_empty_path_is_refused)
{
        g_autofree char *exit_path = g_build_filename(tmpdir, "c1", NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                ExitReport *report = exit_report_prepare(tmpdir, NULL, "c1");
                ino_t ino = prepared_inode_in(tmpdir);
                int probe = open(tmpdir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
                struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
                struct __user_cap_data_struct data[2] = { { 0 } };
                if (syscall(SYS_capget, &header, data) < 0)
                        _exit(2);
                data[CAP_TO_INDEX(CAP_DAC_READ_SEARCH)].effective &= ~CAP_TO_MASK(CAP_DAC_READ_SEARCH);
                if (syscall(SYS_capset, &header, data) < 0)
                        _exit(3);
                /* The premise: the direct way is refused here. */
                g_autofree char *probe_path = g_build_filename(tmpdir, "probe", NULL);
                if (probe < 0 || linkat(probe, "", AT_FDCWD, probe_path, AT_EMPTY_PATH) == 0)
                        _exit(4);
                close(probe);
                int r = exit_report_write(report, 5, NULL);
                exit_report_free(report);
                struct stat st;
                if (ino == 0 || r < 0 || stat(exit_path, &st) < 0 || st.st_ino != ino)
                        _exit(5);
                _exit(0);
        }
        int wstatus;
        ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
        ck_assert(WIFEXITED(wstatus));
        ck_assert_int_eq(WEXITSTATUS(wstatus), 0);
        g_autofree char *a = read_file(tmpdir, "c1");
        ck_assert_str_eq(a, "5");
}
END_TEST

START_TEST(test_prepared_exit_file_arrives_by_rename_as_with_conmon)
{
        int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        ck_assert_int_ge(ino, 0);
        g_autoptr(ExitReport) report = exit_report_prepare(tmpdir, NULL, "c1");
        ck_assert_int_ge(inotify_add_watch(ino, tmpdir, IN_CREATE | IN_MOVED_TO), 0);
        ck_assert_int_eq(exit_report_write(report, 0, NULL), 0);

        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t n = read(ino, buf, sizeof buf);
        ck_assert_int_gt(n, 0);
        bool moved_to = false, created = false;
        for (char *p = buf; p < buf + n;) {
                struct inotify_event *ev = (struct inotify_event *) p;
                if (ev->len && strcmp(ev->name, "c1") == 0) {
                        moved_to |= (ev->mask & IN_MOVED_TO) != 0;
                        created |= (ev->mask & IN_CREATE) != 0;
                }
                p += sizeof *ev + ev->len;
        }
        close(ino);
        ck_assert(moved_to);
        ck_assert(!created);
}
END_TEST

/* The unnamed file holds "0" from the start (so a status of 0 needs no
 * write at exit): every status must still come out exactly, 0 included, and
 * nothing of the preset may be left behind a longer one. */
START_TEST(test_prepared_exit_file_holds_exactly_the_status)
{
        static const struct {
                int status;
                const char *want;
        } rows[] = { { 0, "0" }, { 1, "1" }, { 7, "7" }, { 42, "42" }, { 137, "137" }, { 255, "255" }, { -1, "-1" } };
        for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
                g_autofree char *cid = g_strdup_printf("c%zu", i);
                g_autofree char *persist_name = g_strdup_printf("persist%zu", i);
                g_autofree char *persist = g_build_filename(tmpdir, persist_name, NULL);
                ck_assert_int_eq(g_mkdir_with_parents(persist, 0755), 0);
                g_autoptr(ExitReport) report = exit_report_prepare(tmpdir, persist, cid);
                ck_assert_uint_ne(prepared_inode_in(persist), 0);
                ck_assert_int_eq(exit_report_write(report, rows[i].status, NULL), 0);
                g_autofree char *a = read_file(tmpdir, cid);
                g_autofree char *b = read_file(persist, "exit");
                ck_assert_str_eq(a, rows[i].want);
                ck_assert_str_eq(b, rows[i].want);
                ck_assert_uint_eq(mode_of(tmpdir, cid), 0644);
        }
}
END_TEST

START_TEST(test_prepared_exit_file_replaces_an_existing_one)
{
        g_autofree char *path = g_build_filename(tmpdir, "c1", NULL);
        g_autoptr(ExitReport) report = exit_report_prepare(tmpdir, NULL, "c1");
        ck_assert(g_file_set_contents(path, "999", -1, NULL));
        ck_assert_int_eq(exit_report_write(report, 3, NULL), 0);
        g_autofree char *a = read_file(tmpdir, "c1");
        ck_assert_str_eq(a, "3");
        ck_assert_uint_eq(entries_in(tmpdir), 1);
}
END_TEST

START_TEST(test_exit_dir_made_after_start_still_gets_the_file)
{
        g_autofree char *exits = g_build_filename(tmpdir, "later", NULL);
        g_autoptr(ExitReport) report = exit_report_prepare(exits, NULL, "c1");
        ck_assert_int_eq(g_mkdir_with_parents(exits, 0755), 0);
        ck_assert_int_eq(exit_report_write(report, 42, NULL), 0);
        g_autofree char *a = read_file(exits, "c1");
        ck_assert_str_eq(a, "42");
        ck_assert_uint_eq(mode_of(exits, "c1"), 0644);
}
END_TEST

START_TEST(test_prepared_exit_file_in_removed_dir_fails_with_message)
{
        g_autofree char *exits = g_build_filename(tmpdir, "gone", NULL);
        ck_assert_int_eq(g_mkdir_with_parents(exits, 0755), 0);
        g_autoptr(ExitReport) report = exit_report_prepare(exits, NULL, "c1");
        ck_assert_int_eq(rmdir(exits), 0);
        GError *error = NULL;
        ck_assert_int_lt(exit_report_write(report, 0, &error), 0);
        ck_assert(strstr(error->message, "Failed to write 0 to the exit file") != NULL);
        g_error_free(error);
}
END_TEST

/* Runs the exit command in a child process (it closes fds and waits for all
 * children, which must not disturb the test runner). */
static int run_command_in_child(const ExitCommand *cmd)
{
        pid_t pid = fork();
        if (pid == 0)
                _exit(exit_report_run_command(cmd, NULL) & 0xff);
        int wstatus;
        waitpid(pid, &wstatus, 0);
        return WEXITSTATUS(wstatus);
}

START_TEST(test_exit_command_gets_args_in_order_including_empty_one)
{
        g_autofree char *out = g_build_filename(tmpdir, "args", NULL);
        g_autofree char *script = g_strdup_printf("printf '[%%s]' \"$@\" > '%s'", out);
        char *args[] = { "-c", script, "sh", "one", "", "three", NULL };
        ExitCommand cmd = { .command = "/bin/sh", .args = args };
        ck_assert_int_eq(run_command_in_child(&cmd), 0);
        g_autofree char *content = read_file(tmpdir, "args");
        ck_assert_str_eq(content, "[one][][three]");
}
END_TEST

START_TEST(test_exit_command_sees_only_stdio_and_devnull)
{
        int extra = open("/dev/null", O_RDONLY); /* not CLOEXEC on purpose */
        ck_assert_int_ge(extra, 3);
        g_autofree char *out = g_build_filename(tmpdir, "fds", NULL);
        /* The listing runs in a background subshell while this shell only
         * waits: a pipeline started by the shell itself would have it hold
         * pipe fds while it forks the later stages, and ls sees them. */
        g_autofree char *script = g_strdup_printf(
                "(ls /proc/$$/fd | sort -n | tr '\\n' ' ' > '%s') & wait; readlink /proc/$$/fd/0 >> '%s'", out,
                out);
        char *args[] = { "-c", script, NULL };
        ExitCommand cmd = { .command = "/bin/sh", .args = args };
        ck_assert_int_eq(run_command_in_child(&cmd), 0);
        g_autofree char *content = read_file(tmpdir, "fds");
        /* The shell's own descriptors: stdio only, and stdin is /dev/null. */
        ck_assert_str_eq(content, "0 1 2 /dev/null\n");
}
END_TEST

START_TEST(test_exit_command_waits_for_delay)
{
        char *args[] = { "-c", "exit 0", NULL };
        ExitCommand cmd = { .command = "/bin/sh", .args = args, .delay_seconds = 1 };
        gint64 start = g_get_monotonic_time();
        ck_assert_int_eq(run_command_in_child(&cmd), 0);
        ck_assert_int_ge(g_get_monotonic_time() - start, 1000000);
}
END_TEST

START_TEST(test_exit_command_status_is_returned_not_imposed)
{
        char *args[] = { "-c", "exit 9", NULL };
        ExitCommand cmd = { .command = "/bin/sh", .args = args };
        ck_assert_int_eq(run_command_in_child(&cmd), 9);
}
END_TEST

START_TEST(test_missing_exit_command_exits_127)
{
        ExitCommand cmd = { .command = "/nonexistent/cleanup" };
        ck_assert_int_eq(run_command_in_child(&cmd), 127);
}
END_TEST

START_TEST(test_exit_command_env_drops_only_the_fd_naming_variables)
{
        char *env[] = { "PATH=/usr/bin", "LISTEN_FDS=1", "LISTEN_PID=4242", "LISTEN_FDNAMES=web",
                        "_OCI_SYNCPIPE=4", "_OCI_STARTPIPE=5", "_OCI_ATTACHPIPE=6", "LISTEN_FDSX=keep",
                        "XLISTEN_FDS=keep", "LISTEN_FDS", "HOME=/root", "XDG_RUNTIME_DIR=", NULL };
        g_autofree char **out = exit_report_command_env(env);
        g_autofree char *joined = g_strjoinv(" ", out);
        ck_assert_str_eq(joined, "PATH=/usr/bin LISTEN_FDSX=keep XLISTEN_FDS=keep LISTEN_FDS HOME=/root XDG_RUNTIME_DIR=");
        g_autofree char **none = exit_report_command_env(NULL);
        ck_assert_ptr_null(none[0]);
}
END_TEST

START_TEST(test_exit_command_does_not_inherit_listen_fds_or_oci_pipes)
{
        g_autofree char *out = g_build_filename(tmpdir, "env", NULL);
        g_autofree char *script = g_strdup_printf("env | grep -E '^(LISTEN_|_OCI_|KEEP_ME)' | sort > '%s'", out);
        char *args[] = { "-c", script, NULL };
        ExitCommand cmd = { .command = "/bin/sh", .args = args };
        g_setenv("LISTEN_FDS", "1", TRUE);
        g_setenv("LISTEN_PID", "1", TRUE);
        g_setenv("_OCI_SYNCPIPE", "3", TRUE);
        g_setenv("KEEP_ME", "yes", TRUE);
        int r = run_command_in_child(&cmd);
        g_unsetenv("LISTEN_FDS");
        g_unsetenv("LISTEN_PID");
        g_unsetenv("_OCI_SYNCPIPE");
        g_unsetenv("KEEP_ME");
        ck_assert_int_eq(r, 0);
        g_autofree char *content = read_file(tmpdir, "env");
        ck_assert_str_eq(content, "KEEP_ME=yes\n");
}
END_TEST

int main(void)
{
        Suite *s = suite_create("exit-report");
        TCase *tc = tcase_create("core");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_exit_files_hold_status_without_newline_mode_0644);
        tcase_add_test(tc, test_timeout_status_is_written_as_minus_one);
        tcase_add_test(tc, test_exit_file_in_missing_dir_fails_with_message);
        tcase_add_test(tc, test_oom_files_are_empty_mode_0644_in_both_dirs);
        tcase_add_test(tc, test_oom_files_never_follow_a_planted_symlink);
        tcase_add_test(tc, test_oom_file_over_a_fifo_does_not_block);
        tcase_add_test(tc, test_private_dir_is_made_0700_and_repaired);
        tcase_add_test(tc, test_private_dir_never_follows_a_planted_symlink);
        tcase_add_test(tc, test_unlink_if_same_removes_only_the_recorded_file);
        tcase_add_test(tc, test_prepared_exit_files_are_the_files_made_at_start_mode_0644);
        tcase_add_test(tc, test_prepared_exit_file_arrives_by_rename_as_with_conmon);
        tcase_add_test(tc, test_prepared_exit_file_is_linked_where_at_empty_path_is_refused);
        tcase_add_test(tc, test_prepared_exit_file_holds_exactly_the_status);
        tcase_add_test(tc, test_prepared_exit_file_replaces_an_existing_one);
        tcase_add_test(tc, test_exit_dir_made_after_start_still_gets_the_file);
        tcase_add_test(tc, test_prepared_exit_file_in_removed_dir_fails_with_message);
        tcase_add_test(tc, test_exit_command_gets_args_in_order_including_empty_one);
        tcase_add_test(tc, test_exit_command_sees_only_stdio_and_devnull);
        tcase_add_test(tc, test_exit_command_waits_for_delay);
        tcase_add_test(tc, test_exit_command_status_is_returned_not_imposed);
        tcase_add_test(tc, test_missing_exit_command_exits_127);
        tcase_add_test(tc, test_exit_command_env_drops_only_the_fd_naming_variables);
        tcase_add_test(tc, test_exit_command_does_not_inherit_listen_fds_or_oci_pipes);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
