/* libFuzzer target for attach's input side: the detach-key spec parser and
 * the detach-key scanner (control-attach.h), and the ctrmon-attach-v1 frame
 * codec of libctrmon (ctrmon/client.h: ctrmon_frame_decode and friends).
 *
 * Input: byte 0 seeds the piece sizes and picks the keys' source; then a
 * detach-key spec up to the first NUL; the rest is the stream (STDIN bytes
 * for the scanner, frames for the decoder).
 *
 * Checked:
 * - the spec parser agrees with an independent reading of the syntax
 *   ("x" and "ctrl-X" words joined by ',', Docker's ctrl- table);
 * - the scanner, fed the stream in pieces, never loses or invents a byte:
 *   what it passed on plus the bytes it holds back is exactly the input so
 *   far; at a detach, what it passed on plus the keys is a prefix of the
 *   input ending with the keys. It detaches exactly at the first
 *   occurrence of the keys (repeated bytes too: "a,a,b" in "aaab"), and
 *   piece boundaries make no difference;
 * - the frame decoder takes only whole frames, never reads past its
 *   buffer (ASan sees the exact-size copy), agrees with an independent
 *   big-endian reading, refuses lengths over CTRMON_FRAME_MAX_PAYLOAD, and
 *   encode_header/decode round-trip; ctrmon_frame_write's bytes decode back
 *   to the frame; exit/resize payload parsers match their definitions. */
#include "control-attach.h"
#include "ctrmon/client.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------ detach keys */

/* The oracle: Docker's detach-key syntax, read independently. */
static bool fuzz_parse_keys(const char *spec, GByteArray *out)
{
        if (!*spec)
                return true;
        const char *p = spec;
        for (;;) {
                const char *comma = strchr(p, ',');
                size_t n = comma ? (size_t) (comma - p) : strlen(p);
                if (n == 1) {
                        guint8 b = (guint8) p[0];
                        g_byte_array_append(out, &b, 1);
                } else if (n == 6 && g_ascii_strncasecmp(p, "ctrl-", 5) == 0) {
                        static const char table[] = "@abcdefghijklmnopqrstuvwxyz[\\]^_";
                        char c = g_ascii_tolower(p[5]);
                        const char *pos = c ? strchr(table, c) : NULL;
                        if (!pos)
                                return false;
                        guint8 b = (guint8) (pos - table);
                        g_byte_array_append(out, &b, 1);
                } else {
                        return false;
                }
                if (!comma)
                        return true;
                p = comma + 1;
        }
}

static void fuzz_check_spec(const char *spec)
{
        GByteArray *got = control_attach_parse_detach_keys(spec);
        GByteArray *want = g_byte_array_new();
        bool ok = fuzz_parse_keys(spec, want);
        if (ok != (got != NULL))
                abort();
        if (got && (got->len != want->len || (got->len && memcmp(got->data, want->data, got->len) != 0)))
                abort();
        if (got)
                g_byte_array_unref(got);
        g_byte_array_unref(want);
}

/* End (exclusive) of the first occurrence of keys in in, or 0. */
static size_t fuzz_first_match_end(const guint8 *in, size_t len, const guint8 *k, size_t n)
{
        if (n == 0 || n > len)
                return 0;
        for (size_t i = 0; i + n <= len; i++)
                if (memcmp(in + i, k, n) == 0)
                        return i + n;
        return 0;
}

/* Feed `in` in pieces; returns true on detach, with everything passed on
 * in `out`. */
static bool fuzz_scan(const guint8 *keys, size_t n_keys, const guint8 *in, size_t len, unsigned seed,
                      GByteArray *out)
{
        ControlDetachMatcher m = { .keys = keys, .n_keys = n_keys };
        size_t off = 0;
        while (off < len) {
                size_t piece = seed == 0 ? len - off : 1 + (seed * 13 + off * 7) % 17;
                piece = MIN(piece, len - off);
                bool detach = control_attach_detach_scan(&m, in + off, piece, out);
                off += piece;
                if (m.matched > n_keys)
                        abort();
                if (detach) {
                        /* Passed on + keys: a prefix of the input that ends
                         * with the keys (and within what was fed). */
                        size_t total = out->len + n_keys;
                        if (n_keys == 0 || total > off || (out->len && memcmp(out->data, in, out->len) != 0) ||
                            memcmp(in + out->len, keys, n_keys) != 0)
                                abort();
                        return true;
                }
                /* Passed on + held back == everything fed so far. */
                if (n_keys && m.matched >= n_keys)
                        abort();
                if (out->len + m.matched != off || (out->len && memcmp(out->data, in, out->len) != 0) ||
                    (m.matched && memcmp(in + out->len, keys, m.matched) != 0))
                        abort();
        }
        return false;
}

static void fuzz_check_scanner(const guint8 *keys, size_t n_keys, const guint8 *in, size_t len, unsigned seed)
{
        GByteArray *out = g_byte_array_new();
        bool detach = fuzz_scan(keys, n_keys, in, len, seed, out);
        size_t first = fuzz_first_match_end(in, len, keys, n_keys);
        if (n_keys == 0 && (detach || out->len != len))
                abort(); /* no keys: everything passes */
        if (detach && first == 0)
                abort(); /* detached on a sequence that is not there */
        if (detach && out->len + n_keys < first)
                abort(); /* detached before the first occurrence */
        {
                /* Any keys, repeated bytes too ("a,a,b" in "aaab"). */
                if (detach != (first > 0) || (detach && out->len + n_keys != first))
                        abort();
                /* Piece boundaries do not matter. */
                GByteArray *whole = g_byte_array_new();
                bool d2 = fuzz_scan(keys, n_keys, in, len, 0, whole);
                if (d2 != detach || whole->len != out->len || (out->len && memcmp(whole->data, out->data, out->len)))
                        abort();
                g_byte_array_unref(whole);
        }
        g_byte_array_unref(out);
}

/* ------------------------------------------------------------ frames */

static uint32_t fuzz_be32(const uint8_t *p)
{
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static void fuzz_check_frames(const uint8_t *stream, size_t len)
{
        /* An exact-size heap copy: a read past it is an ASan report. */
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf)
                abort();
        memcpy(buf, stream, len);
        size_t off = 0;
        while (off <= len) {
                uint8_t type = 0xaa;
                const uint8_t *payload = (const uint8_t *) 1;
                uint32_t plen = 0xdeadbeef;
                int r = ctrmon_frame_decode(buf + off, len - off, &type, &payload, &plen);
                size_t left = len - off;
                if (left < CTRMON_FRAME_HEADER_SIZE) {
                        if (r != 0)
                                abort();
                        break;
                }
                uint32_t n = fuzz_be32(buf + off + 1);
                if (n > CTRMON_FRAME_MAX_PAYLOAD) {
                        if (r != -EBADMSG)
                                abort();
                        break;
                }
                if (left - CTRMON_FRAME_HEADER_SIZE < n) {
                        if (r != 0 || type != 0xaa || plen != 0xdeadbeef)
                                abort(); /* incomplete: out-parameters untouched */
                        break;
                }
                if (r != (int) (CTRMON_FRAME_HEADER_SIZE + n) || type != buf[off] ||
                    payload != buf + off + CTRMON_FRAME_HEADER_SIZE || plen != n)
                        abort();

                /* Round trip through the encoder. */
                uint8_t header[CTRMON_FRAME_HEADER_SIZE];
                ctrmon_frame_encode_header(header, type, plen);
                if (memcmp(header, buf + off, CTRMON_FRAME_HEADER_SIZE) != 0)
                        abort();

                int status = 0;
                if (ctrmon_frame_parse_exit(payload, plen, &status) == 0) {
                        if (plen < 4 || status != (int) (int32_t) fuzz_be32(payload))
                                abort();
                } else if (plen >= 4) {
                        abort();
                }
                unsigned rows = 0, cols = 0;
                if (ctrmon_frame_parse_resize(payload, plen, &rows, &cols) == 0) {
                        if (plen < 4 || rows != ((unsigned) payload[0] << 8 | payload[1]) ||
                            cols != ((unsigned) payload[2] << 8 | payload[3]))
                                abort();
                } else if (plen >= 4) {
                        abort();
                }
                off += (size_t) r;
        }
        free(buf);
}

/* ctrmon_frame_write over a socketpair reads back as the same frame. */
static void fuzz_check_write(uint8_t type, const uint8_t *payload, size_t len)
{
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort();
        /* Small enough for the socket buffer: the write cannot block. */
        len = MIN(len, (size_t) 32768);
        if (ctrmon_frame_write(sv[0], type, payload, len) != 0)
                abort();
        uint8_t *back = malloc(len + CTRMON_FRAME_HEADER_SIZE);
        size_t got = 0;
        while (got < len + CTRMON_FRAME_HEADER_SIZE) {
                ssize_t n = recv(sv[1], back + got, len + CTRMON_FRAME_HEADER_SIZE - got, MSG_DONTWAIT);
                if (n <= 0)
                        abort();
                got += (size_t) n;
        }
        uint8_t t;
        const uint8_t *p;
        uint32_t n;
        if (ctrmon_frame_decode(back, got, &t, &p, &n) != (int) got || t != type || n != len ||
            (len && memcmp(p, payload, len) != 0))
                abort();
        free(back);

        unsigned rows = (unsigned) len * 7, cols = (unsigned) type << 9;
        int r = ctrmon_frame_write_resize(sv[0], rows, cols);
        if ((rows > 0xffff || cols > 0xffff) != (r == -ERANGE) || (r != 0 && r != -ERANGE))
                abort();
        if (r == 0) {
                uint8_t rb[CTRMON_FRAME_HEADER_SIZE + 4];
                if (recv(sv[1], rb, sizeof rb, MSG_DONTWAIT) != (ssize_t) sizeof rb)
                        abort();
                unsigned r2 = 0, c2 = 0;
                if (ctrmon_frame_decode(rb, sizeof rb, &t, &p, &n) != (int) sizeof rb ||
                    t != CTRMON_FRAME_RESIZE || ctrmon_frame_parse_resize(p, n, &r2, &c2) != 0 || r2 != rows ||
                    c2 != cols)
                        abort();
        }
        close(sv[0]);
        close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;
        unsigned seed = data[0] >> 2;
        unsigned keys_from = data[0] & 3;
        const uint8_t *rest = data + 1;
        size_t rest_len = size - 1;

        const uint8_t *nul = memchr(rest, '\0', rest_len);
        size_t spec_len = nul ? (size_t) (nul - rest) : rest_len;
        char *spec = g_strndup((const char *) rest, spec_len);
        const uint8_t *stream = nul ? nul + 1 : rest + rest_len;
        size_t stream_len = (size_t) (rest + rest_len - stream);

        fuzz_check_spec(spec);

        /* The keys: the spec's, the default, or raw bytes (any length,
         * repeats allowed, as no spec could give). */
        GByteArray *keys = NULL;
        if (keys_from == 0)
                keys = control_attach_parse_detach_keys(spec);
        else if (keys_from == 1)
                keys = control_attach_parse_detach_keys("ctrl-p,ctrl-q");
        if (!keys) {
                keys = g_byte_array_new();
                g_byte_array_append(keys, (const guint8 *) spec, (guint) MIN(spec_len, (size_t) 8));
        }
        fuzz_check_scanner(keys->data, keys->len, stream, stream_len, seed);
        g_byte_array_unref(keys);

        fuzz_check_frames(stream, stream_len);
        fuzz_check_write(data[0], stream, stream_len);
        g_free(spec);
        return 0;
}
