/* journald sink: container lines become journal entries with conmon's field
 * set, partial lines are buffered per stream up to 8192 bytes and flagged
 * CONTAINER_PARTIAL_MESSAGE when sent incomplete. A failed send drops that
 * entry only. */
#include "log-journald.h"

#include "ctrmon/error.h"

#include <string.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#define JOURNALD_PARTIAL_MAX 8192

typedef struct {
        char buf[JOURNALD_PARTIAL_MAX];
        size_t len;
        int priority;           /* from a "<d>" prefix, or -1 */
} JournaldPartial;

typedef struct {
        LogSink base;
        char *cid_full;
        char *cid_short;
        char *name;
        char *tag;
        char **labels;
        bool no_partial_flag;
        JournaldPartial partial[2];  /* stdout, stderr */
        guint64 dropped_entries;
} JournaldSink;

int journald_parse_priority(const char **line, size_t *len)
{
        const char *p = *line;
        if (*len >= 3 && p[0] == '<' && p[1] >= '0' && p[1] <= '7' && p[2] == '>') {
                int prio = p[1] - '0';
                *line += 3;
                *len -= 3;
                return prio;
        }
        return -1;
}

static int journald_send(JournaldSink *s, CtrmonStream stream, int priority, const char *a, size_t alen,
                         const char *b, size_t blen, bool partial, GError **error)
{
        if (priority < 0)
                priority = stream == CTRMON_STREAM_STDERR ? 3 : 6;

        GString *msg = g_string_sized_new(alen + blen + 16);
        g_string_append(msg, "MESSAGE=");
        g_string_append_len(msg, a, (gssize) alen);
        g_string_append_len(msg, b, (gssize) blen);

        g_autofree char *id_full = g_strdup_printf("CONTAINER_ID_FULL=%s", s->cid_full);
        g_autofree char *prio = g_strdup_printf("PRIORITY=%d", priority);
        g_autofree char *id = g_strdup_printf("CONTAINER_ID=%s", s->cid_short);
        g_autofree char *tag = s->tag ? g_strdup_printf("CONTAINER_TAG=%s", s->tag) : NULL;
        g_autofree char *name = s->name ? g_strdup_printf("CONTAINER_NAME=%s", s->name) : NULL;
        g_autofree char *ident = g_strdup_printf("SYSLOG_IDENTIFIER=%s",
                                                 s->tag ? s->tag : s->name ? s->name : s->cid_short);

        struct iovec iov[16 + 64];
        size_t n = 0;
#define JOURNALD_ADD(str)                                                       \
        do {                                                                    \
                iov[n].iov_base = (void *) (str);                               \
                iov[n].iov_len = strlen(str);                                   \
                n++;                                                            \
        } while (0)
        iov[n].iov_base = msg->str;
        iov[n].iov_len = msg->len;
        n++;
        JOURNALD_ADD(id_full);
        JOURNALD_ADD(prio);
        JOURNALD_ADD(id);
        if (tag)
                JOURNALD_ADD(tag);
        if (name)
                JOURNALD_ADD(name);
        JOURNALD_ADD(ident);
        if (partial && !s->no_partial_flag)
                JOURNALD_ADD("CONTAINER_PARTIAL_MESSAGE=true");
        for (char **l = s->labels; l && *l && n < G_N_ELEMENTS(iov); l++)
                JOURNALD_ADD(*l);
#undef JOURNALD_ADD

        int r = sd_journal_sendv(iov, (int) n);
        g_string_free(msg, TRUE);
        if (r < 0) {
                s->dropped_entries++;
                return ctrmon_set_error_errno(error, r, "Failed to send a log entry to journald");
        }
        return 0;
}

static int journald_sink_write(LogSink *sink, CtrmonStream stream, const struct timespec *now,
                               const char *buf, size_t len, GError **error)
{
        JournaldSink *s = (JournaldSink *) sink;
        JournaldPartial *part = &s->partial[stream == CTRMON_STREAM_STDERR ? 1 : 0];
        int ret = 0;

        while (len > 0) {
                const char *nl = memchr(buf, '\n', len);
                size_t line_len = nl ? (size_t) (nl - buf) + 1 : len;
                const char *line = buf;
                size_t text_len = line_len;
                buf += line_len;
                len -= line_len;

                int priority = part->len ? part->priority : journald_parse_priority(&line, &text_len);
                g_autoptr(GError) local = NULL;
                int r = 0;
                if (nl) {
                        /* A complete line keeps its '\n' in MESSAGE, as conmon. */
                        r = journald_send(s, stream, priority, part->buf, part->len, line, text_len, false, &local);
                        part->len = 0;
                } else if (text_len < JOURNALD_PARTIAL_MAX - part->len) {
                        if (part->len == 0)
                                part->priority = priority;
                        memcpy(part->buf + part->len, line, text_len);
                        part->len += text_len;
                } else {
                        r = journald_send(s, stream, priority, part->buf, part->len, line, text_len, true, &local);
                        part->len = 0;
                }
                if (r < 0 && ret == 0) {
                        ret = r;
                        g_propagate_error(error, g_steal_pointer(&local));
                }
        }
        return ret;
}

static int journald_sink_flush(LogSink *sink, GError **error)
{
        JournaldSink *s = (JournaldSink *) sink;
        int ret = 0;
        for (int i = 0; i < 2; i++) {
                JournaldPartial *part = &s->partial[i];
                if (!part->len)
                        continue;
                g_autoptr(GError) local = NULL;
                int r = journald_send(s, i ? CTRMON_STREAM_STDERR : CTRMON_STREAM_STDOUT, part->priority,
                                      part->buf, part->len, "", 0, true, &local);
                part->len = 0;
                if (r < 0 && ret == 0) {
                        ret = r;
                        g_propagate_error(error, g_steal_pointer(&local));
                }
        }
        return ret;
}

static int journald_sink_reopen(LogSink *sink, GError **error)
{
        return 0; /* nothing to reopen: journald has no file of ours */
}

static void journald_sink_free(LogSink *sink)
{
        JournaldSink *s = (JournaldSink *) sink;
        g_free(s->cid_full);
        g_free(s->cid_short);
        g_free(s->name);
        g_free(s->tag);
        g_strfreev(s->labels);
        g_free(s);
}

static const LogSinkOps journald_sink_ops = {
        .name = "journald",
        .write = journald_sink_write,
        .flush = journald_sink_flush,
        .sync = NULL,
        .reopen = journald_sink_reopen,
        .free = journald_sink_free,
};

int journald_sink_new(const JournaldConfig *config, LogSink **ret_sink, GError **error)
{
        if (!config->cid || strlen(config->cid) <= 12)
                return ctrmon_set_error(error, EINVAL, "Container ID must be longer than 12 characters");
        JournaldSink *s = g_new0(JournaldSink, 1);
        s->base.ops = &journald_sink_ops;
        s->cid_full = g_strdup(config->cid);
        s->cid_short = g_strndup(config->cid, 12);
        s->name = g_strdup(config->name);
        s->tag = g_strdup(config->tag);
        s->labels = g_strdupv((char **) config->labels);
        s->no_partial_flag = config->no_partial_flag;
        s->partial[0].priority = s->partial[1].priority = -1;
        *ret_sink = &s->base;
        return 0;
}
