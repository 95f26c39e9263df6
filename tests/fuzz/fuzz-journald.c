/* libFuzzer target for the journald driver's line splitter (log-journald.h):
 * chunks from the input go through a journald sink whose transport is
 * replaced (journald_sink_set_sender) by a recorder; at the end the sink is
 * flushed as at the container's exit.
 *
 * Input: byte 0 options (bit 0 --log-priority-prefix, bit 1
 * --no-container-partial-message, bit 2 --name, bit 3 --log-tag, bit 4
 * labels, bit 5 a failing transport: every third entry is refused), then
 * chunks of [2-byte header: bit 15 stderr, 0-14 length][bytes].
 *
 * Checked, per entry: the fields and their order (MESSAGE, CONTAINER_ID_FULL,
 * PRIORITY, CONTAINER_ID, [CONTAINER_TAG], [CONTAINER_NAME],
 * SYSLOG_IDENTIFIER, [CONTAINER_PARTIAL_MESSAGE=true], labels) with the
 * configured values; MESSAGE at most 2 * 8192 - 1 bytes; the partial flag
 * exactly when MESSAGE has no final '\n' (and the flag is not turned off);
 * a partial entry before the flush only once 8192 bytes are buffered; the
 * stream's default priority (stdout 6, stderr 3) without the prefix option.
 * Over the whole run, per stream: the MESSAGEs put together give back the
 * stream's bytes exactly, with the prefix option after taking out "<d>"
 * prefixes whose d is the entry's PRIORITY. The dropped count is the
 * number of refused entries, and write() fails exactly when one of its
 * entries was refused. */
#include "log-journald.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_PARTIAL_MAX 8192
#define FUZZ_MAX_POSITIONS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_cid[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char *const fuzz_labels[] = { "LABEL_A=1", "LABEL_B=two words", NULL };

typedef struct {
        uint8_t flags;
        bool flushing;
        CtrmonStream stream;           /* of the write() in progress */
        unsigned sent;                 /* entries offered to the transport */
        unsigned refused;
        unsigned refused_this_write;
        /* Per stream: the bytes written, and the offsets into them where the
         * entries so far may have ended (more than one only when a "<d>"
         * prefix may or may not have been taken out). */
        GByteArray *input[2];
        GArray *pos[2];
        bool overflow;                 /* too many positions: stop checking */
} FuzzState;

static bool fuzz_field_is(const struct iovec *v, const char *want)
{
        return v->iov_len == strlen(want) && memcmp(v->iov_base, want, v->iov_len) == 0;
}

static void fuzz_advance(FuzzState *st, int si, const char *msg, size_t len, int prio, int def)
{
        if (st->overflow)
                return;
        GByteArray *in = st->input[si];
        GArray *next = g_array_new(FALSE, FALSE, sizeof(size_t));
        for (guint i = 0; i < st->pos[si]->len; i++) {
                size_t p = g_array_index(st->pos[si], size_t, i);
                size_t cand[2];
                int nc = 0;
                /* As written, at the stream's default priority. */
                if (prio == def && p + len <= in->len && (len == 0 || memcmp(in->data + p, msg, len) == 0))
                        cand[nc++] = p + len;
                /* With its "<d>" taken out, d being the priority. */
                if ((st->flags & 1) && p + 3 + len <= in->len && in->data[p] == '<' &&
                    in->data[p + 1] == '0' + prio && in->data[p + 2] == '>' &&
                    (len == 0 || memcmp(in->data + p + 3, msg, len) == 0))
                        cand[nc++] = p + 3 + len;
                for (int c = 0; c < nc; c++) {
                        bool dup = false;
                        for (guint j = 0; j < next->len; j++)
                                dup |= g_array_index(next, size_t, j) == cand[c];
                        if (!dup)
                                g_array_append_val(next, cand[c]);
                }
        }
        if (next->len == 0)
                abort(); /* this MESSAGE is not the next part of its stream */
        if (next->len > FUZZ_MAX_POSITIONS)
                st->overflow = true;
        g_array_unref(st->pos[si]);
        st->pos[si] = next;
}

static int fuzz_send(const struct iovec *iov, int n, void *user_data)
{
        FuzzState *st = user_data;
        int i = 0;
        if (n < 5 || iov[0].iov_len < 8 || memcmp(iov[0].iov_base, "MESSAGE=", 8) != 0)
                abort();
        const char *msg = (const char *) iov[0].iov_base + 8;
        size_t len = iov[0].iov_len - 8;
        i++;
        g_autofree char *id_full = g_strconcat("CONTAINER_ID_FULL=", fuzz_cid, NULL);
        if (!fuzz_field_is(&iov[i++], id_full))
                abort();
        const struct iovec *pv = &iov[i++];
        if (pv->iov_len != 10 || memcmp(pv->iov_base, "PRIORITY=", 9) != 0)
                abort();
        int prio = ((const char *) pv->iov_base)[9] - '0';
        if (prio < 0 || prio > 7)
                abort();
        if (!fuzz_field_is(&iov[i++], "CONTAINER_ID=0123456789ab"))
                abort();
        if ((st->flags & 8) && !fuzz_field_is(&iov[i++], "CONTAINER_TAG=fuzztag"))
                abort();
        if ((st->flags & 4) && !fuzz_field_is(&iov[i++], "CONTAINER_NAME=fuzzname"))
                abort();
        const char *ident = (st->flags & 8) ? "SYSLOG_IDENTIFIER=fuzztag"
                            : (st->flags & 4) ? "SYSLOG_IDENTIFIER=fuzzname"
                                              : "SYSLOG_IDENTIFIER=0123456789ab";
        if (i >= n || !fuzz_field_is(&iov[i++], ident))
                abort();
        bool complete = len > 0 && msg[len - 1] == '\n';
        bool flagged = i < n && fuzz_field_is(&iov[i], "CONTAINER_PARTIAL_MESSAGE=true");
        if (flagged)
                i++;
        if (flagged != (!complete && !(st->flags & 2)))
                abort();
        if (st->flags & 16) {
                for (const char *const *l = fuzz_labels; *l; l++)
                        if (i >= n || !fuzz_field_is(&iov[i++], *l))
                                abort();
        }
        if (i != n)
                abort();

        /* The sizes conmon's 8192-byte reads and buffer give. */
        if (len > 2 * FUZZ_PARTIAL_MAX - 1)
                abort();
        if (!complete && !st->flushing && len + ((st->flags & 1) ? 3 : 0) < FUZZ_PARTIAL_MAX)
                abort(); /* a fragment that fits is buffered, not sent */
        if (len > 0 && memchr(msg, '\n', len - 1))
                abort(); /* one line per entry, its '\n' last */

        /* Whose stream: at the flush, the default priority says it. */
        CtrmonStream stream = st->stream;
        if (st->flushing) {
                if (prio != 6 && prio != 3)
                        abort();
                stream = prio == 3 ? CTRMON_STREAM_STDERR : CTRMON_STREAM_STDOUT;
        }
        int def = stream == CTRMON_STREAM_STDERR ? 3 : 6;
        if (!(st->flags & 1) && prio != def)
                abort();
        fuzz_advance(st, stream == CTRMON_STREAM_STDERR, msg, len, prio, def);

        st->sent++;
        if ((st->flags & 32) && st->sent % 3 == 0) {
                st->refused++;
                st->refused_this_write++;
                return -EIO;
        }
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        FuzzState st = { .flags = data[0] };
        JournaldConfig config = {
                .cid = fuzz_cid,
                .name = (st.flags & 4) ? "fuzzname" : NULL,
                .tag = (st.flags & 8) ? "fuzztag" : NULL,
                .labels = (st.flags & 16) ? fuzz_labels : NULL,
                .no_partial_flag = st.flags & 2,
                .priority_prefix = st.flags & 1,
                .socket_path = "/nonexistent/journal",
        };
        LogSink *sink = NULL;
        GError *error = NULL;
        if (journald_sink_new(&config, &sink, &error) < 0)
                abort();
        journald_sink_set_sender(sink, fuzz_send, &st);
        for (int s = 0; s < 2; s++) {
                st.input[s] = g_byte_array_new();
                st.pos[s] = g_array_new(FALSE, FALSE, sizeof(size_t));
                size_t zero = 0;
                g_array_append_val(st.pos[s], zero);
        }

        struct timespec now = { 1700000000, 0 };
        const uint8_t *p = data + 1, *end = data + size;
        while (end - p >= 2) {
                uint16_t h = (uint16_t) (p[0] | p[1] << 8);
                p += 2;
                size_t len = MIN((size_t) (h & 0x7fff), (size_t) (end - p));
                st.stream = (h & 0x8000) ? CTRMON_STREAM_STDERR : CTRMON_STREAM_STDOUT;
                g_byte_array_append(st.input[st.stream == CTRMON_STREAM_STDERR], p, (guint) len);
                st.refused_this_write = 0;
                int r = sink->ops->write(sink, st.stream, &now, (const char *) p, len, &error);
                if ((r < 0) != (st.refused_this_write > 0) || (r < 0) != (error != NULL))
                        abort();
                g_clear_error(&error);
                p += len;
        }
        st.flushing = true;
        st.refused_this_write = 0;
        int r = sink->ops->flush(sink, &error);
        if ((r < 0) != (st.refused_this_write > 0) || (r < 0) != (error != NULL))
                abort();
        g_clear_error(&error);
        if (journald_sink_get_dropped(sink) != st.refused)
                abort();

        /* Nothing lost, nothing made up: each stream is used up exactly. */
        for (int s = 0; s < 2 && !st.overflow; s++) {
                bool whole = false;
                for (guint i = 0; i < st.pos[s]->len; i++)
                        whole |= g_array_index(st.pos[s], size_t, i) == st.input[s]->len;
                if (!whole)
                        abort();
        }
        log_sink_free(sink);
        for (int s = 0; s < 2; s++) {
                g_byte_array_unref(st.input[s]);
                g_array_unref(st.pos[s]);
        }
        return 0;
}
