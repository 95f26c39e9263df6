/* Command-line options: conmon 2.2.1's whole option table on GOption, and the
 * validation conmon does before it daemonizes, in conmon's order and with its
 * exact messages (spec §1, §6.1). It returns errors, never exits (except that
 * GOption itself handles --help), and opens exactly one resource: the k8s-file
 * log, which conmon creates during validation. */
#include "options.h"
#include "diag.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "ctrmon-config.h"
#include "ctrmon/error.h"
#include "ctrmon/fd-util.h"

#define OPTIONS_DEFAULT_SOCKET_DIR "/var/run/crio"
/* journald's CONTAINER_ID is the first 12 characters of --cid. */
#define OPTIONS_JOURNALD_SHORT_ID_LEN 12
/* ctrmon hardening: ids become file and socket names. */
#define OPTIONS_ID_MAX_LEN 1024
/* --runtime-timeout: default, and the largest value (ms must fit a guint). */
#define OPTIONS_RUNTIME_TIMEOUT_DEFAULT 300
#define OPTIONS_RUNTIME_TIMEOUT_MAX 2000000
/* --log-max-files: a rotation renames every backup slot, present or not
 * (log-k8s-file.c), on the main loop: 128 renames take well under 1 ms,
 * where 1e6 took 6 s per rotation and 5e6 lost the exit status. */
#define OPTIONS_LOG_MAX_FILES_MAX 128
/* --log-buffer-size: what a container that outruns its log may make the
 * monitor hold in memory. */
#define OPTIONS_LOG_BUFFER_SIZE_MAX (UINT64_C(1) << 30)

/* Everything GOption writes into while parsing. GOption stores G_OPTION_ARG_NONE
 * as a gboolean (an int), so flags cannot point at CtrmonOptions' `bool`s;
 * strings and integers go straight into the options struct. */
typedef struct {
        CtrmonOptions *opts;
        GPtrArray *runtime_opts; /* --runtime-opt and --restore-arg, in order */
        char *log_level;
        char **log_paths;
        gboolean version;
        gboolean api_version_1;
        gboolean terminal;
        gboolean stdin_open;
        gboolean leave_stdin_open;
        gboolean exec;
        gboolean exec_attach;
        gboolean systemd_cgroup;
        gboolean no_pivot;
        gboolean no_new_keyring;
        gboolean replace_listen_pid;
        gboolean sync;
        gboolean syslog;
        gboolean full_attach;
        gboolean no_sync_log;
        gboolean no_container_partial_message;
        gboolean log_priority_prefix;
        gboolean log_rotate;
        gboolean start;
        gboolean systemd_scope;
        gboolean systemd_scope_required;
} OptionsParse;

static void options_parse_clear(OptionsParse *p)
{
        if (p->runtime_opts)
                g_ptr_array_unref(p->runtime_opts);
        g_free(p->log_level);
        g_strfreev(p->log_paths);
        *p = (OptionsParse) { 0 };
}

/* --runtime-opt and its deprecated alias --restore-arg share one list; a
 * callback (rather than two G_OPTION_ARG_STRING_ARRAY entries on one pointer)
 * keeps their relative order on the command line. */
static gboolean options_runtime_opt_cb(G_GNUC_UNUSED const char *option_name, const char *value,
                                       gpointer data, G_GNUC_UNUSED GError **error)
{
        OptionsParse *p = data;

        g_ptr_array_add(p->runtime_opts, g_strdup(value));
        return TRUE;
}

/* --log-buffer-size: ctrmon's own, so no conmon rule to follow. */
static gboolean options_log_buffer_size_cb(G_GNUC_UNUSED const char *option_name, const char *value,
                                           gpointer data, GError **error)
{
        OptionsParse *p = data;

        uint64_t size;

        if (options_parse_size(value, &size) < 0) {
                g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                            "Invalid --log-buffer-size \"%s\": expected a byte count, optionally with a k, m or g "
                            "suffix (KiB, MiB, GiB)",
                            value);
                return FALSE;
        }
        /* The container decides how much of it is used: the bound is what a
         * hostile one can make the monitor allocate. */
        if (size > OPTIONS_LOG_BUFFER_SIZE_MAX) {
                g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                            "Invalid --log-buffer-size \"%s\": must be between 0 and 1g (%" G_GUINT64_FORMAT
                            " bytes)",
                            value, OPTIONS_LOG_BUFFER_SIZE_MAX);
                return FALSE;
        }
        p->opts->log_buffer_size = size;
        return TRUE;
}

/* Paths, ids and arguments are raw bytes handed to execv(), open() and
 * journald: the FILENAME argument types keep them unconverted, where STRING
 * would run them through g_locale_to_utf8() and reject non-ASCII bytes in the
 * C locale. Parsing rules (last wins, arrays accumulate) are the same. */
#define OPT_S(l, s, ptr, desc, arg) \
        { l, s, 0, G_OPTION_ARG_FILENAME, ptr, desc, arg }
#define OPT_SA(l, s, ptr, desc, arg) \
        { l, s, 0, G_OPTION_ARG_FILENAME_ARRAY, ptr, desc, arg }
#define OPT_F(l, s, ptr, desc) \
        { l, s, 0, G_OPTION_ARG_NONE, ptr, desc, NULL }
#define OPT_HIDDEN(l, type, ptr, desc, arg) \
        { l, 0, G_OPTION_FLAG_HIDDEN, type, ptr, desc, arg }

static GOptionContext *options_context_new(OptionsParse *p)
{
        CtrmonOptions *o = p->opts;
        const GOptionEntry entries[] = {
                /* identity */
                OPT_S("cid", 'c', &o->cid,
                      "Container ID (required): runtime argument, exit file name, journald CONTAINER_ID", "ID"),
                OPT_S("cuuid", 'u', &o->cuuid,
                      "Container UUID: name of the attach socket link under --socket-dir-path", "UUID"),
                OPT_S("name", 'n', &o->name,
                      "Container name: journald CONTAINER_NAME and SYSLOG_IDENTIFIER", "NAME"),

                /* runtime */
                OPT_S("runtime", 'r', &o->runtime_path,
                      "Path of the OCI runtime binary to execute (required)", "PATH"),
                OPT_S("bundle", 'b', &o->bundle,
                      "OCI bundle directory passed to the runtime; home of attach, ctl and winsz (default: cwd)", "DIR"),
                OPT_S("container-pidfile", 'p', &o->container_pidfile,
                      "Runtime --pid-file to read the container pid from (default: <cwd>/pidfile-<cid>)", "FILE"),
                OPT_HIDDEN("pidfile", G_OPTION_ARG_FILENAME, &o->container_pidfile,
                           "Container PID file (DEPRECATED alias of --container-pidfile)", "FILE"),
                OPT_SA("runtime-arg", 0, &o->runtime_args,
                       "Global runtime argument inserted before the subcommand; repeatable", "ARG"),
                { "runtime-opt", 0, G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK,
                  (gpointer) options_runtime_opt_cb,
                  "Runtime create/restore/exec subcommand option appended after its own; repeatable", "OPT" },
                { "restore-arg", 0, G_OPTION_FLAG_FILENAME | G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_CALLBACK,
                  (gpointer) options_runtime_opt_cb,
                  "Runtime restore option (DEPRECATED alias of --runtime-opt)", "ARG" },
                OPT_F("systemd-cgroup", 's', &p->systemd_cgroup,
                      "Pass --systemd-cgroup to the runtime for create and restore"),
                OPT_F("no-pivot", 0, &p->no_pivot,
                      "Pass --no-pivot to the runtime for create and restore"),
                OPT_F("no-new-keyring", 0, &p->no_new_keyring,
                      "Pass --no-new-keyring to the runtime for create and restore"),
                OPT_S("restore", 0, &o->restore_path,
                      "Restore the container from this checkpoint image directory (runtime restore)", "DIR"),
                OPT_F("replace-listen-pid", 0, &p->replace_listen_pid,
                      "Always rewrite LISTEN_PID in the runtime environment"),
                { "runtime-timeout", 0, 0, G_OPTION_ARG_INT, &o->runtime_timeout,
                  "Kill the runtime (and what it started) if create, restore or exec has not returned after this "
                  "many seconds; report a failure (default: 300; 0: wait forever)", "SECONDS" },

                /* exec */
                OPT_F("exec", 'e', &p->exec,
                      "Exec mode: run a process in an existing container (runtime exec)"),
                OPT_F("exec-attach", 0, &p->exec_attach,
                      "Exec session with attach handshake on _OCI_ATTACHPIPE (needs --exec, --api-version)"),
                OPT_S("exec-process-spec", 0, &o->exec_process_spec,
                      "OCI process JSON for --exec, passed as runtime --process", "FILE"),

                /* protocol */
                OPT_F("api-version", 0, &p->api_version_1,
                      "Use the current (v1) sync-pipe protocol; a following version number is ignored"),
                OPT_F("sync", 0, &p->sync,
                      "Do not daemonize: the caller can wait for the monitor's exit status"),
                OPT_S("conmon-pidfile", 'P', &o->conmon_pidfile,
                      "File receiving the monitor daemon's pid (not written with --sync)", "FILE"),

                /* stdio */
                OPT_F("terminal", 't', &p->terminal,
                      "Give the container a pty through the runtime's --console-socket"),
                OPT_F("stdin", 'i', &p->stdin_open,
                      "Give the container a stdin pipe fed by attach clients"),
                OPT_F("leave-stdin-open", 0, &p->leave_stdin_open,
                      "With --stdin: keep container stdin open when an attach client disconnects"),

                /* attach */
                OPT_S("socket-dir-path", 0, &o->socket_dir_path,
                      "Directory for the attach socket link (default: " OPTIONS_DEFAULT_SOCKET_DIR ")", "DIR"),
                OPT_F("full-attach", 0, &p->full_attach,
                      "Create the attach socket as <bundle>/attach, ignoring --socket-dir-path"),

                /* exit */
                OPT_S("exit-dir", 0, &o->exit_dir,
                      "Directory receiving the exit status file named <cid>", "DIR"),
                OPT_S("persist-dir", '0', &o->persist_dir,
                      "Directory receiving the container's exit and oom files", "DIR"),
                OPT_S("exit-command", 0, &o->exit_command,
                      "Program to execute after the container has exited", "PATH"),
                OPT_SA("exit-command-arg", 0, &o->exit_command_args,
                       "Argument for --exit-command; repeatable, in order", "ARG"),
                { "exit-delay", 0, 0, G_OPTION_ARG_INT, &o->exit_delay,
                  "Seconds to wait before running --exit-command (>= 0)", "SECONDS" },
                { "timeout", 'T', 0, G_OPTION_ARG_INT, &o->timeout,
                  "Kill the container or exec process after this many seconds (<= 0: never)", "SECONDS" },
                OPT_F("no-sync-log", 0, &p->no_sync_log,
                      "Do not fsync the k8s-file log at exit (done after the exit files are written)"),

                /* container logs */
                OPT_SA("log-path", 'l', &p->log_paths,
                       "Container log driver: k8s-file:PATH, PATH, journald, passthrough or none (required; repeatable)",
                       "DRIVER:PATH"),
                { "log-size-max", 0, 0, G_OPTION_ARG_INT64, &o->log_size_max,
                  "Maximum size in bytes of the k8s-file log before it is truncated or rotated (<= 0: unlimited)", "BYTES" },
                { "log-global-size-max", 0, 0, G_OPTION_ARG_INT64, &o->log_global_size_max,
                  "Maximum total bytes written to the k8s-file log (<= 0: unlimited)", "BYTES" },
                OPT_F("log-rotate", 0, &p->log_rotate,
                      "Rotate the k8s-file log (.1, .2, ...) instead of truncating it"),
                { "log-max-files", 0, 0, G_OPTION_ARG_INT, &o->log_max_files,
                  "Number of rotated k8s-file log backups to keep with --log-rotate (1-128, default: 1)", "N" },
                OPT_SA("log-allowlist-dir", 0, &o->log_allowlist_dirs,
                       "Allowed parent directory of the k8s-file log when rotation recreates it; repeatable", "DIR"),
                OPT_S("log-tag", 0, &o->log_tag,
                      "journald CONTAINER_TAG and SYSLOG_IDENTIFIER of container log entries", "TAG"),
                OPT_SA("log-label", 0, &o->log_labels,
                       "Extra journald field NAME=VALUE for container log entries; repeatable", "NAME=VALUE"),
                OPT_F("no-container-partial-message", 0, &p->no_container_partial_message,
                      "journald: never add CONTAINER_PARTIAL_MESSAGE=true to log entries"),
                OPT_F("log-priority-prefix", 0, &p->log_priority_prefix,
                      "journald: read a leading <0>..<7> of a line as its PRIORITY (conmon 2.2's rule; off by "
                      "default because podman 4 cannot read such entries back; ctrmon only)"),
                { "log-buffer-size", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer) options_log_buffer_size_cb,
                  "Never let the container wait on its logs: buffer up to SIZE bytes of output (k, m, g "
                  "suffixes, at most 1g) for a writer thread and drop, counted, what does not fit (default 0: "
                  "lossless, the container waits for slow logs; ctrmon only)",
                  "SIZE" },

                /* the monitor's own diagnostics */
                OPT_S("log-level", 0, &p->log_level,
                      "Level of the monitor's own messages: error, warning, info, debug or trace", "LEVEL"),
                OPT_F("syslog", 0, &p->syslog,
                      "Also send the monitor's own messages to syslog"),

                /* systemd */
                OPT_S("sdnotify-socket", 0, &o->sdnotify_socket,
                      "Host NOTIFY_SOCKET to relay the container's sd_notify messages to", "PATH"),
                OPT_S("api-socket", 0, &o->api_socket,
                      "Path of the JSON-RPC control socket (default: <bundle>/ctrmon/api.sock)", "PATH"),
                OPT_F("start", 0, &p->start,
                      "Also start the container after creating it (runtime start), for use without an engine; "
                      "with $NOTIFY_SOCKET set, report READY=1, STATUS= and STOPPING=1 to systemd"),
                OPT_F("systemd-scope", 0, &p->systemd_scope,
                      "Move the monitor into the transient unit ctrmon-<cid>.scope and the container into "
                      "ctrmon-<cid>-container.scope (without --systemd-cgroup)"),
                OPT_F("systemd-scope-required", 0, &p->systemd_scope_required,
                      "Like --systemd-scope, but fail (sync pipe -1) instead of warning when a scope cannot be created"),
                OPT_S("systemd-bus", 0, &o->systemd_bus,
                      "Service manager for the scopes: user or system (default: user when not root, else system)",
                      "BUS"),
                OPT_S("systemd-slice", 0, &o->systemd_slice,
                      "Slice for the scopes (default: machine.slice when root, user.slice of the user manager otherwise)",
                      "SLICE"),

                /* Removed from conmon after 2.2.1 and broken before; accepted
                 * so that older callers keep working, and ignored. */
                OPT_HIDDEN("seccomp-notify-socket", G_OPTION_ARG_FILENAME, &o->seccomp_notify_socket,
                           "Ignored (seccomp notify support was removed)", "PATH"),
                OPT_HIDDEN("seccomp-notify-plugins", G_OPTION_ARG_FILENAME, &o->seccomp_notify_plugins,
                           "Ignored (seccomp notify support was removed)", "PLUGINS"),

                OPT_F("version", 0, &p->version,
                      "Print the version (first line: conmon version " CTRMON_CONMON_COMPAT_VERSION ") and exit"),
                { NULL },
        };
        GOptionContext *ctx;
        GOptionGroup *group;

        ctx = g_option_context_new("- ctrmon container monitor (conmon-compatible)");
        /* The main group carries `p` to options_runtime_opt_cb. */
        group = g_option_group_new("conmon", "conmon options", "Show conmon options", p, NULL);
        g_option_group_add_entries(group, entries);
        g_option_context_set_main_group(ctx, group);
        return ctx;
}

int options_parse_size(const char *s, uint64_t *ret_bytes)
{
        uint64_t value = 0, unit = 1;
        const char *p = s;

        if (!s || !g_ascii_isdigit(*s))
                return -EINVAL;
        for (; g_ascii_isdigit(*p); p++) {
                uint64_t digit = (uint64_t) (*p - '0');
                if (value > (UINT64_MAX - digit) / 10)
                        return -ERANGE;
                value = value * 10 + digit;
        }
        switch (g_ascii_tolower(*p)) {
        case '\0':
                break;
        case 'k':
                unit = 1024;
                break;
        case 'm':
                unit = 1024 * 1024;
                break;
        case 'g':
                unit = 1024 * 1024 * 1024;
                break;
        default:
                return -EINVAL;
        }
        if (*p && p[1] != '\0')
                return -EINVAL;
        if (value > UINT64_MAX / unit)
                return -ERANGE;
        if (ret_bytes)
                *ret_bytes = value * unit;
        return 0;
}

int options_parse_log_level(const char *s, CtrmonLogLevel *ret_level)
{
        static const struct {
                const char *name;
                CtrmonLogLevel level;
        } table[] = {
                { "error", CTRMON_LOG_LEVEL_ERROR },     { "fatal", CTRMON_LOG_LEVEL_ERROR },
                { "panic", CTRMON_LOG_LEVEL_ERROR },     { "warn", CTRMON_LOG_LEVEL_WARNING },
                { "warning", CTRMON_LOG_LEVEL_WARNING }, { "info", CTRMON_LOG_LEVEL_INFO },
                { "debug", CTRMON_LOG_LEVEL_DEBUG },     { "trace", CTRMON_LOG_LEVEL_TRACE },
        };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < G_N_ELEMENTS(table); i++)
                if (strcasecmp(s, table[i].name) == 0) {
                        if (ret_level)
                                *ret_level = table[i].level;
                        return 0;
                }
        return -EINVAL;
}

/* ---- -l/--log-path (spec §6.1) ----------------------------------------- */

/* One -l value. conmon splits it with strtok(":") twice: empty fields
 * collapse and only the first two tokens count, so paths cannot contain ':'.
 * Whether the value *starts* with ':' is what makes ":journald" a file. */
static int options_parse_log_spec(const char *spec, CtrmonLogConfig *log, GError **error)
{
        g_auto(GStrv) fields = g_strsplit(spec, ":", -1);
        const char *driver = NULL, *path = NULL;

        for (char **f = fields; *f; f++) {
                if (**f == '\0')
                        continue;
                if (!driver)
                        driver = *f;
                else {
                        path = *f;
                        break;
                }
        }

        if (!driver)
                return ctrmon_set_error(error, EINVAL, "[conmon:e]: log-path must not be empty");

        if (!path && spec[0] == ':') {
                path = driver;
                driver = "k8s-file";
        }

        if (g_str_equal(driver, "none") || g_str_equal(driver, "off") || g_str_equal(driver, "null"))
                return 0; /* no-op: "-l journald -l none" still logs to journald */

        if (g_str_equal(driver, "passthrough")) {
                log->passthrough = true;
                return 0;
        }

        if (g_str_equal(driver, "journald")) {
                log->journald = true;
                return 0;
        }

        if (g_str_equal(driver, "k8s-file")) {
                if (!path)
                        return ctrmon_set_error(error, EINVAL, "[conmon:e]: k8s-file requires a filename");
        } else if (!path && !strchr(spec, ':'))
                path = driver; /* a bare PATH */
        else
                return ctrmon_set_error(error, EINVAL, "[conmon:e]: No such log driver %s", driver);

        log->k8s_file = true;
        g_free(log->k8s_path);
        log->k8s_path = g_strdup(path); /* the last k8s-file wins */
        return 0;
}

/* journald label "NAME=VALUE": exactly one '=', NAME non-empty and made of
 * A-Z, 0-9 and '_' (journald's field-name rules, as conmon checks them). */
static int options_check_log_label(const char *label, GError **error)
{
        const char *eq = strchr(label, '=');

        if (label[0] == '=')
                return ctrmon_set_error(error, EINVAL,
                                        "[conmon:e]: Container labels must be in format LABEL=VALUE (no LABEL present in '%s')",
                                        label);
        if (!eq || strchr(eq + 1, '='))
                return ctrmon_set_error(error, EINVAL,
                                        "[conmon:e]: Container labels must be in format LABEL=VALUE (none or more than one '=' present in '%s')",
                                        label);
        for (const char *c = label; c < eq; c++)
                if (!g_ascii_isupper(*c) && !g_ascii_isdigit(*c) && *c != '_')
                        return ctrmon_set_error(error, EINVAL,
                                                "[conmon:e]: Container label names must contain only uppercase letters, numbers and underscore (in '%s')",
                                                label);
        return 0;
}

/* Step 15: parse every -l, open the k8s file (conmon does it here, before
 * the fork, so an unwritable log is an argument error), then the checks
 * that depend on which drivers are enabled. */
static int options_configure_log_drivers(CtrmonOptions *o, char **log_paths, GError **error)
{
        int r;

        if (!log_paths)
                return ctrmon_set_error(error, EINVAL, "[conmon:e]: Log driver not provided. Use --log-path");

        for (char **l = log_paths; *l; l++) {
                r = options_parse_log_spec(*l, &o->log, error);
                if (r < 0)
                        return r;
        }

        if (o->log.k8s_file) {
                o->log.k8s_fd = open(o->log.k8s_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
                if (o->log.k8s_fd < 0) {
                        int e = errno;
                        return ctrmon_set_error(error, e, "[conmon:e]: Failed to open log file %s", g_strerror(e));
                }

                if (!o->log.journald && o->log_tag)
                        return ctrmon_set_error(error, EINVAL, "[conmon:e]: k8s-file doesn't support --log-tag");
                if (!o->log.journald && o->log_labels)
                        return ctrmon_set_error(error, EINVAL, "[conmon:e]: k8s-file doesn't support --log-label");
        }

        if (o->log.journald) {
                /* conmon's rule, for engines. ctrmon's own unit mode takes
                 * short names such as ctrmon@web: CONTAINER_ID is then the
                 * whole ID. */
                if (strlen(o->cid) <= OPTIONS_JOURNALD_SHORT_ID_LEN && !o->start)
                        return ctrmon_set_error(error, EINVAL,
                                                "[conmon:e]: Container ID must be longer than 12 characters");
                for (char **l = o->log_labels; l && *l; l++) {
                        r = options_check_log_label(*l, error);
                        if (r < 0)
                                return r;
                }
        }

        return 0;
}

/* ---- validation (spec §1.3) -------------------------------------------- */

/* ctrmon hardening, beyond conmon: the cid and cuuid become file names
 * (exit file, pidfile, attach link), so refuse what would escape or break
 * them. Returns the reason, or NULL if the id is fine. */
static const char *options_id_problem(const char *id)
{
        size_t len = strlen(id);

        if (len == 0)
                return "must not be empty";
        if (len > OPTIONS_ID_MAX_LEN)
                return "must not be longer than 1024 bytes";
        if (g_str_equal(id, ".") || g_str_equal(id, ".."))
                return "must not be '.' or '..'";
        if (strchr(id, '/'))
                return "must not contain '/'";
        /* The cid is the runtime's last positional argument: "-x" or
         * "--help" there is an option to runc and crun. podman's and CRI-O's
         * ids and names never start with '-'. */
        if (id[0] == '-')
                return "must not start with '-'";
        for (const unsigned char *c = (const unsigned char *) id; *c; c++)
                if (*c < 0x20 || *c == 0x7f)
                        return "must not contain control characters";
        return NULL;
}

/* The id as shown in the error: control characters as \xNN, cut at 64 bytes
 * so that a huge argument does not make a huge message. */
static char *options_id_display(const char *id)
{
        GString *s = g_string_new(NULL);
        size_t n = 0;

        for (const unsigned char *c = (const unsigned char *) id; *c; c++, n++) {
                if (n == 64) {
                        g_string_append(s, "...");
                        break;
                }
                if (*c < 0x20 || *c == 0x7f)
                        g_string_append_printf(s, "\\x%02x", *c);
                else
                        g_string_append_c(s, (char) *c);
        }
        return g_string_free(s, FALSE);
}

static int options_check_id(const char *id, const char *what, GError **error)
{
        const char *problem;
        g_autofree char *shown = NULL;

        if (!id)
                return 0;
        problem = options_id_problem(id);
        if (!problem)
                return 0;
        shown = options_id_display(id);
        return ctrmon_set_error(error, EINVAL, "[conmon:e]: Invalid %s '%s': %s", what, shown, problem);
}

/* -n is a journald field and a unit description, not a file name: only a
 * leading '-' (an option to whatever gets it as an argument) is refused. */
static int options_check_name(const char *name, GError **error)
{
        g_autofree char *shown = NULL;

        if (!name || name[0] != '-')
                return 0;
        shown = options_id_display(name);
        return ctrmon_set_error(error, EINVAL, "[conmon:e]: Invalid container name '%s': must not start with '-'",
                                shown);
}

/* ctrmon hardening: upper bounds conmon does not have, on numbers whose
 * cost the monitor pays on its main loop. */
static int options_check_bounds(const CtrmonOptions *o, GError **error)
{
        if (o->log_max_files > OPTIONS_LOG_MAX_FILES_MAX)
                return ctrmon_set_error(error, EINVAL,
                                        "[conmon:e]: --log-max-files must be between 1 and %d, not %d",
                                        OPTIONS_LOG_MAX_FILES_MAX, o->log_max_files);
        return 0;
}

/* Step 16. A warning, like conmon's nwarn: filtered by --log-level, and also
 * sent to syslog with --syslog (conmon's format, spec §6.6). */
static void options_warn(const CtrmonOptions *o, const char *msg)
{
        if (o->log_level < CTRMON_LOG_LEVEL_WARNING)
                return;
        g_printerr("[conmon:w]: %s\n", msg);
        if (o->syslog) {
                g_autofree char *who = o->log_tag ? g_strdup_printf("%s: %s", o->cid, o->log_tag)
                                                  : g_strdup(o->cid);
                diag_syslog_open();
                syslog(LOG_INFO, "conmon %.20s <nwarn>: %s", who, msg);
        }
}

/* Steps 3-16 after a successful parse; step 2 (--version) is the caller's. */
/* ctrmon's systemd options (conmon has none). */
static int options_check_systemd(CtrmonOptions *o, GError **error)
{
        if (o->systemd_scope_required)
                o->systemd_scope = true;
        if (o->systemd_bus && !g_str_equal(o->systemd_bus, "user") && !g_str_equal(o->systemd_bus, "system"))
                return ctrmon_set_error(error, EINVAL, "[conmon:e]: --systemd-bus must be 'user' or 'system', not '%s'",
                                        o->systemd_bus);
        if (o->systemd_slice && !g_str_has_suffix(o->systemd_slice, ".slice"))
                return ctrmon_set_error(error, EINVAL, "[conmon:e]: --systemd-slice must name a .slice unit, not '%s'",
                                        o->systemd_slice);
        if (o->start && o->exec)
                return ctrmon_set_error(error, EINVAL, "[conmon:e]: --start cannot be used with --exec");
        return 0;
}

static int options_validate(CtrmonOptions *o, OptionsParse *p, GError **error)
{
        g_autofree char *cwd = NULL;
        int r;

        /* 3, 4 */
        if (o->log_max_files < 0)
                return ctrmon_set_error(error, EINVAL, "conmon: log-max-files must be non-negative, got %d",
                                        o->log_max_files);
        if (o->log_rotate && o->log_max_files == 0)
                return ctrmon_set_error(error, EINVAL,
                                        "conmon: log-max-files must be at least 1 when log-rotate is enabled, got %d",
                                        o->log_max_files);

        /* 5 */
        if (!o->cid)
                return ctrmon_set_error(error, EINVAL, "conmon: Container ID not provided. Use --cid");

        /* 6 */
        if (p->log_level && options_parse_log_level(p->log_level, &o->log_level) < 0)
                return ctrmon_set_error(error, EINVAL, "[conmon:e]: No such log level %s", p->log_level);

        /* 7, 8, 9 */
        if (o->restore_path && o->exec)
                return ctrmon_set_error(error, EINVAL,
                                        "[conmon:e]: Cannot use 'exec' and 'restore' at the same time");
        if (o->exec_attach && !o->exec)
                return ctrmon_set_error(error, EINVAL, "[conmon:e]: Attach can only be specified with exec");
        if (o->exec_attach && !o->api_version_1)
                return ctrmon_set_error(error, EINVAL,
                                        "[conmon:e]: Attach can only be specified for a non-legacy exec session");

        /* 10: the legacy exec protocol did not need the UUID */
        if (!o->cuuid && (!o->exec || o->api_version_1))
                return ctrmon_set_error(error, EINVAL, "[conmon:e]: Container UUID not provided. Use --cuuid");

        /* 11: access(X_OK) as conmon does; note a directory passes */
        if (!o->runtime_path)
                return ctrmon_set_error(error, EINVAL, "[conmon:e]: Runtime path not provided. Use --runtime");
        if (access(o->runtime_path, X_OK) < 0) {
                int e = errno;
                return ctrmon_set_error(error, e, "[conmon:e]: Runtime path %s is not valid %s", o->runtime_path,
                                        g_strerror(e));
        }

        /* 12 */
        if (o->exec && !o->exec_process_spec)
                return ctrmon_set_error(error, EINVAL,
                                        "[conmon:e]: Exec process spec path not provided. Use --exec-process-spec");

        /* 13: defaults that depend on the working directory */
        cwd = getcwd(NULL, 0); /* g_free() is free() since GLib 2.46 */
        if (!cwd)
                return ctrmon_set_error(error, errno, "[conmon:e]: Failed to get working directory");
        if (!o->bundle && !o->exec)
                o->bundle = g_strdup(cwd);
        if (!o->container_pidfile)
                o->container_pidfile = g_strdup_printf("%s/pidfile-%s", cwd, o->cid);

        /* 14 */
        if (o->exit_delay < 0)
                return ctrmon_set_error(error, EINVAL,
                                        "[conmon:e]: Delay before invoking exit command must be greater than or equal to 0");

        /* 15. Whether the k8s-file log exists before: a refused id must
         * not leave a log file behind (below). */
        bool log_existed = false;
        for (char **l = p->log_paths; l && *l; l++) {
                CtrmonLogConfig probe = { .k8s_fd = -1 };
                if (options_parse_log_spec(*l, &probe, NULL) == 0 && probe.k8s_file)
                        log_existed = access(probe.k8s_path, F_OK) == 0;
                g_free(probe.k8s_path);
        }
        r = options_configure_log_drivers(o, p->log_paths, error);
        if (r < 0)
                return r;

        /* ctrmon's own checks come after every check conmon makes, so that
         * conmon's first-failure-wins order holds for all of those. An id
         * they refuse creates nothing: the log file step 15 created goes. */
        r = options_check_id(o->cid, "container ID", error);
        if (r >= 0)
                r = options_check_id(o->cuuid, "container UUID", error);
        if (r >= 0)
                r = options_check_name(o->name, error);
        if (r >= 0)
                r = options_check_bounds(o, error);
        if (r < 0) {
                if (o->log.k8s_fd >= 0 && !log_existed) {
                        ctrmon_close_fd(&o->log.k8s_fd);
                        unlink(o->log.k8s_path);
                }
                return r;
        }

        if (o->runtime_timeout < 0 || o->runtime_timeout > OPTIONS_RUNTIME_TIMEOUT_MAX)
                return ctrmon_set_error(error, EINVAL,
                                        "[conmon:e]: --runtime-timeout must be between 0 and %d seconds, not %d",
                                        OPTIONS_RUNTIME_TIMEOUT_MAX, o->runtime_timeout);

        r = options_check_systemd(o, error);
        if (r < 0)
                return r;

        /* 16 */
        if (o->no_container_partial_message && !o->log.journald)
                options_warn(o, "--no-container-partial-message has no effect without journald log driver");
        if (o->log_priority_prefix && !o->log.journald)
                options_warn(o, "--log-priority-prefix has no effect without journald log driver");

        return 0;
}

/* ---- entry points ------------------------------------------------------ */

static void options_copy_flags(CtrmonOptions *o, const OptionsParse *p)
{
        o->api_version_1 = p->api_version_1;
        o->terminal = p->terminal;
        o->stdin_open = p->stdin_open;
        o->leave_stdin_open = p->leave_stdin_open;
        o->exec = p->exec;
        o->exec_attach = p->exec_attach;
        o->systemd_cgroup = p->systemd_cgroup;
        o->no_pivot = p->no_pivot;
        o->no_new_keyring = p->no_new_keyring;
        o->replace_listen_pid = p->replace_listen_pid;
        o->sync = p->sync;
        o->syslog = p->syslog;
        o->full_attach = p->full_attach;
        o->no_sync_log = p->no_sync_log;
        o->no_container_partial_message = p->no_container_partial_message;
        o->log_priority_prefix = p->log_priority_prefix;
        o->log_rotate = p->log_rotate;
        o->start = p->start;
        o->systemd_scope = p->systemd_scope;
        o->systemd_scope_required = p->systemd_scope_required;
}

static CtrmonOptions *options_new(void)
{
        CtrmonOptions *o = g_new0(CtrmonOptions, 1);

        o->log.k8s_fd = -1;
        o->log_size_max = -1;
        o->log_global_size_max = -1;
        o->log_max_files = 1;
        o->log_level = CTRMON_LOG_LEVEL_WARNING;
        o->runtime_timeout = OPTIONS_RUNTIME_TIMEOUT_DEFAULT;
        return o;
}

int options_parse(int argc, char **argv, CtrmonOptions **ret_options, GError **error)
{
        g_autoptr(CtrmonOptions) o = NULL;
        g_autoptr(GOptionContext) ctx = NULL;
        g_autoptr(GError) parse_error = NULL;
        g_auto(GStrv) args = NULL;
        OptionsParse p = { 0 };
        int r;

        g_return_val_if_fail(argc >= 0, -EINVAL);
        g_return_val_if_fail(argv || argc == 0, -EINVAL);
        g_return_val_if_fail(ret_options, -EINVAL);

        /* GOption removes and reorders what it parses: work on a copy, built
         * from argc so that argv need not be NULL-terminated. An empty argv
         * still needs argv[0] for GOption. */
        args = g_new0(char *, MAX(argc, 1) + 1);
        for (int i = 0; i < argc; i++)
                args[i] = g_strdup(argv[i] ? argv[i] : "");
        if (argc == 0)
                args[0] = g_strdup("ctrmon");

        o = options_new();
        p.opts = o;
        p.runtime_opts = g_ptr_array_new_with_free_func(g_free);

        /* Step 1. Left-over positionals (the "1" of "--api-version 1") stay
         * in args and are ignored, as conmon does. */
        ctx = options_context_new(&p);
        if (!g_option_context_parse_strv(ctx, &args, &parse_error)) {
                r = ctrmon_set_error(error, EINVAL, "conmon: option parsing failed: %s", parse_error->message);
                goto finish;
        }

        options_copy_flags(o, &p);
        if (p.runtime_opts->len > 0) {
                g_ptr_array_add(p.runtime_opts, NULL);
                o->runtime_opts = (char **) g_ptr_array_free(g_steal_pointer(&p.runtime_opts), FALSE);
        }
        if (!o->socket_dir_path)
                o->socket_dir_path = g_strdup(OPTIONS_DEFAULT_SOCKET_DIR);

        /* Step 2: honoured only once all of argv parsed. */
        if (p.version) {
                /* g_print(): stdout, flushed. Two lines, as conmon's
                 * "conmon version X\ncommit: H\n": podman's version probe
                 * and CRI-O's (third field) read the first, and `podman
                 * info` shows the output with the first newline turned into
                 * ", " (getConmonVersion), which makes two lines one:
                 * "conmon version 2.2.1, ctrmon version 0.1.0, commit: H". */
                g_print("%s", "conmon version " CTRMON_CONMON_COMPAT_VERSION "\n"
                              "ctrmon version " CTRMON_VERSION ", commit: " CTRMON_GIT_COMMIT "\n");
                r = 1;
                goto finish;
        }

        r = options_validate(o, &p, error);
        if (r < 0)
                goto finish;

        *ret_options = g_steal_pointer(&o);
        r = 0;
finish:
        options_parse_clear(&p);
        return r;
}

char *options_help_text(void)
{
        g_autoptr(CtrmonOptions) o = options_new();
        g_autoptr(GOptionContext) ctx = NULL;
        OptionsParse p = { .opts = o };
        char *help;

        /* The usage line names g_get_prgname(), which GOption sets only
         * while parsing. */
        if (!g_get_prgname())
                g_set_prgname("ctrmon");
        ctx = options_context_new(&p);
        help = g_option_context_get_help(ctx, TRUE, NULL);
        options_parse_clear(&p);
        return help;
}

void options_free(CtrmonOptions *o)
{
        if (!o)
                return;

        g_free(o->cid);
        g_free(o->cuuid);
        g_free(o->name);
        g_free(o->runtime_path);
        g_free(o->bundle);
        g_free(o->container_pidfile);
        g_strfreev(o->runtime_args);
        g_strfreev(o->runtime_opts);
        g_free(o->restore_path);
        g_free(o->exec_process_spec);
        g_free(o->conmon_pidfile);
        g_free(o->socket_dir_path);
        g_free(o->exit_dir);
        g_free(o->persist_dir);
        g_free(o->exit_command);
        g_strfreev(o->exit_command_args);
        g_free(o->log.k8s_path);
        ctrmon_close_fd(&o->log.k8s_fd);
        g_free(o->log_tag);
        g_strfreev(o->log_labels);
        g_strfreev(o->log_allowlist_dirs);
        g_free(o->sdnotify_socket);
        g_free(o->systemd_bus);
        g_free(o->api_socket);
        g_free(o->systemd_slice);
        g_free(o->seccomp_notify_socket);
        g_free(o->seccomp_notify_plugins);
        g_free(o);
}
