/* CRI log timestamps (log-timestamp.h): local time with a numeric offset and
 * nanoseconds, byte-exact with conmon 2.2.1 and Go's RFC3339Nano apart from
 * the fixed width. It owns no state but the once-only tzset(); the per-second
 * cache belongs to the sink that uses it. Never allocates, never exits. */

#include "log-timestamp.h"

#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>

static void log_timestamp_tzset_once(void)
{
        static gsize done = 0;

        /* conmon calls tzset() once; TZ changes after that are not seen
         * (localtime_r() does not re-read TZ). */
        if (g_once_init_enter(&done)) {
                tzset();
                g_once_init_leave(&done, 1);
        }
}

int log_timestamp_format_second(time_t sec,
                                char ret_seconds[static LOG_TIMESTAMP_SECONDS_LEN + 1],
                                char ret_offset[static LOG_TIMESTAMP_OFFSET_LEN + 1])
{
        struct tm tm;
        char seconds[32], offset[16];
        long off, abs_off;

        log_timestamp_tzset_once();

        if (!localtime_r(&sec, &tm))
                return -errno ?: -EOVERFLOW;

        /* Anything outside 4-digit years would break the fixed 43-byte
         * header that readers (podman logs, kubelet) rely on. */
        if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
                return -ERANGE;

        if (snprintf(seconds, sizeof(seconds), "%04d-%02d-%02dT%02d:%02d:%02d",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec) != LOG_TIMESTAMP_SECONDS_LEN)
                return -ERANGE;

        /* Always a numeric offset, never "Z" (spec §6.2). Historical
         * offsets with seconds (LMT) are truncated to minutes, as Go's
         * RFC3339Nano does. */
        off = tm.tm_gmtoff;
        abs_off = off < 0 ? -off : off;
        if (abs_off >= 100 * 3600)
                return -ERANGE;
        if (snprintf(offset, sizeof(offset), "%c%02ld:%02ld", off < 0 ? '-' : '+',
                     abs_off / 3600, (abs_off / 60) % 60) != LOG_TIMESTAMP_OFFSET_LEN)
                return -ERANGE;

        memcpy(ret_seconds, seconds, LOG_TIMESTAMP_SECONDS_LEN + 1);
        memcpy(ret_offset, offset, LOG_TIMESTAMP_OFFSET_LEN + 1);
        return 0;
}

static void log_timestamp_format_nsec(long nsec, char out[static 10])
{
        out[0] = '.';
        for (int i = 9; i >= 1; i--) {
                out[i] = (char) ('0' + nsec % 10);
                nsec /= 10;
        }
}

void log_timestamp_join(const char *seconds, long nsec, const char *offset, char *out)
{
        memcpy(out, seconds, LOG_TIMESTAMP_SECONDS_LEN);
        log_timestamp_format_nsec(nsec, out + LOG_TIMESTAMP_SECONDS_LEN);
        memcpy(out + LOG_TIMESTAMP_SECONDS_LEN + 10, offset, LOG_TIMESTAMP_OFFSET_LEN);
}

int k8s_file_format_timestamp(const struct timespec *ts, char buf[static 64])
{
        char seconds[LOG_TIMESTAMP_SECONDS_LEN + 1], offset[LOG_TIMESTAMP_OFFSET_LEN + 1];
        int r;

        if (!ts || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)
                return -EINVAL;

        r = log_timestamp_format_second(ts->tv_sec, seconds, offset);
        if (r < 0)
                return r;

        log_timestamp_join(seconds, ts->tv_nsec, offset, buf);
        buf[LOG_TIMESTAMP_LEN] = '\0';
        return LOG_TIMESTAMP_LEN;
}
