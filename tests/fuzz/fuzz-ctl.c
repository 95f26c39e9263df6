/* libFuzzer target for the ctl/winsz FIFO line protocol (ctl-fifo.h): the
 * two line parsers on the whole input, and the line assembler fed in
 * read-sized pieces whose lengths come from the input. Every accepted
 * message must be in range; nothing may crash or read past the buffer. */
#include "ctl-fifo.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_dims(int a, int b)
{
        if (a < 0 || a > 1000 || b < 0 || b > 1000)
                abort();
}

static void fuzz_check_line(const char *line)
{
        CtlMessage msg = { .type = -1, .a = -1, .b = -1 };
        int rows = -1, cols = -1;

        if (ctl_parse_line(line, &msg) == 0) {
                if (msg.type != CTL_MSG_RESIZE && msg.type != CTL_MSG_REOPEN_LOGS)
                        abort();
                fuzz_check_dims(msg.a, msg.b);
        } else if (msg.type != -1 || msg.a != -1 || msg.b != -1) {
                /* A refused line must leave the out-parameter alone. */
                abort();
        }

        if (ctl_parse_winsz_line(line, &rows, &cols) == 0)
                fuzz_check_dims(rows, cols);
        else if (rows != -1 || cols != -1)
                abort();
}

typedef struct {
        bool winsz;
        size_t lines;
} FuzzCtlState;

static bool fuzz_line_cb(const char *line, void *user_data)
{
        FuzzCtlState *st = user_data;
        CtlMessage msg;
        int rows, cols;

        /* A handed-out line is one line: no newline inside, and it fits. */
        if (strchr(line, '\n') || strlen(line) > CTL_READ_MAX)
                abort();
        st->lines++;
        fuzz_check_line(line);

        if (st->winsz)
                return ctl_parse_winsz_line(line, &rows, &cols) == 0;
        return ctl_parse_line(line, &msg) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size == 0)
                return 0;

        /* Byte 0: which FIFO, and the seed for the read sizes. */
        FuzzCtlState st = { .winsz = data[0] & 1 };
        unsigned seed = data[0] >> 1;
        const char *text = (const char *) data + 1;
        size_t len = size - 1;

        char *line = malloc(len + 1);
        if (!line)
                abort();
        memcpy(line, text, len);
        line[len] = '\0';
        fuzz_check_line(line);
        free(line);

        /* The FIFO reader reads at most CTL_READ_MAX bytes at a time; also
         * feed bigger pieces, which the assembler must split itself. */
        CtlLineBuffer lb = { 0 };
        size_t off = 0;
        while (off < len) {
                size_t n = seed == 0 ? len - off : 1 + (seed * 7 + off) % (2 * CTL_READ_MAX);
                if (n > len - off)
                        n = len - off;
                ctl_line_buffer_feed(&lb, text + off, n, fuzz_line_cb, &st);
                if (lb.len > CTL_READ_MAX)
                        abort();
                off += n;
        }
        return 0;
}
