/* libFuzzer target for the small text parsers of host files: /proc/PID/status
 * and /proc/PID/stat (control-processes.h), /proc/PID/cgroup
 * (cgroup-util.h), memory.events (oom.h), the runtime's pid file
 * (runtime-shim.h) and byte sizes ("64k", options.h). Each is checked
 * against an independent reading of its documented format.
 *
 * Input: byte 0 picks the parser (% 7) and, for the cgroup one, the
 * controller; the rest is the file's text (NUL-terminated copies for the
 * parsers that take C strings).
 *
 * The documented contracts this holds them to: a pid is > 0 and fits
 * pid_t (NSpid, the pid file), a ppid is >= 0 and fits, a uid fits uid_t,
 * and a number that does not fit is refused, not wrapped; a size is
 * refused with -ERANGE only if it does not fit in 64 bits. */
#include "cgroup-util.h"
#include "control-processes.h"
#include "oom.h"
#include "options.h"
#include "runtime-shim.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[] = "/tmp/ctrmon-fuzz-proc.XXXXXX";
static char *fuzz_pidfile;

static void fuzz_cleanup(void)
{
        unlink(fuzz_pidfile);
        rmdir(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void) argc;
        (void) argv;
        if (!mkdtemp(fuzz_dir))
                abort();
        fuzz_pidfile = g_build_filename(fuzz_dir, "pidfile", NULL);
        atexit(fuzz_cleanup);
        return 0;
}

/* Decimal digits at p as an unsigned value; false if more than 2^64 - 1. */
static bool fuzz_decimal(const char *p, size_t n, uint64_t *ret)
{
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned d = (unsigned) (p[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret = v;
        return true;
}

static size_t fuzz_digits(const char *p)
{
        size_t n = 0;
        while (p[n] >= '0' && p[n] <= '9')
                n++;
        return n;
}

/* "Key:" at the start of a line: what follows it, or NULL. */
static const char *fuzz_status_field(const char *s, const char *key)
{
        size_t k = strlen(key);
        for (const char *line = s; line;) {
                if (strncmp(line, key, k) == 0 && line[k] == ':')
                        return line + k + 1;
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return NULL;
}

static void fuzz_nspid(const char *s)
{
        pid_t pid = -77;
        int r = control_proc_parse_nspid(s, &pid);
        /* The oracle: the last of the blank-separated numbers. */
        const char *p = fuzz_status_field(s, "NSpid");
        bool ok = false;
        uint64_t last = 0;
        bool last_fits = false;
        while (p) {
                while (*p == ' ' || *p == '\t')
                        p++;
                size_t n = fuzz_digits(p);
                if (n == 0)
                        break;
                last_fits = fuzz_decimal(p, n, &last);
                ok = true;
                p += n;
        }
        bool want = ok && last_fits && last > 0 && last <= INT_MAX;
        if (want != (r == 0))
                abort();
        if (r == 0 ? (uint64_t) pid != last : (r != -EINVAL || pid != -77))
                abort();
}

static void fuzz_uid(const char *s)
{
        uid_t uid = 4242;
        int r = control_proc_parse_uid(s, &uid);
        const char *p = fuzz_status_field(s, "Uid");
        uint64_t v = 0;
        bool want = false;
        if (p) {
                while (*p == ' ' || *p == '\t')
                        p++;
                size_t n = fuzz_digits(p);
                want = n > 0 && fuzz_decimal(p, n, &v) && v <= UINT32_MAX;
        }
        if (want != (r == 0))
                abort();
        if (r == 0 ? uid != (uid_t) v : (r != -EINVAL || uid != 4242))
                abort();
}

static void fuzz_stat(const char *s)
{
        char state = '?';
        pid_t ppid = -77;
        int r = control_proc_parse_stat(s, &state, &ppid);
        /* "pid (comm) S ppid ...": after the last ')', a space, the state,
         * a space and a decimal ppid. */
        const char *rp = strrchr(s, ')');
        bool want = false;
        uint64_t v = 0;
        if (rp && rp[1] == ' ' && rp[2] && rp[3] == ' ') {
                size_t n = fuzz_digits(rp + 4);
                want = n > 0 && fuzz_decimal(rp + 4, n, &v) && v <= INT_MAX;
        }
        if (want != (r == 0))
                abort();
        if (r == 0 ? (state != rp[2] || (uint64_t) ppid != v) : (r != -EINVAL || state != '?' || ppid != -77))
                abort();
}

static void fuzz_cgroup(const char *s, unsigned which)
{
        static const char *const controllers[] = { NULL, "memory", "pids", "cpuacct", "name=systemd" };
        const char *controller = controllers[which % G_N_ELEMENTS(controllers)];
        char *got = cgroup_path_from_proc(s, controller);
        /* The oracle: the first "ID:CONTROLLERS:PATH" line that matches. */
        char *want = NULL;
        for (const char *line = s; line && !want;) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t) (nl - line) : strlen(line);
                const char *c1 = memchr(line, ':', len);
                const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t) (c1 + 1 - line)) : NULL;
                if (c2) {
                        bool match = false;
                        if (!controller) {
                                match = len >= 3 && memcmp(line, "0::", 3) == 0;
                        } else {
                                /* Is `controller` one of the ','-separated names? */
                                const char *p = c1 + 1;
                                for (;;) {
                                        const char *comma = memchr(p, ',', (size_t) (c2 - p));
                                        const char *e = comma ? comma : c2;
                                        if ((size_t) (e - p) == strlen(controller) &&
                                            memcmp(p, controller, (size_t) (e - p)) == 0)
                                                match = true;
                                        if (!comma)
                                                break;
                                        p = comma + 1;
                                }
                        }
                        if (match)
                                want = g_strndup(c2 + 1, len - (size_t) (c2 + 1 - line));
                }
                line = nl ? nl + 1 : NULL;
        }
        if ((got == NULL) != (want == NULL) || (got && strcmp(got, want) != 0))
                abort();
        g_free(got);
        g_free(want);
}

static void fuzz_memory_events(const char *s)
{
        guint64 oom = 1, kill = 1;
        oom_parse_memory_events(s, &oom, &kill);
        guint64 want_oom = 0, want_kill = 0;
        for (const char *line = s; line;) {
                const char *nl = strchr(line, '\n');
                /* The value ends with its line (strtoull would skip a '\n'). */
                g_autofree char *l = nl ? g_strndup(line, (gsize) (nl - line)) : g_strdup(line);
                if (strncmp(l, "oom ", 4) == 0)
                        want_oom = g_ascii_strtoull(l + 4, NULL, 10);
                else if (strncmp(l, "oom_kill ", 9) == 0)
                        want_kill = g_ascii_strtoull(l + 9, NULL, 10);
                line = nl ? nl + 1 : NULL;
        }
        if (oom != want_oom || kill != want_kill)
                abort();
}

static void fuzz_pid_file(const uint8_t *d, size_t n)
{
        int fd = open(fuzz_pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || (n && write(fd, d, n) != (ssize_t) n))
                abort();
        close(fd);
        pid_t pid = -77;
        GError *error = NULL;
        int r = runtime_read_pidfile(fuzz_pidfile, &pid, &error);
        /* Positive decimal, then only whitespace. */
        size_t i = 0;
        while (i < n && d[i] >= '0' && d[i] <= '9')
                i++;
        uint64_t v = 0;
        bool want = i > 0 && fuzz_decimal((const char *) d, i, &v) && v > 0 && v <= INT_MAX;
        for (size_t j = i; want && j < n; j++)
                want = g_ascii_isspace(d[j]);
        if (want != (r == 0))
                abort();
        if (r == 0) {
                if (error || (uint64_t) pid != v)
                        abort();
        } else {
                if (r != -EINVAL || !error || !error->message || pid != -77)
                        abort();
                g_error_free(error);
        }
}

static void fuzz_size(const char *s)
{
        uint64_t got = 4242;
        int r = options_parse_size(s, &got);
        size_t n = fuzz_digits(s);
        uint64_t unit = 1, v = 0;
        char suffix = g_ascii_tolower(s[n]);
        bool shape = n > 0 && (s[n] == '\0' || ((suffix == 'k' || suffix == 'm' || suffix == 'g') && s[n + 1] == '\0'));
        if (suffix == 'k')
                unit = 1024;
        else if (suffix == 'm')
                unit = 1024 * 1024;
        else if (suffix == 'g')
                unit = 1024 * 1024 * 1024;
        bool fits = shape && fuzz_decimal(s, n, &v) && v <= UINT64_MAX / unit;
        if (!shape) {
                /* An over-long number may be refused as too big before its
                 * bad suffix is seen: either refusal is fine. */
                if ((r != -EINVAL && r != -ERANGE) || (n == 0 && r != -EINVAL) || got != 4242)
                        abort();
                return;
        }
        if (!fits) {
                if (r != -ERANGE || got != 4242)
                        abort();
                return;
        }
        if (r != 0 || got != v * unit)
                abort();
        /* Round trip through the canonical spelling. */
        char again[32];
        snprintf(again, sizeof again, "%" PRIu64, got);
        uint64_t back = 0;
        if (options_parse_size(again, &back) != 0 || back != got)
                abort();
        if (options_parse_size(s, NULL) != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;
        const uint8_t *d = data + 1;
        size_t n = size - 1;
        g_autofree char *s = g_strndup((const char *) d, n);
        switch (data[0] % 7) {
        case 0:
                fuzz_nspid(s);
                break;
        case 1:
                fuzz_uid(s);
                break;
        case 2:
                fuzz_stat(s);
                break;
        case 3:
                fuzz_cgroup(s, data[0] / 7);
                break;
        case 4:
                fuzz_memory_events(s);
                break;
        case 5:
                fuzz_pid_file(d, n);
                break;
        case 6:
                fuzz_size(s);
                break;
        }
        return 0;
}
