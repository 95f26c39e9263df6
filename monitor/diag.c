/* ctrmon's own diagnostics: one formatter for stderr and syslog. It owns the
 * process-wide level and target; it must never write to the container's logs
 * or to the sync pipe. */
#include "diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static CtrmonLogLevel diag_level = CTRMON_LOG_LEVEL_WARNING;
static bool diag_syslog;
static char diag_syslog_prefix[64] = "conmon";

void diag_syslog_open(void)
{
        /* conmon never calls openlog(), so its entries carry glibc's default
         * ident, the program name "conmon": SYSLOG_IDENTIFIER=conmon in the
         * journal, "conmon:" in /var/log/syslog. ctrmon sets that ident
         * itself, whatever its binary is called, so that `journalctl -t
         * conmon` finds the monitor's messages after the switch (_COMM and
         * _EXE still name the program). No LOG_PID, as conmon. */
        openlog(DIAG_SYSLOG_IDENT, 0, LOG_USER);
}

void diag_init(CtrmonLogLevel level, bool use_syslog, const char *cid, const char *tag)
{
        diag_level = level;
        diag_syslog = use_syslog;
        if (use_syslog)
                diag_syslog_open();
        if (cid) {
                /* conmon's syslog prefix (spec §6.6), kept byte for byte so
                 * existing searches work: "conmon " and the first 20 chars of
                 * "cid" or "cid: tag". */
                g_autofree char *who = tag ? g_strdup_printf("%s: %s", cid, tag) : g_strdup(cid);
                g_snprintf(diag_syslog_prefix, sizeof diag_syslog_prefix, "conmon %.20s", who);
        }
}

/* conmon's kind tag between the prefix and the message: the name of the
 * macro it used (nexit/pexit say "error", pwarn is a warning with errno). */
static const char *diag_syslog_kind(CtrmonLogLevel level, int errnum)
{
        switch (level) {
        case CTRMON_LOG_LEVEL_ERROR:
                return "error";
        case CTRMON_LOG_LEVEL_WARNING:
                return errnum ? "pwarn" : "nwarn";
        case CTRMON_LOG_LEVEL_INFO:
                return "ninfo";
        case CTRMON_LOG_LEVEL_DEBUG:
                return "ndebug";
        default:
                return "ntrace";
        }
}

static char diag_level_char(CtrmonLogLevel level)
{
        switch (level) {
        case CTRMON_LOG_LEVEL_ERROR:
                return 'e';
        case CTRMON_LOG_LEVEL_WARNING:
                return 'w';
        case CTRMON_LOG_LEVEL_INFO:
                return 'i';
        default:
                return 'd';
        }
}

void diag_log(CtrmonLogLevel level, int errnum, const char *format, ...)
{
        if (level > diag_level && level != CTRMON_LOG_LEVEL_ERROR)
                return;

        int saved_errno = errno;
        char message[2048];
        va_list ap;
        va_start(ap, format);
        g_vsnprintf(message, sizeof message, format, ap);
        va_end(ap);

        /* conmon appends " <strerror>" (space, no colon) on stderr and
         * ": <strerror>" in syslog; callers match the stderr form. */
        if (errnum)
                fprintf(stderr, "[conmon:%c]: %s %s\n", diag_level_char(level), message, g_strerror(errnum));
        else
                fprintf(stderr, "[conmon:%c]: %s\n", diag_level_char(level), message);
        fflush(stderr);

        if (diag_syslog) {
                /* conmon: LOG_ERR for errors, LOG_INFO for everything else;
                 * ident "conmon" (diag_syslog_open), facility user. */
                int priority = level == CTRMON_LOG_LEVEL_ERROR ? LOG_ERR : LOG_INFO;
                const char *kind = diag_syslog_kind(level, errnum);
                if (errnum)
                        syslog(priority, "%s <%s>: %s: %s", diag_syslog_prefix, kind, message, g_strerror(errnum));
                else
                        syslog(priority, "%s <%s>: %s", diag_syslog_prefix, kind, message);
        }
        errno = saved_errno;
}
