/* ctrbench-helper: the benchmark's workload generator and checkers.
 *
 * Compiled at bench time (gcc -static -O2) into a temp dir and bind-mounted
 * into the busybox containers, so the container side needs nothing from the
 * rootfs. The byte streams are pure functions of the offset, so the writer,
 * the k8s-file verifier and the attach client agree on every byte without
 * sharing state. Never committed as a binary.
 *
 *   gen MODE N [STAMP]      write N bytes of MODE to stdout; STAMP gets
 *                           "start_ns end_ns\n" (CLOCK_REALTIME) at the end
 *   stampexit FILE [FIFO]   (after reading a byte from FIFO, if given) write
 *                           CLOCK_REALTIME ns to FILE, then exit 0
 *   exitfloor N             fork N children that stamp CLOCK_MONOTONIC in
 *                           shared memory and _exit; print the median, p10
 *                           and p90 (us) of stamp -> the parent's waitid()
 *                           wake-up: what any process's exit costs here
 *   verify-k8s LOG MODE N   parse a k8s-file log, reassemble stdout, compare
 *   attach DIR MODE N       connect to DIR/attach, print "ready", receive
 *                           until EOF, compare the stdout stream
 *
 * MODE: lines  100-byte lines "%09u" + filler + '\n', written 64 KiB at once
 *       small  the same bytes, one write() per line
 *       nonl   no newline at all: 64-byte blocks "%016x" + 48 filler bytes
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE 100
#define BLOCK 64

static const char filler[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

enum mode { M_LINES, M_SMALL, M_NONL };

static int parse_mode(const char *s)
{
        if (!strcmp(s, "lines"))
                return M_LINES;
        if (!strcmp(s, "small"))
                return M_SMALL;
        if (!strcmp(s, "nonl"))
                return M_NONL;
        fprintf(stderr, "helper: unknown mode %s\n", s);
        exit(2);
}

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One unit (line or block) of the stream, number k, into out. */
static size_t unit_size(int mode)
{
        return mode == M_NONL ? BLOCK : LINE;
}

static void make_unit(int mode, uint64_t k, char *out)
{
        if (mode == M_NONL) {
                static const char hex[] = "0123456789abcdef";
                for (int i = 15; i >= 0; i--, k >>= 4)
                        out[i] = hex[k & 15];
                memcpy(out + 16, filler + 3, BLOCK - 16);
        } else {
                for (int i = 8; i >= 0; i--, k /= 10)
                        out[i] = (char)('0' + k % 10);
                memcpy(out + 9, filler, LINE - 10);
                out[LINE - 1] = '\n';
        }
}

/* Incremental expected-stream checker. */
struct expect {
        int mode;
        uint64_t off;
        char unit[LINE];
        uint64_t unit_no;       /* number of the unit held in `unit` */
};

static void expect_init(struct expect *e, int mode)
{
        e->mode = mode;
        e->off = 0;
        e->unit_no = 0;
        make_unit(mode, 0, e->unit);
}

/* Compare len bytes at the current offset; returns -1 on mismatch. */
static int expect_check(struct expect *e, const char *p, size_t len)
{
        size_t us = unit_size(e->mode);
        while (len > 0) {
                uint64_t k = e->off / us;
                size_t col = (size_t)(e->off % us);
                if (k != e->unit_no) {
                        make_unit(e->mode, k, e->unit);
                        e->unit_no = k;
                }
                size_t n = us - col < len ? us - col : len;
                if (memcmp(p, e->unit + col, n) != 0) {
                        for (size_t i = 0; i < n; i++)
                                if (p[i] != e->unit[col + i]) {
                                        e->off += i;
                                        break;
                                }
                        return -1;
                }
                e->off += n;
                p += n;
                len -= n;
        }
        return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static int cmd_gen(int mode, uint64_t total, const char *stamp)
{
        static char buf[65536];
        size_t us = unit_size(mode);
        size_t per = mode == M_SMALL ? 1 : sizeof(buf) / us;
        uint64_t k = 0, done = 0;
        uint64_t t0 = now_ns();

        while (done < total) {
                size_t n = 0;
                for (size_t i = 0; i < per && done + n < total; i++, k++) {
                        make_unit(mode, k, buf + n);
                        n += us;
                }
                if (done + n > total)
                        n = (size_t)(total - done);
                if (write_all(1, buf, n) < 0) {
                        perror("helper gen: write");
                        return 1;
                }
                done += n;
        }
        uint64_t t1 = now_ns();
        if (stamp) {
                char s[64];
                int fd = open(stamp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                int l = snprintf(s, sizeof(s), "%llu %llu\n",
                                 (unsigned long long)t0, (unsigned long long)t1);
                if (fd < 0 || write_all(fd, s, (size_t)l) < 0)
                        return 1;
                close(fd);
        }
        return 0;
}

static int cmd_stampexit(const char *path, const char *trigger)
{
        char s[32];
        if (trigger) {
                /* Wait until the caller says go: the exit is then measured
                 * alone, not overlapping `runc start`'s own exit. */
                int t = open(trigger, O_RDONLY);
                char c;
                if (t < 0 || read(t, &c, 1) != 1)
                        return 1;
                close(t);
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
                return 1;
        int l = snprintf(s, sizeof(s), "%llu\n", (unsigned long long)now_ns());
        if (write_all(fd, s, (size_t)l) < 0)
                return 1;
        close(fd);
        _exit(0);
}

static uint64_t mono_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static int cmd_exitfloor(int n)
{
        if (n < 10)
                return 2;
        volatile uint64_t *stamp = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        uint64_t *d = calloc((size_t)n, sizeof(*d));
        if (stamp == MAP_FAILED || !d)
                return 1;
        for (int i = 0; i < n; i++) {
                pid_t p = fork();
                if (p < 0)
                        return 1;
                if (p == 0) {
                        /* Let the parent block in waitid() first. */
                        usleep(2000);
                        *stamp = mono_ns();
                        _exit(0);
                }
                siginfo_t si;
                if (waitid(P_PID, (id_t)p, &si, WEXITED) < 0)
                        return 1;
                d[i] = mono_ns() - *stamp;
                usleep(3000);
        }
        qsort(d, (size_t)n, sizeof(*d), cmp_u64);
        printf("%.1f %.1f %.1f\n", d[n / 2] / 1e3, d[n / 10] / 1e3,
               d[n * 9 / 10] / 1e3);
        free(d);
        return 0;
}

static int is_digits(const char *p, int n)
{
        for (int i = 0; i < n; i++)
                if (p[i] < '0' || p[i] > '9')
                        return 0;
        return 1;
}

/* "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM" = 35 bytes */
static int valid_ts(const char *p)
{
        return is_digits(p, 4) && p[4] == '-' && is_digits(p + 5, 2) &&
               p[7] == '-' && is_digits(p + 8, 2) && p[10] == 'T' &&
               is_digits(p + 11, 2) && p[13] == ':' && is_digits(p + 14, 2) &&
               p[16] == ':' && is_digits(p + 17, 2) && p[19] == '.' &&
               is_digits(p + 20, 9) && (p[29] == '+' || p[29] == '-') &&
               is_digits(p + 30, 2) && p[32] == ':' && is_digits(p + 33, 2);
}

static int cmd_verify_k8s(const char *path, int mode, uint64_t total)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
                printf("FAIL cannot open %s: %s\n", path, strerror(errno));
                return 1;
        }
        size_t size = (size_t)st.st_size;
        const char *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : "";
        if (map == MAP_FAILED) {
                printf("FAIL mmap: %s\n", strerror(errno));
                return 1;
        }
        madvise((void *)map, size, MADV_SEQUENTIAL);
        struct expect e;
        expect_init(&e, mode);
        uint64_t nf = 0, np = 0, nerr = 0;
        size_t pos = 0;
        while (pos < size) {
                const char *r = map + pos;
                size_t left = size - pos;
                if (left < 45 || !valid_ts(r) || r[35] != ' ') {
                        printf("FAIL bad timestamp at log byte %zu\n", pos);
                        return 1;
                }
                int is_err = 0;
                if (!memcmp(r + 36, "stdout ", 7))
                        is_err = 0;
                else if (!memcmp(r + 36, "stderr ", 7))
                        is_err = 1;
                else {
                        printf("FAIL bad stream at log byte %zu\n", pos);
                        return 1;
                }
                char tag = r[43];
                if ((tag != 'F' && tag != 'P') || r[44] != ' ') {
                        printf("FAIL bad tag at log byte %zu\n", pos);
                        return 1;
                }
                const char *body = r + 45;
                const char *nl = memchr(body, '\n', left - 45);
                if (!nl) {
                        printf("FAIL unterminated record at log byte %zu\n", pos);
                        return 1;
                }
                size_t blen = (size_t)(nl - body) + (tag == 'F' ? 1 : 0);
                if (is_err) {
                        nerr++;
                } else if (e.off + blen > total ||
                           expect_check(&e, body, blen) < 0) {
                        printf("FAIL stream mismatch at stream byte %llu "
                               "(log byte %zu)\n",
                               (unsigned long long)e.off, pos);
                        return 1;
                }
                tag == 'F' ? nf++ : np++;
                pos = (size_t)(nl - map) + 1;
        }
        if (e.off != total || nerr) {
                printf("FAIL got %llu of %llu bytes, %llu stderr records\n",
                       (unsigned long long)e.off, (unsigned long long)total,
                       (unsigned long long)nerr);
                return 1;
        }
        printf("ok bytes=%llu F=%llu P=%llu logsize=%zu\n",
               (unsigned long long)e.off, (unsigned long long)nf,
               (unsigned long long)np, size);
        return 0;
}

static int cmd_attach(const char *dir, int mode, uint64_t total)
{
        static char buf[65536];
        int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/attach", dfd);
        if (dfd < 0 || s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                printf("FAIL connect %s/attach: %s\n", dir, strerror(errno));
                return 1;
        }
        printf("ready\n");
        fflush(stdout);
        struct expect e;
        expect_init(&e, mode);
        uint64_t recs = 0, bad = 0;
        size_t maxrec = 0;
        for (;;) {
                ssize_t n = recv(s, buf, sizeof(buf), 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        printf("FAIL recv: %s\n", strerror(errno));
                        return 1;
                }
                if (n == 0)
                        break;
                recs++;
                if ((size_t)n - 1 > maxrec)
                        maxrec = (size_t)n - 1;
                if (buf[0] != 2) {
                        bad++;
                        continue;
                }
                if (e.off + (uint64_t)(n - 1) > total ||
                    expect_check(&e, buf + 1, (size_t)n - 1) < 0) {
                        printf("FAIL stream mismatch at stream byte %llu\n",
                               (unsigned long long)e.off);
                        return 1;
                }
        }
        if (e.off != total || bad || maxrec > 8192) {
                printf("FAIL got %llu of %llu bytes, %llu non-stdout records, "
                       "largest record %zu\n", (unsigned long long)e.off,
                       (unsigned long long)total, (unsigned long long)bad, maxrec);
                return 1;
        }
        printf("ok bytes=%llu records=%llu\n", (unsigned long long)e.off,
               (unsigned long long)recs);
        return 0;
}

int main(int argc, char **argv)
{
        if (argc >= 4 && !strcmp(argv[1], "gen"))
                return cmd_gen(parse_mode(argv[2]), strtoull(argv[3], NULL, 10),
                               argc >= 5 ? argv[4] : NULL);
        if ((argc == 3 || argc == 4) && !strcmp(argv[1], "stampexit"))
                return cmd_stampexit(argv[2], argc == 4 ? argv[3] : NULL);
        if (argc == 3 && !strcmp(argv[1], "exitfloor"))
                return cmd_exitfloor(atoi(argv[2]));
        if (argc == 5 && !strcmp(argv[1], "verify-k8s"))
                return cmd_verify_k8s(argv[2], parse_mode(argv[3]),
                                      strtoull(argv[4], NULL, 10));
        if (argc == 5 && !strcmp(argv[1], "attach"))
                return cmd_attach(argv[2], parse_mode(argv[3]),
                                  strtoull(argv[4], NULL, 10));
        fprintf(stderr, "usage: see the comment at the top of helper.c\n");
        return 2;
}
