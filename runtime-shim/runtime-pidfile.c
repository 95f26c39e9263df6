/* runtime-pidfile: reads the container pid the runtime wrote with
 * --pid-file. A read failure keeps GLib's own message word for word, because
 * conmon sends exactly that text on the sync pipe (spec §3.3); it must not
 * wait for the file or interpret the pid beyond "positive decimal". */
#include <errno.h>
#include <limits.h>

#include <ctrmon/error.h>

#include "runtime-shim.h"

/* GLib only keeps its own GFileError code; map it back to an errno so that
 * callers can tell ENOENT (runtime never wrote it) from the rest. */
static int runtime_pidfile_errno_from_file_error(const GError *gerr)
{
        if (gerr->domain != G_FILE_ERROR)
                return EIO;

        switch ((GFileError) gerr->code) {
        case G_FILE_ERROR_EXIST:
                return EEXIST;
        case G_FILE_ERROR_ISDIR:
                return EISDIR;
        case G_FILE_ERROR_ACCES:
                return EACCES;
        case G_FILE_ERROR_NAMETOOLONG:
                return ENAMETOOLONG;
        case G_FILE_ERROR_NOENT:
                return ENOENT;
        case G_FILE_ERROR_NOTDIR:
                return ENOTDIR;
        case G_FILE_ERROR_NXIO:
                return ENXIO;
        case G_FILE_ERROR_NODEV:
                return ENODEV;
        case G_FILE_ERROR_ROFS:
                return EROFS;
        case G_FILE_ERROR_TXTBSY:
                return ETXTBSY;
        case G_FILE_ERROR_FAULT:
                return EFAULT;
        case G_FILE_ERROR_LOOP:
                return ELOOP;
        case G_FILE_ERROR_NOSPC:
                return ENOSPC;
        case G_FILE_ERROR_NOMEM:
                return ENOMEM;
        case G_FILE_ERROR_MFILE:
                return EMFILE;
        case G_FILE_ERROR_NFILE:
                return ENFILE;
        case G_FILE_ERROR_BADF:
                return EBADF;
        case G_FILE_ERROR_INVAL:
                return EINVAL;
        case G_FILE_ERROR_PIPE:
                return EPIPE;
        case G_FILE_ERROR_AGAIN:
                return EAGAIN;
        case G_FILE_ERROR_INTR:
                return EINTR;
        case G_FILE_ERROR_IO:
                return EIO;
        case G_FILE_ERROR_PERM:
                return EPERM;
        case G_FILE_ERROR_NOSYS:
                return ENOSYS;
        case G_FILE_ERROR_FAILED:
        default:
                return EIO;
        }
}

/* Positive decimal, optionally followed by whitespace (runc writes none,
 * other runtimes and people add a newline). Nothing before the digits. */
static bool runtime_pidfile_parse(const char *buf, size_t len, pid_t *ret_pid)
{
        long long v = 0;
        size_t i = 0;

        for (; i < len && g_ascii_isdigit(buf[i]); i++) {
                v = v * 10 + (buf[i] - '0');
                if (v > INT_MAX)
                        return false;
        }
        if (i == 0 || v <= 0)
                return false;
        for (; i < len; i++) {
                if (!g_ascii_isspace(buf[i]))
                        return false;
        }
        *ret_pid = (pid_t) v;
        return true;
}

int runtime_read_pidfile(const char *path, pid_t *ret_pid, GError **error)
{
        g_autoptr(GError) gerr = NULL;
        g_autofree char *contents = NULL;
        g_autofree char *shown = NULL;
        g_autofree char *escaped = NULL;
        gsize len = 0;
        pid_t pid;

        if (!path || !ret_pid)
                return ctrmon_set_error(error, EINVAL, "No pid file to read");

        if (!g_file_get_contents(path, &contents, &len, &gerr)) {
                int e = runtime_pidfile_errno_from_file_error(gerr);
                g_set_error_literal(error, CTRMON_ERROR, e, gerr->message);
                return -e;
        }

        if (runtime_pidfile_parse(contents, len, &pid)) {
                *ret_pid = pid;
                return 0;
        }

        /* Show at most a line's worth, escaped: the file may hold anything. */
        shown = g_strndup(contents, MIN(len, (gsize) 32));
        escaped = g_strescape(shown, NULL);
        return ctrmon_set_error(error, EINVAL, "Invalid pid file “%s”: “%s” is not a positive pid",
                                path, escaped);
}
