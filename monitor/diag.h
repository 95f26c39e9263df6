/* ctrmon's own diagnostics (not the container's logs): conmon's stderr format
 * "[conmon:e]: message" filtered by --log-level, optionally mirrored to
 * syslog(3) with --syslog. Before daemonizing they reach the caller's stderr;
 * afterwards stderr is /dev/null and only syslog (or journald, when ctrmon runs
 * under systemd) sees them. The level and target are process-wide. */
#pragma once

#include "options.h"
#include "ctrmon/error.h"
#include <stdbool.h>

/* The syslog ident of every entry: conmon's (its program name), so filters
 * on SYSLOG_IDENTIFIER=conmon keep working. */
#define DIAG_SYSLOG_IDENT "conmon"

void diag_init(CtrmonLogLevel level, bool use_syslog, const char *cid, const char *tag);

/* openlog() with DIAG_SYSLOG_IDENT and facility user; diag_init() calls it
 * with --syslog, a caller that logs to syslog before that calls it first. */
void diag_syslog_open(void);

void diag_log(CtrmonLogLevel level, int errnum, const char *format, ...) G_GNUC_PRINTF(3, 4);

#define log_error(...) diag_log(CTRMON_LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_warning(...) diag_log(CTRMON_LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_info(...) diag_log(CTRMON_LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) diag_log(CTRMON_LOG_LEVEL_DEBUG, 0, __VA_ARGS__)

/* Log with " <strerror(r)>" appended and return -|r|, in one step; r == 0
 * is reported as EIO, so an error path never returns success. */
#define log_error_errno(r, ...)                                                 \
        ({                                                                      \
                int _r = ctrmon_errno_nonzero(r);                               \
                diag_log(CTRMON_LOG_LEVEL_ERROR, _r, __VA_ARGS__);              \
                -_r;                                                            \
        })
#define log_warning_errno(r, ...)                                               \
        ({                                                                      \
                int _r = ctrmon_errno_nonzero(r);                               \
                diag_log(CTRMON_LOG_LEVEL_WARNING, _r, __VA_ARGS__);            \
                -_r;                                                            \
        })
