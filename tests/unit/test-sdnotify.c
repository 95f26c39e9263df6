/* Proves the sd_notify whitelist (spec §8.5) and the relay end to end: a
 * datagram sent into <bundle>/notify/notify.sock reaches the host socket
 * filtered, and nothing is sent when nothing passes. */
#include "sdnotify.h"

#include <check.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

START_TEST(test_filter_keeps_whitelist_and_drops_mainpid)
{
        const char *in = "READY=1\nMAINPID=4242\nSTATUS=serving\rEXTEND_TIMEOUT_USEC=5\nWATCHDOG=1\nERRNO=2";
        g_autofree char *out = sdnotify_filter(in, strlen(in));
        ck_assert_str_eq(out, "READY=1\nSTATUS=serving\nWATCHDOG=1\nERRNO=2");
}
END_TEST

START_TEST(test_filter_exact_names_only)
{
        const char *in = "READY=2\nWATCHDOG=0\nREADY=1x\n";
        ck_assert_ptr_null(sdnotify_filter(in, strlen(in)));
        const char *ok = "WATCHDOG=trigger\nRELOADING=1\nSTOPPING=1\nBUSERROR=x.y\nMONOTONIC_USEC=1";
        g_autofree char *out = sdnotify_filter(ok, strlen(ok));
        ck_assert_str_eq(out, ok);
}
END_TEST

static int bind_dgram(const char *path)
{
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        g_strlcpy(a.sun_path, path, sizeof a.sun_path);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
        return fd;
}

static void send_to(const char *path, const char *msg)
{
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        g_strlcpy(a.sun_path, path, sizeof a.sun_path);
        ck_assert_int_eq(sendto(fd, msg, strlen(msg), 0, (struct sockaddr *) &a, sizeof a), (ssize_t) strlen(msg));
        close(fd);
}

/* Run the main loop until the relay has forwarded a datagram to host_fd and
 * return it (NUL-terminated). The relay reads its socket dry in one dispatch,
 * in order, so every datagram sent before the one that arrived is handled by
 * then. Waiting for the datagram, not for a fixed time: a loaded machine may
 * not get to iterate at all within a short interval. */
static ssize_t recv_relayed(int host_fd, char *buf, size_t size)
{
        gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
        for (;;) {
                ssize_t n = recv(host_fd, buf, size - 1, MSG_DONTWAIT);
                if (n >= 0) {
                        buf[n] = '\0';
                        return n;
                }
                ck_assert_msg(errno == EAGAIN, "recv: %s", g_strerror(errno));
                ck_assert_msg(g_get_monotonic_time() < deadline, "nothing relayed within 30 s");
                if (!g_main_context_iteration(NULL, FALSE))
                        g_usleep(2000);
        }
}

START_TEST(test_relay_forwards_filtered_datagram_and_removes_socket)
{
        umask(022);
        g_autofree char *dir = g_dir_make_tmp("ctrmon-notify-XXXXXX", NULL);
        g_autofree char *notify_dir = g_build_filename(dir, "notify", NULL);
        g_mkdir_with_parents(notify_dir, 0755);
        g_autofree char *host = g_build_filename(dir, "host.sock", NULL);
        int host_fd = bind_dgram(host);

        SdNotifyRelay *relay = NULL;
        GError *error = NULL;
        ck_assert_int_eq(sdnotify_relay_new(dir, host, &relay, &error), 0);
        g_autofree char *sock = g_build_filename(notify_dir, "notify.sock", NULL);
        struct stat st;
        ck_assert_int_eq(stat(sock, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 0777, 0777);

        send_to(sock, "MAINPID=1\n");            /* nothing passes: nothing sent */
        send_to(sock, "READY=1\nMAINPID=1\nSTATUS=up");

        char buf[256];
        ssize_t n = recv_relayed(host_fd, buf, sizeof buf);
        ck_assert_int_gt(n, 0);
        ck_assert_str_eq(buf, "READY=1\nSTATUS=up");
        ck_assert_int_lt(recv(host_fd, buf, sizeof buf, MSG_DONTWAIT), 0);

        sdnotify_relay_free(relay);
        ck_assert_int_lt(stat(sock, &st), 0);
        close(host_fd);
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_relay_without_notify_dir_fails_clearly)
{
        g_autofree char *dir = g_dir_make_tmp("ctrmon-notify-XXXXXX", NULL);
        SdNotifyRelay *relay = NULL;
        GError *error = NULL;
        ck_assert_int_lt(sdnotify_relay_new(dir, "/run/nowhere.sock", &relay, &error), 0);
        ck_assert(strstr(error->message, "Failed to bind the notify socket") != NULL);
        ck_assert_ptr_null(relay);
        g_error_free(error);
        rmdir(dir);
}
END_TEST

START_TEST(test_relay_binds_under_a_bundle_path_longer_than_sun_path)
{
        g_autofree char *dir = g_dir_make_tmp("ctrmon-notify-XXXXXX", NULL);
        g_autofree char *longname = g_strnfill(120, 'b');
        g_autofree char *bundle = g_build_filename(dir, longname, NULL);
        g_autofree char *notify_dir = g_build_filename(bundle, "notify", NULL);
        g_mkdir_with_parents(notify_dir, 0755);
        g_autofree char *host = g_build_filename(dir, "host.sock", NULL);
        int host_fd = bind_dgram(host);

        SdNotifyRelay *relay = NULL;
        GError *error = NULL;
        ck_assert_msg(sdnotify_relay_new(bundle, host, &relay, &error) == 0, "%s", error ? error->message : "");
        g_autofree char *sock = g_build_filename(notify_dir, "notify.sock", NULL);
        ck_assert_uint_gt(strlen(sock), 108);
        struct stat st;
        ck_assert_int_eq(stat(sock, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));

        /* A sender reaches it through the same /proc/self/fd trick. */
        int dfd = open(notify_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        g_autofree char *short_path = g_strdup_printf("/proc/self/fd/%d/notify.sock", dfd);
        send_to(short_path, "READY=1\nMAINPID=3");
        close(dfd);
        char buf[64];
        ssize_t n = recv_relayed(host_fd, buf, sizeof buf);
        ck_assert_int_gt(n, 0);
        ck_assert_str_eq(buf, "READY=1");

        sdnotify_relay_free(relay);
        ck_assert_int_lt(stat(sock, &st), 0);
        close(host_fd);
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Issue 14: the container floods notify.sock. One wake-up of the relay
 * takes a bounded batch, so the rest of the main loop (the container's
 * output) gets its turn; nothing is lost, the rest waits in the socket. */
START_TEST(test_relay_takes_a_bounded_batch_per_wakeup)
{
        g_autofree char *dir = g_dir_make_tmp("ctrmon-notify-XXXXXX", NULL);
        g_autofree char *notify_dir = g_build_filename(dir, "notify", NULL);
        g_mkdir_with_parents(notify_dir, 0755);
        g_autofree char *host = g_build_filename(dir, "host.sock", NULL);
        int host_fd = bind_dgram(host);
        SdNotifyRelay *relay = NULL;
        GError *error = NULL;
        ck_assert_int_eq(sdnotify_relay_new(dir, host, &relay, &error), 0);
        g_autofree char *sock = g_build_filename(notify_dir, "notify.sock", NULL);

        for (int i = 0; i < 100; i++)
                send_to(sock, "STATUS=flood");
        /* The first dispatch: at most 32 of the 100. */
        char buf[64];
        int got = 0;
        gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
        while (got == 0) {
                ck_assert(g_get_monotonic_time() < deadline);
                g_main_context_iteration(NULL, FALSE);
                while (recv(host_fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
                        got++;
        }
        ck_assert_int_le(got, 32);
        /* And every one of them in the end. */
        while (got < 100) {
                ck_assert_msg(g_get_monotonic_time() < deadline, "only %d of 100 relayed", got);
                g_main_context_iteration(NULL, FALSE);
                while (recv(host_fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
                        got++;
        }
        sdnotify_relay_free(relay);
        close(host_fd);
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}
END_TEST

typedef struct {
        const char *notify_dir;
        const char *target;
        atomic_bool stop;
} Planter;

/* What a hostile container does to the notify dir it can write: put a
 * symlink to a host file at notify.sock, as often as it can. */
static gpointer planter_thread(gpointer data)
{
        Planter *p = data;
        g_autofree char *tmp = g_build_filename(p->notify_dir, ".plant", NULL);
        g_autofree char *sock = g_build_filename(p->notify_dir, "notify.sock", NULL);
        while (!atomic_load(&p->stop)) {
                (void) unlink(tmp);
                if (symlink(p->target, tmp) == 0)
                        (void) rename(tmp, sock);
        }
        (void) unlink(tmp);
        return NULL;
}

/* Issue 14: the relay made notify.sock 0777 with chmod(path) after bind():
 * a container that replaced the socket by a symlink in between had the
 * (root) monitor chmod the symlink's target, any host file. Raced here:
 * the target, a 0600 file of ours, must keep its mode. */
START_TEST(test_relay_never_chmods_through_a_planted_symlink)
{
        umask(022);
        g_autofree char *dir = g_dir_make_tmp("ctrmon-notify-XXXXXX", NULL);
        g_autofree char *notify_dir = g_build_filename(dir, "notify", NULL);
        g_mkdir_with_parents(notify_dir, 0755);
        g_autofree char *host = g_build_filename(dir, "host.sock", NULL);
        g_autofree char *secret = g_build_filename(dir, "secret", NULL);
        ck_assert(g_file_set_contents(secret, "top secret\n", -1, NULL));
        ck_assert_int_eq(chmod(secret, 0600), 0);
        int host_fd = bind_dgram(host);

        Planter p = { .notify_dir = notify_dir, .target = secret };
        GThread *t = g_thread_new("planter", planter_thread, &p);
        int ok = 0, refused = 0;
        gint64 end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;
        for (int i = 0; i < 20000 && g_get_monotonic_time() < end; i++) {
                SdNotifyRelay *relay = NULL;
                GError *error = NULL;
                if (sdnotify_relay_new(dir, host, &relay, &error) == 0)
                        ok++;
                else
                        refused++;
                g_clear_error(&error);
                sdnotify_relay_free(relay);
                struct stat st;
                ck_assert_int_eq(stat(secret, &st), 0);
                ck_assert_msg((st.st_mode & 07777) == 0600, "the target became %o after %d tries",
                              st.st_mode & 07777, i + 1);
        }
        atomic_store(&p.stop, true);
        g_thread_join(t);
        g_autofree char *content = NULL;
        ck_assert(g_file_get_contents(secret, &content, NULL, NULL));
        ck_assert_str_eq(content, "top secret\n");
        ck_assert_int_gt(ok + refused, 0);
        close(host_fd);
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* <bundle>/notify itself a symlink (to a directory of someone's): refused,
 * nothing made there. */
START_TEST(test_relay_refuses_a_symlinked_notify_dir)
{
        g_autofree char *dir = g_dir_make_tmp("ctrmon-notify-XXXXXX", NULL);
        g_autofree char *elsewhere = g_build_filename(dir, "elsewhere", NULL);
        g_autofree char *notify_dir = g_build_filename(dir, "notify", NULL);
        g_mkdir_with_parents(elsewhere, 0755);
        ck_assert_int_eq(symlink(elsewhere, notify_dir), 0);
        SdNotifyRelay *relay = NULL;
        GError *error = NULL;
        ck_assert_int_lt(sdnotify_relay_new(dir, "/run/nowhere.sock", &relay, &error), 0);
        ck_assert(strstr(error->message, "Failed to bind the notify socket") != NULL);
        g_error_free(error);
        g_autofree char *planted = g_build_filename(elsewhere, "notify.sock", NULL);
        ck_assert_int_eq(access(planted, F_OK), -1);
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("sdnotify");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_filter_keeps_whitelist_and_drops_mainpid);
        tcase_add_test(tc, test_filter_exact_names_only);
        tcase_add_test(tc, test_relay_forwards_filtered_datagram_and_removes_socket);
        tcase_add_test(tc, test_relay_without_notify_dir_fails_clearly);
        tcase_add_test(tc, test_relay_binds_under_a_bundle_path_longer_than_sun_path);
        tcase_add_test(tc, test_relay_takes_a_bounded_batch_per_wakeup);
        tcase_add_test(tc, test_relay_never_chmods_through_a_planted_symlink);
        tcase_add_test(tc, test_relay_refuses_a_symlinked_notify_dir);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
