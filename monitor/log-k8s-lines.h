/* The k8s-file sink's line-copy engine: whole short lines, each behind the
 * chunk's record header, copied into the sink's staging buffer. Pure: no fd,
 * no allocation, no sink state. On the hot path, called once per staged run
 * of lines (not per line), so the call crossing files costs nothing. */
#pragma once

#include "log-timestamp.h"

/* "<TS> stdout " is 43 bytes (spec §6.2); "F " / "P " makes 45. */
#define K8S_FILE_STREAM_LEN 6
#define K8S_FILE_HEADER_LEN (LOG_TIMESTAMP_LEN + 1 + K8S_FILE_STREAM_LEN + 1 + 2)
/* The longest line copied into the stage; longer ones are referenced in
 * place by the sink. */
#define K8S_FILE_COPY_MAX 1024

/* Copy whole lines of at most K8S_FILE_COPY_MAX bytes from `p`, each behind
 * `header` (K8S_FILE_HEADER_LEN bytes), to *dst_io while they fit before
 * `dst_end`. Returns where it stopped (a fragment, a long line, a full
 * stage, or `end`) and advances *dst_io past what it wrote. Bytes between
 * *dst_io and `dst_end` past the last record may be scribbled on. Uses AVX2
 * where the CPU has it. */
const char *k8s_lines_copy(const char *header, const char *p, const char *end,
                           char **dst_io, const char *dst_end);
