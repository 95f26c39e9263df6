/* libFuzzer target for the k8s-file encoder (log-k8s-file.h): chunks from
 * the input go through a k8s-file sink; the file is read back and parsed.
 * Every record must be "<35-byte TS> (stdout|stderr) (F|P) <text>\n", and
 * when no limit kicked in (nothing dropped, no truncation) the record texts
 * (without the '\n' a P record adds) must give back the input bytes, each
 * under the stream its chunk was written to.
 * Input: byte 0 limit flags, 1-4 size_max, 5-8 global_size_max, 9-16
 * tv_sec, then chunks of [2-byte header: bit 15 stderr, 0-14 length][bytes].
 * The log lives in a private temp dir: truncation renames "<path>.tmp". */
#include "log-k8s-file.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_HEADER_LEN 17
#define TS_LEN 35
#define REC_HEADER_LEN 45

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[] = "/tmp/ctrmon-fuzz-k8s.XXXXXX";
static char *fuzz_path;

static void fuzz_cleanup(void)
{
        g_autofree char *tmp = g_strdup_printf("%s.tmp", fuzz_path);
        unlink(fuzz_path);
        unlink(tmp);
        rmdir(fuzz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void) argc;
        (void) argv;
        if (!mkdtemp(fuzz_dir))
                abort();
        fuzz_path = g_build_filename(fuzz_dir, "ctr.log", NULL);
        atexit(fuzz_cleanup);
        return 0;
}

static uint32_t fuzz_u32(const uint8_t *p)
{
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static bool fuzz_ts_valid(const char *ts)
{
        /* YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM */
        static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddddd+dd:dd";
        for (int i = 0; i < TS_LEN; i++) {
                char c = ts[i];
                if (shape[i] == 'd') {
                        if (c < '0' || c > '9')
                                return false;
                } else if (shape[i] == '+') {
                        if (c != '+' && c != '-')
                                return false;
                } else if (c != shape[i]) {
                        return false;
                }
        }
        return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < FUZZ_HEADER_LEN)
                return 0;

        uint8_t flags = data[0];
        int64_t size_max = (flags & 1) ? (int64_t) (fuzz_u32(data + 1) % 4096) : 0;
        int64_t global_max = (flags & 2) ? (int64_t) (fuzz_u32(data + 5) % 8192) : 0;
        int64_t sec;
        memcpy(&sec, data + 9, sizeof sec);
        struct timespec now = { .tv_sec = (flags & 4) ? (time_t) sec : 1700000000 + (time_t) (sec & 0xffffff),
                                .tv_nsec = (long) (fuzz_u32(data + 1) % 1000000000u) };

        int fd = open(fuzz_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0)
                abort();
        K8sFileConfig config = {
                .path = fuzz_path,
                .fd = fd,
                .size_max = size_max,
                .global_size_max = global_max,
                .rotate = false,
                .max_files = 1,
        };
        LogSink *sink = NULL;
        GError *error = NULL;
        if (k8s_file_sink_new(&config, &sink, &error) < 0)
                abort();

        /* The expected text and, per byte, its stream. */
        GByteArray *want = g_byte_array_new();
        GByteArray *want_stream = g_byte_array_new();
        bool write_failed = false;

        const uint8_t *p = data + FUZZ_HEADER_LEN, *end = data + size;
        while (end - p >= 2) {
                uint16_t h = (uint16_t) (p[0] | p[1] << 8);
                p += 2;
                size_t len = MIN((size_t) (h & 0x7fff), (size_t) (end - p));
                CtrmonStream stream = (h & 0x8000) ? CTRMON_STREAM_STDERR : CTRMON_STREAM_STDOUT;
                if (sink->ops->write(sink, stream, &now, (const char *) p, len, &error) < 0) {
                        write_failed = true;
                        g_clear_error(&error);
                }
                g_byte_array_append(want, p, (guint) len);
                for (size_t i = 0; i < len; i++) {
                        uint8_t s = (uint8_t) stream;
                        g_byte_array_append(want_stream, &s, 1);
                }
                p += len;
                now.tv_nsec = (now.tv_nsec + 1) % 1000000000L;
        }

        K8sFileStats stats;
        k8s_file_sink_get_stats(sink, &stats);
        log_sink_free(sink);

        gchar *contents = NULL;
        gsize n = 0;
        if (!g_file_get_contents(fuzz_path, &contents, &n, NULL))
                abort();
        if ((int64_t) n != stats.current_size)
                abort();
        bool exact = !write_failed && stats.bytes_dropped == 0 && stats.bytes_written == n;

        /* Parse the records back. */
        GByteArray *got = g_byte_array_new();
        GByteArray *got_stream = g_byte_array_new();
        size_t off = 0;
        while (off < n) {
                if (n - off < REC_HEADER_LEN + 1)
                        abort();
                const char *r = contents + off;
                if (!fuzz_ts_valid(r) || r[TS_LEN] != ' ' || r[TS_LEN + 7] != ' ' || r[TS_LEN + 9] != ' ')
                        abort();
                uint8_t s;
                if (memcmp(r + TS_LEN + 1, "stdout", 6) == 0)
                        s = CTRMON_STREAM_STDOUT;
                else if (memcmp(r + TS_LEN + 1, "stderr", 6) == 0)
                        s = CTRMON_STREAM_STDERR;
                else
                        abort();
                char tag = r[TS_LEN + 8];
                if (tag != 'F' && tag != 'P')
                        abort();
                const char *text = r + REC_HEADER_LEN;
                const char *nl = memchr(text, '\n', n - off - REC_HEADER_LEN);
                if (!nl)
                        abort(); /* every record ends with a newline */
                size_t text_len = (size_t) (nl - text) + (tag == 'F' ? 1 : 0);
                g_byte_array_append(got, (const guint8 *) text, (guint) text_len);
                for (size_t i = 0; i < text_len; i++)
                        g_byte_array_append(got_stream, &s, 1);
                off += REC_HEADER_LEN + (size_t) (nl - text) + 1;
        }

        if (exact) {
                /* (memcmp on an empty GByteArray's NULL data is UB.) */
                if (got->len != want->len ||
                    (got->len && memcmp(got->data, want->data, got->len) != 0) ||
                    (got->len && memcmp(got_stream->data, want_stream->data, got->len) != 0))
                        abort();
        }

        g_free(contents);
        g_byte_array_unref(want);
        g_byte_array_unref(want_stream);
        g_byte_array_unref(got);
        g_byte_array_unref(got_stream);
        return 0;
}
