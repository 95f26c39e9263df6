/* ctrmonctl's one-shot commands: status, wait, kill, resize, stats,
 * version, events, logs and exec. Each parses its own options, makes its
 * call and prints either a readable form or (--json) the raw result. */
#include "ctrmonctl.h"
#include "ctrmon/signal-names.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Commands without options: only --help (handled in main) is accepted. */
static int ctl_no_args(const char *name, int argc, char **argv, int max_positional)
{
        for (int i = 1; i < argc; i++)
                if (argv[i][0] == '-' && argv[i][1]) {
                        fprintf(stderr, "ctrmonctl %s: unknown option %s\n", name, argv[i]);
                        return ctl_usage(ctl_find_command(name), true);
                }
        if (argc - 1 > max_positional) {
                fprintf(stderr, "ctrmonctl %s: too many arguments\n", name);
                return ctl_usage(ctl_find_command(name), true);
        }
        return 0;
}

static const char *ctl_str_or(const char *s, const char *fallback)
{
        return s && *s ? s : fallback;
}

/* ------------------------------------------------------------ status */

static void ctl_print_status(const CtrmonStatus *st)
{
        json_object *o = json_tokener_parse(st->json);
        json_object *v = NULL;
        printf("ID:          %s\n", ctl_str_or(st->id, "-"));
        if (st->name)
                printf("Name:        %s\n", st->name);
        printf("State:       %s%s\n", ctl_str_or(st->state, "-"), st->exec ? " (exec session)" : "");
        if (st->container_pid > 0)
                printf("PID:         %d\n", (int) st->container_pid);
        printf("Monitor PID: %d\n", (int) st->monitor_pid);
        if (st->exited) {
                printf("Exit code:   %d", st->exit_code);
                if (st->signal)
                        printf(" (killed by signal %d)", st->signal);
                if (st->timed_out)
                        printf(" (timed out)");
                printf("\n");
        }
        printf("OOM killed:  %s\n", st->oom ? "yes" : "no");
        static const struct {
                const char *key, *label;
        } times[] = { { "created_at", "Created:" }, { "started_at", "Started:" }, { "exited_at", "Exited:" } };
        for (size_t i = 0; o && i < sizeof times / sizeof times[0]; i++)
                if (json_object_object_get_ex(o, times[i].key, &v) && json_object_is_type(v, json_type_string))
                        printf("%-12s %s\n", times[i].label, json_object_get_string(v));
        printf("Terminal:    %s\n", st->terminal ? "yes" : "no");
        printf("Stdin:       %s\n", st->stdin_open ? "open" : "closed");
        if (st->bundle)
                printf("Bundle:      %s\n", st->bundle);
        if (o && json_object_object_get_ex(o, "runtime", &v) && json_object_is_type(v, json_type_string))
                printf("Runtime:     %s\n", json_object_get_string(v));
        json_object *logs;
        if (o && json_object_object_get_ex(o, "logs", &logs)) {
                if (json_object_object_get_ex(logs, "k8s_file", &v) && json_object_is_type(v, json_type_string))
                        printf("Log file:    %s\n", json_object_get_string(v));
                if (json_object_object_get_ex(logs, "journald", &v) && json_object_get_boolean(v))
                        printf("Journald:    yes\n");
        }
        if (o && json_object_object_get_ex(o, "api_socket", &v) && json_object_is_type(v, json_type_string))
                printf("API socket:  %s\n", json_object_get_string(v));
        json_object_put(o);
}

int ctl_cmd_status(Ctl *ctl, int argc, char **argv)
{
        int r = ctl_no_args("status", argc, argv, 0);
        if (r)
                return r;
        CtrmonClient *client = NULL;
        if ((r = ctl_connect(ctl, &client)))
                return r;
        CtrmonStatus st;
        r = ctrmon_client_status(client, &st);
        if (r < 0) {
                r = ctl_rpc_failed(ctl, client, "status", r);
                ctrmon_client_close(client);
                return r;
        }
        if (ctl->json)
                ctl_print_json(st.json, false);
        else
                ctl_print_status(&st);
        ctrmon_status_clear(&st);
        ctrmon_client_close(client);
        return CTL_EXIT_OK;
}

/* ------------------------------------------------------------ wait */

int ctl_cmd_wait(Ctl *ctl, int argc, char **argv)
{
        int r = ctl_no_args("wait", argc, argv, 0);
        if (r)
                return r;
        CtrmonClient *client = NULL;
        if ((r = ctl_connect(ctl, &client)))
                return r;
        char *json = NULL;
        r = ctrmon_client_call(client, "wait", NULL, &json);
        if (r < 0) {
                r = ctl_rpc_failed(ctl, client, "wait", r);
                ctrmon_client_close(client);
                return r;
        }
        json_object *o = json_tokener_parse(json);
        json_object *v = NULL;
        int code = o && json_object_object_get_ex(o, "exit_code", &v) ? json_object_get_int(v) : -1;
        if (ctl->json)
                ctl_print_json(json, false);
        else
                printf("%d\n", code);
        json_object_put(o);
        free(json);
        ctrmon_client_close(client);
        return ctl_exit_status(code);
}

/* ------------------------------------------------------------ kill */

int ctl_cmd_kill(Ctl *ctl, int argc, char **argv)
{
        static const struct option options[] = {
                { "signal", required_argument, NULL, 's' },
                { "all", no_argument, NULL, 'a' },
                { NULL, 0, NULL, 0 },
        };
        int signo = 15, c;
        bool all = false;
        optind = 0;
        while ((c = getopt_long(argc, argv, "+s:a", options, NULL)) != -1) {
                switch (c) {
                case 's':
                        signo = ctrmon_signal_from_name(optarg);
                        if (signo < 0) {
                                fprintf(stderr, "ctrmonctl kill: unknown signal \"%s\"\n", optarg);
                                return CTL_EXIT_FAILURE;
                        }
                        break;
                case 'a':
                        all = true;
                        break;
                default:
                        return ctl_usage(ctl_find_command("kill"), true);
                }
        }
        if (optind < argc)
                return ctl_usage(ctl_find_command("kill"), true);
        CtrmonClient *client = NULL;
        int r = ctl_connect(ctl, &client);
        if (r)
                return r;
        r = ctrmon_client_kill(client, signo, all);
        if (r < 0)
                r = ctl_rpc_failed(ctl, client, "kill", r);
        else
                r = CTL_EXIT_OK;
        ctrmon_client_close(client);
        return r;
}

/* ------------------------------------------------------------ resize */

static int ctl_parse_uint(const char *s, unsigned max, unsigned *ret)
{
        char *end;
        errno = 0;
        unsigned long n = strtoul(s, &end, 10);
        if (errno || !*s || *end || n > max || s[0] == '-')
                return -EINVAL;
        *ret = (unsigned) n;
        return 0;
}

int ctl_cmd_resize(Ctl *ctl, int argc, char **argv)
{
        unsigned rows, cols;
        if (argc != 3 || ctl_parse_uint(argv[1], 65535, &rows) < 0 || ctl_parse_uint(argv[2], 65535, &cols) < 0)
                return ctl_usage(ctl_find_command("resize"), true);
        CtrmonClient *client = NULL;
        int r = ctl_connect(ctl, &client);
        if (r)
                return r;
        r = ctrmon_client_resize(client, rows, cols);
        r = r < 0 ? ctl_rpc_failed(ctl, client, "resize", r) : CTL_EXIT_OK;
        ctrmon_client_close(client);
        return r;
}

/* ------------------------------------------------------------ stats, version */

/* Readable form of a JSON tree: one "a.b.c: value" line per leaf. */
static void ctl_print_flat(const char *prefix, json_object *o)
{
        if (json_object_is_type(o, json_type_object)) {
                json_object_object_foreach(o, key, val) {
                        char *p = NULL;
                        if (asprintf(&p, "%s%s%s", prefix, *prefix ? "." : "", key) < 0)
                                return;
                        ctl_print_flat(p, val);
                        free(p);
                }
                return;
        }
        if (json_object_is_type(o, json_type_array)) {
                for (size_t i = 0; i < json_object_array_length(o); i++) {
                        char *p = NULL;
                        if (asprintf(&p, "%s[%zu]", prefix, i) < 0)
                                return;
                        ctl_print_flat(p, json_object_array_get_idx(o, i));
                        free(p);
                }
                return;
        }
        printf("%s: %s\n", prefix,
               o ? (json_object_is_type(o, json_type_string) ? json_object_get_string(o)
                                                              : json_object_to_json_string(o))
                 : "-");
}

static int ctl_simple_call(Ctl *ctl, const char *method, int argc, char **argv)
{
        int r = ctl_no_args(method, argc, argv, 0);
        if (r)
                return r;
        CtrmonClient *client = NULL;
        if ((r = ctl_connect(ctl, &client)))
                return r;
        char *json = NULL;
        r = ctrmon_client_call(client, method, NULL, &json);
        if (r < 0) {
                r = ctl_rpc_failed(ctl, client, method, r);
                ctrmon_client_close(client);
                return r;
        }
        if (ctl->json) {
                ctl_print_json(json, false);
        } else {
                json_object *o = json_tokener_parse(json);
                ctl_print_flat("", o);
                json_object_put(o);
        }
        free(json);
        ctrmon_client_close(client);
        return CTL_EXIT_OK;
}

int ctl_cmd_stats(Ctl *ctl, int argc, char **argv)
{
        return ctl_simple_call(ctl, "stats", argc, argv);
}

int ctl_cmd_version(Ctl *ctl, int argc, char **argv)
{
        return ctl_simple_call(ctl, "version", argc, argv);
}

/* ------------------------------------------------------------ events */

static int ctl_event_cb(const CtrmonEvent *ev, void *userdata)
{
        Ctl *ctl = userdata;
        if (ctl->json) {
                printf("%s\n", ev->json);
        } else {
                /* TIME TYPE key=value...: one line a grep can work with. */
                printf("%s %s", ctl_str_or(ev->time, "-"), ev->type);
                json_object *o = json_tokener_parse(ev->json);
                if (o) {
                        json_object_object_foreach(o, key, val) {
                                if (!strcmp(key, "type") || !strcmp(key, "time"))
                                        continue;
                                printf(" %s=%s", key,
                                       val && json_object_is_type(val, json_type_string)
                                               ? json_object_get_string(val)
                                               : json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN));
                        }
                        json_object_put(o);
                }
                printf("\n");
        }
        /* Someone is watching live: do not sit in a pipe buffer. */
        if (fflush(stdout) != 0 && errno == EPIPE)
                return 1;
        return 0;
}

int ctl_cmd_events(Ctl *ctl, int argc, char **argv)
{
        int r = ctl_no_args("events", argc, argv, 0);
        if (r)
                return r;
        CtrmonClient *client = NULL;
        if ((r = ctl_connect(ctl, &client)))
                return r;
        r = ctrmon_client_subscribe(client, ctl_event_cb, ctl, NULL);
        r = r < 0 ? ctl_rpc_failed(ctl, client, "events", r) : CTL_EXIT_OK;
        ctrmon_client_close(client);
        return r;
}

/* ------------------------------------------------------------ logs */

static int ctl_log_cb(const CtrmonLogLine *line, void *userdata)
{
        Ctl *ctl = userdata;
        if (ctl->json) {
                printf("%s\n", line->json);
        } else {
                FILE *f = line->stream && strcmp(line->stream, "stderr") == 0 ? stderr : stdout;
                fwrite(line->text, 1, line->text_len, f);
                if (!line->partial)
                        fputc('\n', f);
        }
        if (fflush(stdout) != 0 && errno == EPIPE)
                return 1;
        return 0;
}

int ctl_cmd_logs(Ctl *ctl, int argc, char **argv)
{
        static const struct option options[] = {
                { "tail", required_argument, NULL, 'n' },
                { "follow", no_argument, NULL, 'f' },
                { NULL, 0, NULL, 0 },
        };
        int c, tail = -1;
        bool follow = false;
        unsigned n;
        optind = 0;
        while ((c = getopt_long(argc, argv, "+n:f", options, NULL)) != -1) {
                switch (c) {
                case 'n':
                        if (ctl_parse_uint(optarg, 1u << 30, &n) < 0) {
                                fprintf(stderr, "ctrmonctl logs: -n needs a number of lines\n");
                                return CTL_EXIT_FAILURE;
                        }
                        tail = (int) n;
                        break;
                case 'f':
                        follow = true;
                        break;
                default:
                        return ctl_usage(ctl_find_command("logs"), true);
                }
        }
        if (optind < argc)
                return ctl_usage(ctl_find_command("logs"), true);
        CtrmonClient *client = NULL;
        int r = ctl_connect(ctl, &client);
        if (r)
                return r;
        r = ctrmon_client_logs(client, tail, follow, ctl_log_cb, ctl);
        r = r < 0 ? ctl_rpc_failed(ctl, client, "logs", r) : CTL_EXIT_OK;
        ctrmon_client_close(client);
        return r;
}

/* ------------------------------------------------------------ exec */

static int ctl_read_all(int fd, char **ret, size_t *ret_len)
{
        size_t len = 0, cap = 65536;
        char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (len == cap) {
                        char *b = realloc(buf, cap *= 2);
                        if (!b) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = b;
                }
                ssize_t n = read(fd, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int e = errno;
                        free(buf);
                        return -e;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}

static int ctl_write_all(FILE *f, const char *data, size_t len)
{
        return fwrite(data, 1, len, f) == len ? 0 : -EIO;
}

int ctl_cmd_exec(Ctl *ctl, int argc, char **argv)
{
        static const struct option options[] = {
                { "interactive", no_argument, NULL, 'i' },
                { "tty", no_argument, NULL, 't' },
                { "timeout", required_argument, NULL, 'T' },
                { NULL, 0, NULL, 0 },
        };
        int c;
        bool interactive = false, tty = false;
        unsigned timeout = 0;
        optind = 0;
        while ((c = getopt_long(argc, argv, "+it", options, NULL)) != -1) {
                switch (c) {
                case 'i':
                        interactive = true;
                        break;
                case 't':
                        tty = true;
                        break;
                case 'T':
                        if (ctl_parse_uint(optarg, 1u << 30, &timeout) < 0) {
                                fprintf(stderr, "ctrmonctl exec: --timeout needs seconds\n");
                                return CTL_EXIT_FAILURE;
                        }
                        break;
                default:
                        return ctl_usage(ctl_find_command("exec"), true);
                }
        }
        if (optind >= argc) {
                fprintf(stderr, "ctrmonctl exec: no command given\n");
                return ctl_usage(ctl_find_command("exec"), true);
        }
        CtrmonExecOptions opts = {
                .argv = (const char *const *) argv + optind,
                .timeout = (int) timeout,
                .tty = tty,
        };
        char *input = NULL;
        size_t input_len = 0;
        if (interactive) {
                /* exec collects output like ExecSync: stdin is read up
                 * front and sent with the request. */
                int r = ctl_read_all(STDIN_FILENO, &input, &input_len);
                if (r < 0) {
                        fprintf(stderr, "ctrmonctl exec: cannot read stdin: %s\n", strerror(-r));
                        return CTL_EXIT_FAILURE;
                }
                opts.stdin_data = input;
                opts.stdin_len = input_len;
        }
        CtrmonClient *client = NULL;
        int r = ctl_connect(ctl, &client);
        if (r) {
                free(input);
                return r;
        }
        CtrmonExecResult res;
        r = ctrmon_client_exec(client, &opts, &res);
        free(input);
        if (r < 0) {
                r = ctl_rpc_failed(ctl, client, "exec", r);
                ctrmon_client_close(client);
                return r;
        }
        if (ctl->json) {
                ctl_print_json(res.json, false);
        } else {
                ctl_write_all(stdout, res.out, res.out_len);
                fflush(stdout);
                ctl_write_all(stderr, res.err, res.err_len);
                if (res.out_truncated || res.err_truncated)
                        fprintf(stderr, "ctrmonctl exec: output truncated (%s%s%s)\n",
                                res.out_truncated ? "stdout" : "", res.out_truncated && res.err_truncated ? ", " : "",
                                res.err_truncated ? "stderr" : "");
                if (res.timed_out)
                        fprintf(stderr, "ctrmonctl exec: timed out after %u seconds\n", timeout);
        }
        int status = ctl_exit_status(res.exit_code);
        ctrmon_exec_result_clear(&res);
        ctrmon_client_close(client);
        return status;
}
