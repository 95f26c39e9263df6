/* libFuzzer target for the sync pipe (sync-pipe.h): the fd number parsed
 * from the environment, and the JSON line written to the caller.
 * - sync_pipe_fd_from_env() gets the input as the variable's value and is
 *   checked against an independent strtol() oracle. It sets FD_CLOEXEC on
 *   the fd it parsed, so only values naming fds this target opened itself
 *   (/dev/null at FUZZ_FD_BASE..+3) reach it; any other positive number is
 *   skipped rather than touching libFuzzer's own descriptors.
 * - sync_pipe_format() with the input as the message: the line must be one
 *   line, and valid JSON giving the message back when it is valid UTF-8. */
#include "sync-pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_FD_BASE 200
#define FUZZ_FD_COUNT 4
#define FUZZ_ENV "CTRMON_FUZZ_SYNCPIPE"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void) argc;
        (void) argv;
        int null = open("/dev/null", O_RDWR);
        if (null < 0)
                abort();
        for (int i = 0; i < FUZZ_FD_COUNT; i++)
                if (dup2(null, FUZZ_FD_BASE + i) < 0)
                        abort();
        close(null);
        return 0;
}

static void fuzz_env(const char *value)
{
        /* The oracle: the whole string must be a decimal long in int range. */
        char *end = NULL;
        errno = 0;
        long v = strtol(value, &end, 10);
        bool parses = errno == 0 && end != value && *end == '\0' && v >= INT_MIN && v <= INT_MAX;

        if (parses && v > 0 && (v < FUZZ_FD_BASE || v >= FUZZ_FD_BASE + FUZZ_FD_COUNT))
                return; /* an fd this target does not own: leave it alone */

        if (setenv(FUZZ_ENV, value, 1) < 0)
                abort();
        GError *error = NULL;
        int fd = -2;
        int r = sync_pipe_fd_from_env(FUZZ_ENV, &fd, &error);
        if (r == 0) {
                if (error || !parses)
                        abort();
                if (v <= 0 ? fd != -1 : fd != v)
                        abort();
                if (fd >= 0) {
                        int flags = fcntl(fd, F_GETFD);
                        if (flags < 0 || !(flags & FD_CLOEXEC))
                                abort();
                        /* Reset for the next run. */
                        fcntl(fd, F_SETFD, 0);
                }
        } else {
                if (r >= 0 || !error || parses || fd != -2)
                        abort();
                g_error_free(error);
        }
}

static void fuzz_format(const char *msg, int value)
{
        char *line = sync_pipe_format("pid", value, msg);
        size_t n = strlen(line);

        /* One line: the only raw control byte is the final newline. */
        if (n == 0 || line[n - 1] != '\n')
                abort();
        for (size_t i = 0; i + 1 < n; i++)
                if ((unsigned char) line[i] < 0x20)
                        abort();

        if (g_utf8_validate(msg, -1, NULL)) {
                json_object *obj = json_tokener_parse(line);
                json_object *pid = NULL, *m = NULL;
                if (!obj || !json_object_is_type(obj, json_type_object))
                        abort();
                if (!json_object_object_get_ex(obj, "pid", &pid) || json_object_get_int(pid) != value)
                        abort();
                bool has_message = json_object_object_get_ex(obj, "message", &m);
                if (*msg) {
                        if (!has_message || !json_object_is_type(m, json_type_string))
                                abort();
                        if ((size_t) json_object_get_string_len(m) != strlen(msg) ||
                            strcmp(json_object_get_string(m), msg) != 0)
                                abort();
                } else if (has_message) {
                        abort();
                }
                json_object_put(obj);
        }
        g_free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);
        if (!s)
                abort();
        memcpy(s, data, size);
        s[size] = '\0';

        if (!memchr(data, '\0', size))
                fuzz_env(s);

        /* sync_pipe_escape() on its own too: it stops at the first NUL. */
        char *escaped = sync_pipe_escape(s);
        if (strlen(escaped) < strnlen(s, size))
                abort();
        g_free(escaped);

        int value = 0;
        memcpy(&value, data, size < sizeof value ? size : sizeof value);
        fuzz_format(s, value);
        free(s);
        return 0;
}
