/* load-helper: workload writer and k8s-file checker for tests/load.
 *
 * Compiled at test time (gcc -static -O2) into a temp dir that is
 * bind-mounted into the busybox containers; never committed as a binary.
 * The stream is a pure function of the offset, so the writer, this checker
 * and the Python attach readers agree on every byte without sharing state.
 *
 *   gen N             write N bytes to stdout in 64 KiB write()s: line k
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

static int cmd_gen(uint64_t total)
{
        static char buf[65536];
        uint64_t off = 0;

        /* Lowest CPU priority: 100 writers at full speed on two cores would
         * otherwise starve the one process reading every attach client. */
        if (setpriority(PRIO_PROCESS, 0, 19) < 0)
                perror("load-helper gen: setpriority");

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
        if (argc == 3 && !strcmp(argv[1], "gen"))
                return cmd_gen(strtoull(argv[2], NULL, 10));
        if (argc == 4 && !strcmp(argv[1], "verify-k8s"))
                return cmd_verify_k8s(argv[2], strtoull(argv[3], NULL, 10));
        fprintf(stderr, "usage: load-helper gen N | verify-k8s LOG N\n");
        return 2;
}
