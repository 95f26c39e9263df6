/* ctrmon's one error convention, shared by monitor/ and runtime-shim/.
 *
 * Every fallible function returns an int: >= 0 on success, -errno on failure,
 * and takes `GError **error` as its last parameter. On failure it sets *error
 * (domain CTRMON_ERROR, code = the positive errno) with a message a person can
 * act on; callers add context on the way up with g_prefix_error(). Out-
 * parameters (`ret_*`) are written only on success. Only main() turns an error
 * into an exit status, and only during set-up.
 */
#pragma once

#include <errno.h>
#include <glib.h>

#define CTRMON_ERROR (g_quark_from_static_string("ctrmon-error-quark"))

/* The positive errno an error is reported with: |errnum|, or EIO when errnum
 * is 0 (a failing call that did not set errno, or errno clobbered before it
 * was read) or has no positive counterpart (INT_MIN). A helper handed 0 must
 * never turn a failure into "success". */
static inline int ctrmon_errno_nonzero(int errnum)
{
        if (errnum > 0)
                return errnum;
        if (errnum < 0 && errnum != G_MININT)
                return -errnum;
        return EIO;
}

/* Set *error from an errno value and return -errnum, in one step:
 *     return ctrmon_set_error_errno(error, errno, "Failed to open %s", path);
 * The message gets ": <strerror>" appended. errnum may be positive or
 * negative; 0 is reported as EIO (see ctrmon_errno_nonzero()). */
#define ctrmon_set_error_errno(error, errnum, ...)                              \
        ({                                                                      \
                int _e = ctrmon_errno_nonzero(errnum);                          \
                g_autofree char *_m = g_strdup_printf(__VA_ARGS__);              \
                g_set_error((error), CTRMON_ERROR, _e, "%s: %s", _m,            \
                            g_strerror(_e));                                    \
                -_e;                                                            \
        })

/* Set *error with a plain message; return -errnum (0 is reported as EIO). */
#define ctrmon_set_error(error, errnum, ...)                                    \
        ({                                                                      \
                int _e = ctrmon_errno_nonzero(errnum);                          \
                g_set_error((error), CTRMON_ERROR, _e, __VA_ARGS__);            \
                -_e;                                                            \
        })
