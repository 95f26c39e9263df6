/* `ctrmonctl run`: start a ctrmon for a bundle the way an engine would
 * (sync pipe, exit dir, k8s-file log, --start), report the container's pid
 * and then attach or wait. Only this file knows ctrmon's command line. */
#include "ctrmonctl.h"
#include "ctrmonctl-config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_MAX_ARGS 64
#define RUN_SYNC_TIMEOUT_MS (120 * 1000)

/* $CTRMON_BIN; the ctrmon of the build tree when we run from it; else the
 * installed one. */
static const char *run_ctrmon_path(void)
{
        const char *env = getenv("CTRMON_BIN");
        if (env && *env)
                return env;
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
                self[n] = '\0';
                if (strcmp(self, CTRMONCTL_BUILD_PATH) == 0 && access(CTRMON_BUILD_PATH, X_OK) == 0)
                        return CTRMON_BUILD_PATH;
        }
        return CTRMON_INSTALLED_PATH;
}

/* Resolve a bare runtime name through $PATH: ctrmon wants a path it can
 * exec and report. */
static char *run_find_runtime(const char *name)
{
        if (strchr(name, '/'))
                return strdup(name);
        const char *path = getenv("PATH");
        char *copy = strdup(path && *path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        char *save = NULL, *found = NULL;
        for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
                char *cand = NULL;
                if (asprintf(&cand, "%s/%s", dir, name) < 0)
                        break;
                if (access(cand, X_OK) == 0)
                        found = cand;
                else
                        free(cand);
        }
        free(copy);
        return found ? found : strdup(name);
}

/* The first sync-pipe line: {"pid": N} or {"pid": -1, "message": "..."}. */
static int run_read_sync(int fd, long *ret_pid, char **ret_message)
{
        char buf[8192];
        size_t len = 0;
        while (len < sizeof buf - 1 && !memchr(buf, '\n', len)) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                int r = poll(&p, 1, RUN_SYNC_TIMEOUT_MS);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return -ETIMEDOUT;
                ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = '\0';
        json_object *o = json_tokener_parse(buf);
        json_object *v = NULL;
        if (!o || !(json_object_object_get_ex(o, "pid", &v) || json_object_object_get_ex(o, "data", &v))) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret_pid = (long) json_object_get_int64(v);
        *ret_message = json_object_object_get_ex(o, "message", &v) ? strdup(json_object_get_string(v)) : NULL;
        json_object_put(o);
        return 0;
}

static int run_usage_error(const char *what)
{
        fprintf(stderr, "ctrmonctl run: %s\n", what);
        return ctl_usage(ctl_find_command("run"), true);
}

int ctl_cmd_run(Ctl *ctl, int argc, char **argv)
{
        static const struct option options[] = {
                { "name", required_argument, NULL, 'n' },
                { "tty", no_argument, NULL, 't' },
                { "interactive", no_argument, NULL, 'i' },
                { "detach", no_argument, NULL, 'd' },
                { "runtime", required_argument, NULL, 'r' },
                { "runtime-arg", required_argument, NULL, 'R' },
                { "detach-keys", required_argument, NULL, 'k' },
                { NULL, 0, NULL, 0 },
        };
        const char *name = NULL, *runtime = "runc", *keys = NULL;
        const char *runtime_args[16];
        size_t n_runtime_args = 0;
        bool tty = false, interactive = false, detach = false;
        int c;
        optind = 0;
        while ((c = getopt_long(argc, argv, "+n:tidr:", options, NULL)) != -1) {
                switch (c) {
                case 'n':
                        name = optarg;
                        break;
                case 't':
                        tty = true;
                        break;
                case 'i':
                        interactive = true;
                        break;
                case 'd':
                        detach = true;
                        break;
                case 'r':
                        runtime = optarg;
                        break;
                case 'R':
                        if (n_runtime_args == sizeof runtime_args / sizeof runtime_args[0])
                                return run_usage_error("too many --runtime-arg");
                        runtime_args[n_runtime_args++] = optarg;
                        break;
                case 'k':
                        keys = optarg;
                        break;
                default:
                        return ctl_usage(ctl_find_command("run"), true);
                }
        }
        if (optind >= argc || argc - optind > 2)
                return run_usage_error("needs BUNDLE and optionally ID");

        char bundle[PATH_MAX];
        if (!realpath(argv[optind], bundle)) {
                fprintf(stderr, "ctrmonctl run: bundle %s: %s\n", argv[optind], strerror(errno));
                return CTL_EXIT_FAILURE;
        }
        char base_buf[PATH_MAX];
        strcpy(base_buf, bundle);
        const char *id = optind + 1 < argc ? argv[optind + 1] : basename(base_buf);

        char *exits = NULL, *pidfile = NULL, *logspec = NULL;
        if (asprintf(&exits, "%s/exits", bundle) < 0 || asprintf(&pidfile, "%s/pidfile", bundle) < 0 ||
            asprintf(&logspec, "k8s-file:%s/ctr.log", bundle) < 0)
                return CTL_EXIT_FAILURE;
        if (mkdir(exits, 0700) < 0 && errno != EEXIST) {
                fprintf(stderr, "ctrmonctl run: cannot create %s: %s\n", exits, strerror(errno));
                return CTL_EXIT_FAILURE;
        }
        char *runtime_path = run_find_runtime(runtime);
        const char *ctrmon = run_ctrmon_path();

        const char *args[RUN_MAX_ARGS];
        size_t n = 0;
        args[n++] = ctrmon;
        args[n++] = "--api-version";
        args[n++] = "1";
        args[n++] = "-c";
        args[n++] = id;
        args[n++] = "-u";
        args[n++] = id;
        args[n++] = "-r";
        args[n++] = runtime_path;
        args[n++] = "-b";
        args[n++] = bundle;
        args[n++] = "-p";
        args[n++] = pidfile;
        args[n++] = "-l";
        args[n++] = logspec;
        args[n++] = "--exit-dir";
        args[n++] = exits;
        args[n++] = "--full-attach";
        args[n++] = "--start";
        if (name) {
                args[n++] = "-n";
                args[n++] = name;
        }
        if (tty)
                args[n++] = "-t";
        if (interactive)
                args[n++] = "-i";
        for (size_t i = 0; i < n_runtime_args; i++) {
                args[n++] = "--runtime-arg";
                args[n++] = runtime_args[i];
        }
        args[n] = NULL;

        int sync[2];
        if (pipe2(sync, O_CLOEXEC) < 0) {
                fprintf(stderr, "ctrmonctl run: pipe: %s\n", strerror(errno));
                return CTL_EXIT_FAILURE;
        }
        pid_t child = fork();
        if (child < 0) {
                fprintf(stderr, "ctrmonctl run: fork: %s\n", strerror(errno));
                return CTL_EXIT_FAILURE;
        }
        if (child == 0) {
                /* The daemon must not hold our stdio: a caller reading our
                 * output until EOF would wait for the container's end.
                 * Failures come back through the sync pipe. */
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 ||
                    dup2(sync[1], 3) < 0 || chdir(bundle) < 0)
                        _exit(127);
                setenv("_OCI_SYNCPIPE", "3", 1);
                unsetenv("_OCI_STARTPIPE");
                unsetenv("_OCI_ATTACHPIPE");
                execv(ctrmon, (char *const *) args);
                _exit(127);
        }
        close(sync[1]);
        long pid = 0;
        char *message = NULL;
        int r = run_read_sync(sync[0], &pid, &message);
        close(sync[0]);
        int wstatus = 0;
        while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR)
                ;
        int status = CTL_EXIT_FAILURE;
        if (r < 0 || pid <= 0) {
                if (r == -EBADMSG && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 127)
                        fprintf(stderr, "ctrmonctl run: cannot execute %s\n", ctrmon);
                else
                        fprintf(stderr, "ctrmonctl run: %s failed to create %s: %s\n", ctrmon, id,
                                message ? message : r < 0 ? strerror(-r) : "no pid reported");
                goto out;
        }
        if (ctl->json) {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "id", json_object_new_string(id));
                json_object_object_add(o, "pid", json_object_new_int64(pid));
                printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
                json_object_put(o);
        } else
                printf("%ld\n", pid);
        fflush(stdout);
        status = CTL_EXIT_OK;
        if (detach)
                goto out;

        free(ctl->socket_path);
        ctl->socket_path = ctrmon_client_bundle_socket_path(bundle);
        CtrmonClient *client = NULL;
        if ((status = ctl_connect(ctl, &client)))
                goto out;
        if (tty || interactive) {
                status = ctl_attach_stream(ctl, client, keys, interactive, false);
        } else {
                CtrmonExit ex;
                r = ctrmon_client_wait(client, &ex);
                status = r < 0 ? ctl_rpc_failed(ctl, client, "wait", r) : ctl_exit_status(ex.exit_code);
        }
        ctrmon_client_close(client);
out:
        free(message);
        free(runtime_path);
        free(exits);
        free(pidfile);
        free(logspec);
        return status;
}
