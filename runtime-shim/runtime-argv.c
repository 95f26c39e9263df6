/* runtime-argv: turns a RuntimeCall into the OCI runtime's argument vector,
 * word for word as conmon 2.2.1 builds it (spec §2.4). Pure: no I/O, no
 * environment, no validation beyond what the vector needs; deciding whether
 * a call makes sense is the monitor's job. */
#include "runtime-shim.h"

/* Append a copy of `word`; NULL words are a caller bug and are skipped so the
 * vector never ends early by accident. */
static void runtime_argv_add(GPtrArray *argv, const char *word)
{
        g_return_if_fail(word != NULL);
        g_ptr_array_add(argv, g_strdup(word));
}

/* Append every word of a NULL-terminated list in order; NULL means none.
 * Words are passed as given: "--flag=value" stays one word, "" stays "". */
static void runtime_argv_add_all(GPtrArray *argv, const char *const *words)
{
        if (!words)
                return;
        for (size_t i = 0; words[i]; i++)
                runtime_argv_add(argv, words[i]);
}

char **runtime_argv_build(const RuntimeCall *call)
{
        GPtrArray *argv;
        bool is_exec;

        g_return_val_if_fail(call != NULL, g_new0(char *, 1));

        is_exec = call->action == RUNTIME_ACTION_EXEC;
        argv = g_ptr_array_new();

        runtime_argv_add(argv, call->runtime_path);

        if (call->action == RUNTIME_ACTION_KILL) {
                runtime_argv_add_all(argv, call->runtime_args);
                runtime_argv_add(argv, "kill");
                if (call->kill_all)
                        runtime_argv_add(argv, "--all");
                runtime_argv_add(argv, call->cid);
                g_ptr_array_add(argv, g_strdup_printf("%d", call->signal));
                g_ptr_array_add(argv, NULL);
                return (char **) g_ptr_array_free(argv, FALSE);
        }

        if (call->action == RUNTIME_ACTION_START) {
                /* ctrmon's --start (conmon never starts containers): global
                 * args only; the subcommand options belong to create. */
                runtime_argv_add_all(argv, call->runtime_args);
                runtime_argv_add(argv, "start");
                runtime_argv_add(argv, call->cid);
                g_ptr_array_add(argv, NULL);
                return (char **) g_ptr_array_free(argv, FALSE);
        }

        /* conmon puts --systemd-cgroup before the caller's global runtime
         * args, and never for exec: runc exec has no such flag. */
        if (!is_exec && call->systemd_cgroup)
                runtime_argv_add(argv, "--systemd-cgroup");

        runtime_argv_add_all(argv, call->runtime_args);

        switch (call->action) {
        case RUNTIME_ACTION_CREATE:
        case RUNTIME_ACTION_RESTORE:
                runtime_argv_add(argv, call->action == RUNTIME_ACTION_CREATE
                                               ? "create"
                                               : "restore");
                runtime_argv_add(argv, "--bundle");
                runtime_argv_add(argv, call->bundle);
                runtime_argv_add(argv, "--pid-file");
                runtime_argv_add(argv, call->pid_file);
                if (call->no_pivot)
                        runtime_argv_add(argv, "--no-pivot");
                if (call->no_new_keyring)
                        runtime_argv_add(argv, "--no-new-keyring");
                if (call->action == RUNTIME_ACTION_RESTORE) {
                        /* The checkpoint's work directory is the bundle,
                         * as in conmon. */
                        runtime_argv_add(argv, "--detach");
                        runtime_argv_add(argv, "--image-path");
                        runtime_argv_add(argv, call->restore_path);
                        runtime_argv_add(argv, "--work-path");
                        runtime_argv_add(argv, call->bundle);
                }
                break;
        case RUNTIME_ACTION_EXEC:
                runtime_argv_add(argv, "exec");
                runtime_argv_add(argv, "--pid-file");
                runtime_argv_add(argv, call->pid_file);
                runtime_argv_add(argv, "--process");
                runtime_argv_add(argv, call->exec_process_spec);
                /* Since conmon 2.1.11 exec never gets --tty here, even with
                 * -t: the process spec carries the terminal setting. */
                runtime_argv_add(argv, "--detach");
                break;
        case RUNTIME_ACTION_START:
        case RUNTIME_ACTION_KILL:
                break; /* handled above */
        }

        runtime_argv_add_all(argv, call->runtime_opts);

        if (call->console_socket) {
                runtime_argv_add(argv, "--console-socket");
                runtime_argv_add(argv, call->console_socket);
        }

        /* The cid is a positional word after options: one starting with '-'
         * would be an option to runc and crun. The monitor refuses such ids
         * at option parsing (options.c, issue 14), so none gets here; no
         * "--" is added, since conmon's vectors do not have one. */
        runtime_argv_add(argv, call->cid);

        g_ptr_array_add(argv, NULL);
        return (char **) g_ptr_array_free(argv, FALSE);
}
