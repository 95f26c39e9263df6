/* Timestamps for CRI log records (spec §6.2): RFC3339Nano in the local time
 * zone, "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM", always 35 bytes. Split in two
 * so a sink can cache the part that changes once a second and join in the
 * nanoseconds per chunk. Pure apart from reading TZ once. */
#pragma once

#include <time.h>

/* "YYYY-MM-DDTHH:MM:SS" */
#define LOG_TIMESTAMP_SECONDS_LEN 19
/* "+HH:MM" */
#define LOG_TIMESTAMP_OFFSET_LEN 6
/* seconds + ".nnnnnnnnn" + offset = 35 */
#define LOG_TIMESTAMP_LEN (LOG_TIMESTAMP_SECONDS_LEN + 10 + LOG_TIMESTAMP_OFFSET_LEN)

/* Format the parts of a timestamp that depend only on the second, each
 * NUL-terminated. Returns 0, or -errno (-ERANGE outside 4-digit years or
 * for offsets of 100 hours or more); on failure the outputs are untouched. */
int log_timestamp_format_second(time_t sec,
                                char ret_seconds[static LOG_TIMESTAMP_SECONDS_LEN + 1],
                                char ret_offset[static LOG_TIMESTAMP_OFFSET_LEN + 1]);

/* Write the LOG_TIMESTAMP_LEN bytes of a timestamp to `out` (no NUL) from
 * the parts above and `nsec` (0 ≤ nsec < 1e9, the caller checks). */
void log_timestamp_join(const char *seconds, long nsec, const char *offset, char *out);

/* Pure: format `ts` as "YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM" in the local time
 * zone (TZ honoured). Writes exactly 35 bytes plus NUL into buf. Returns the
 * length (35), or -errno. Named for the log driver whose records it stamps
 * (log-k8s-file.h includes this header for its callers). */
int k8s_file_format_timestamp(const struct timespec *ts, char buf[static 64]);
