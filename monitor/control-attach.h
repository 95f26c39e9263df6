/* The control API's "attach": the pure parts (detach keys), for the unit
 * tests. The framing is documented in include/ctrmon/control.h. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

/* Pure: parse Docker-style detach keys ("ctrl-p,ctrl-q", "a,ctrl-@") into
 * bytes. "" gives an empty sequence (detaching disabled). Returns NULL for
 * a malformed spec. */
GByteArray *control_attach_parse_detach_keys(const char *spec);

/* Pure: the detach-key matcher over a stdin stream cut into any pieces.
 * Bytes that may begin the sequence are held back until it is clear they
 * do not; everything else goes to `out`. Returns true when the whole
 * sequence was seen (what followed it is dropped). */
typedef struct {
        const guint8 *keys;
        size_t n_keys;
        size_t matched;         /* bytes of `keys` seen so far */
} ControlDetachMatcher;

bool control_attach_detach_scan(ControlDetachMatcher *m, const guint8 *in, size_t len, GByteArray *out);
