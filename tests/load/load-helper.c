/* load-helper: workload writer and k8s-file checker for tests/load.
 *
 * Compiled at test time (gcc -static -O2) into a temp dir that is
 * bind-mounted into the busybox containers; never committed as a binary.
 * The stream is a pure function of the offset, so the writer, this checker
 * and the Python attach readers agree on every byte without sharing state.
 *
 *   gen N [START DONE END RATE]
 *                     wait for file START, then write N bytes to stdout in
 *                     64 KiB write()s at RATE bytes/s (0: as fast as the
 *                     pipe takes them), close stdout/stderr, create DONE,
 *                     wait for file END (so the monitor outlives the
 *                     writing and can be measured), exit 0. Line k
 *                     (from 0) is "%09u" k, 90 filler bytes and '\n'
 *                     (100 bytes; the last line may be cut short), at
 *                     nice 19
 *   verify-k8s LOG N  parse a k8s-file log; every record must be
 *                     "<RFC3339Nano> stdout <F|P> <payload>\n" and the
 *                     reassembled stdout must equal `gen N` exactly.
 *                     Prints "ok RECORDS" or the first mismatch; exit 0/1.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE 100
#define TS_LEN 35 /* 2006-01-02T15:04:05.000000000+00:00 */

static void fill(char *buf, uint64_t off, size_t len)
{
        static const char filler[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                     "abcdefghijklmnopqrstuvwxyz0123";
        char line[LINE + 16];

        while (len > 0) {
                uint64_t k = off / LINE;
                size_t at = off % LINE, n = LINE - at;

                snprintf(line, sizeof(line), "%09u", (unsigned) k);
                memcpy(line + 9, filler, LINE - 10);
                line[LINE - 1] = '\n';
                if (n > len)
                        n = len;
                memcpy(buf, line + at, n);
                buf += n;
                off += n;
                len -= n;
        }
}

static void wait_file(const char *path)
{
        struct timespec ts = { .tv_nsec = 10 * 1000 * 1000 };

        while (access(path, F_OK) < 0)
                nanosleep(&ts, NULL);
}

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int cmd_gen(uint64_t total, char **gate)
{
        static char buf[65536];
        uint64_t off = 0;
        double rate = gate ? strtod(gate[3], NULL) : 0, t0;

        /* Lowest CPU priority: 100 writers at full speed on two cores would
         * otherwise starve the one process reading every attach client. */
        if (setpriority(PRIO_PROCESS, 0, 19) < 0)
                perror("load-helper gen: setpriority");

        if (gate)
                wait_file(gate[0]);
        t0 = now_s();
        while (off < total) {
                size_t n = total - off < sizeof(buf) ? total - off : sizeof(buf);
                size_t done = 0;

                fill(buf, off, n);
                while (done < n) {
                        ssize_t w = write(1, buf + done, n - done);
                        if (w < 0) {
                                perror("load-helper gen: write");
                                return 1;
                        }
                        done += (size_t) w;
                }
                off += n;
                if (rate > 0) {
                        double ahead = t0 + (double) off / rate - now_s();
                        if (ahead > 0) {
                                struct timespec ts = { .tv_sec = (time_t) ahead,
                                                       .tv_nsec = (long) ((ahead - (time_t) ahead) * 1e9) };
                                nanosleep(&ts, NULL);
                        }
                }
        }
        if (gate) {
                int fd;

                close(1);
                close(2);
                fd = open(gate[1], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                if (fd < 0)
                        return 1;
                close(fd);
                wait_file(gate[2]);
        }
        return 0;
}

static int valid_ts(const char *p)
{
        static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddddd+dd:dd";

        for (int i = 0; i < TS_LEN; i++) {
                char c = p[i];
                if (shape[i] == 'd' ? (c < '0' || c > '9')
                                    : shape[i] == '+' ? (c != '+' && c != '-') : c != shape[i])
                        return 0;
        }
        return 1;
}

static int cmd_verify_k8s(const char *path, uint64_t total)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        char *want, *log, *p, *end;
        uint64_t off = 0, records = 0;

        if (fd < 0 || fstat(fd, &st) < 0) {
                perror(path);
                return 1;
        }
        want = malloc(total ? total : 1);
        if (!want)
                return 1;
        fill(want, 0, total);
        if (st.st_size == 0) {
                printf("%s: empty log\n", path);
                return total == 0 ? 0 : 1;
        }
        log = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (log == MAP_FAILED) {
                perror("mmap");
                return 1;
        }
        p = log;
        end = log + st.st_size;
        while (p < end) {
                char *nl = memchr(p, '\n', end - p);
                size_t head = TS_LEN + sizeof(" stdout F ") - 1, plen;
                int full;

                if (!nl || (size_t) (nl - p) < head || !valid_ts(p) ||
                    memcmp(p + TS_LEN, " stdout ", 8) || (p[TS_LEN + 8] != 'F' && p[TS_LEN + 8] != 'P') ||
                    p[TS_LEN + 9] != ' ') {
                        printf("malformed record %llu at log byte %zu\n", (unsigned long long) records,
                               (size_t) (p - log));
                        return 1;
                }
                full = p[TS_LEN + 8] == 'F';
                plen = (size_t) (nl - p) - head + (full ? 1 : 0);
                if (off + plen > total || memcmp(p + head, want + off, plen)) {
                        printf("stream mismatch in record %llu at stream offset %llu\n",
                               (unsigned long long) records, (unsigned long long) off);
                        return 1;
                }
                off += plen;
                records++;
                p = nl + 1;
        }
        if (off != total) {
                printf("log has %llu of %llu bytes\n", (unsigned long long) off, (unsigned long long) total);
                return 1;
        }
        printf("ok %llu\n", (unsigned long long) records);
        return 0;
}

int main(int argc, char **argv)
{
        if ((argc == 3 || argc == 7) && !strcmp(argv[1], "gen"))
                return cmd_gen(strtoull(argv[2], NULL, 10), argc == 7 ? argv + 3 : NULL);
        if (argc == 4 && !strcmp(argv[1], "verify-k8s"))
                return cmd_verify_k8s(argv[2], strtoull(argv[3], NULL, 10));
        fprintf(stderr, "usage: load-helper gen N [START DONE END RATE] | verify-k8s LOG N\n");
        return 2;
}
