/* Command-line options: conmon 2.2.1's full set, parsed with GOption and
 * validated in conmon's order with conmon's messages (spec §1). The result is
 * an immutable CtrmonOptions; the only resource it owns is the k8s-file log
 * descriptor, which conmon opens during validation (before daemonizing). */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
        CTRMON_LOG_LEVEL_ERROR = 0,
        CTRMON_LOG_LEVEL_WARNING,
        CTRMON_LOG_LEVEL_INFO,
        CTRMON_LOG_LEVEL_DEBUG,
        CTRMON_LOG_LEVEL_TRACE,
} CtrmonLogLevel;

typedef struct {
        /* Log drivers, from every -l/--log-path (spec §6.1). */
        bool k8s_file;           /* k8s-file enabled                      */
        char *k8s_path;          /* its path (the last one given wins)    */
        int k8s_fd;              /* opened O_APPEND, 0640; -1 if none     */
        bool journald;
        bool passthrough;
} CtrmonLogConfig;

typedef struct {
        /* identity */
        char *cid;               /* -c, required                           */
        char *cuuid;             /* -u                                     */
        char *name;              /* -n                                     */

        /* runtime */
        char *runtime_path;      /* -r, required, access(X_OK)             */
        char *bundle;            /* -b; defaults to cwd unless exec        */
        char *container_pidfile; /* -p; default <cwd>/pidfile-<cid>        */
        char **runtime_args;     /* --runtime-arg, before the subcommand   */
        char **runtime_opts;     /* --runtime-opt + --restore-arg, after   */
        bool systemd_cgroup;     /* -s                                     */
        bool no_pivot;
        bool no_new_keyring;
        char *restore_path;      /* --restore                              */
        bool replace_listen_pid;

        /* exec */
        bool exec;               /* -e                                     */
        bool exec_attach;
        char *exec_process_spec;

        /* protocol */
        bool api_version_1;      /* --api-version (a flag)                 */
        bool sync;               /* --sync: no daemonizing fork            */
        char *conmon_pidfile;    /* -P                                     */

        /* stdio */
        bool terminal;           /* -t                                     */
        bool stdin_open;         /* -i                                     */
        bool leave_stdin_open;

        /* attach socket and FIFOs */
        char *socket_dir_path;   /* default /var/run/crio                  */
        bool full_attach;

        /* exit */
        char *exit_dir;
        char *persist_dir;       /* -0                                     */
        char *exit_command;
        char **exit_command_args;
        int exit_delay;
        int timeout;             /* -T seconds, <= 0 never                 */
        int runtime_timeout;     /* --runtime-timeout seconds, 0 never     */
        bool no_sync_log;

        /* logging */
        CtrmonLogConfig log;
        char *log_tag;
        char **log_labels;       /* NAME=VALUE journald fields             */
        bool no_container_partial_message;
        bool log_priority_prefix;   /* journald: "<d>" sets PRIORITY      */
        int64_t log_size_max;    /* <= 0 unlimited                         */
        int64_t log_global_size_max;
        bool log_rotate;
        int log_max_files;
        char **log_allowlist_dirs;
        uint64_t log_buffer_size;   /* --log-buffer-size; 0: lossless      */

        /* ctrmon's own diagnostics */
        CtrmonLogLevel log_level;
        bool syslog;

        /* systemd */
        char *sdnotify_socket;
        bool start;                 /* --start: also `runtime start` (unit mode) */
        bool systemd_scope;         /* --systemd-scope: own scope + container's  */
        bool systemd_scope_required;/* a scope failure is fatal, not a warning   */
        char *systemd_bus;          /* "user", "system", or NULL (by uid)        */
        char *systemd_slice;        /* NULL: machine.slice / user.slice          */

        /* control API */
        char *api_socket;           /* --api-socket; NULL: <bundle>/ctrmon/api.sock */

        /* accepted and ignored for older callers (removed after 2.2.1) */
        char *seccomp_notify_socket;
        char *seccomp_notify_plugins;
} CtrmonOptions;

/* Parse and validate argv (spec §1.3 order). Returns:
 *   0  options are valid; *ret_options is set.
 *   1  --version was printed: the caller exits 0.
 *  <0  invalid: *error holds the exact line conmon prints (e.g.
 *      "conmon: Container ID not provided. Use --cid" or
 *      "[conmon:e]: No such log level X"), without newline; exit 1.
 * --help is handled by GOption (prints to stdout, exits 0). */
int options_parse(int argc, char **argv, CtrmonOptions **ret_options, GError **error);

/* The `--help` text (also used by tests that compare it to the man page). */
char *options_help_text(void);

void options_free(CtrmonOptions *options);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CtrmonOptions, options_free)

/* "4096", "64k", "8M", "1g": a byte count with an optional 1024-based k, m
 * or g suffix (case-insensitive). Returns -EINVAL for anything else, -ERANGE
 * on overflow; *ret_bytes is set only on success. */
int options_parse_size(const char *s, uint64_t *ret_bytes);

/* "error", "warning", ... as accepted by --log-level; NULL-safe. Returns -EINVAL
 * for an unknown level. Case-insensitive. */
int options_parse_log_level(const char *s, CtrmonLogLevel *ret_level);
