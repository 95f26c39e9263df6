/* The control API's "processes" method and the /proc parsing under it. The
 * parsers are pure (text in, values out) so the unit tests can feed them
 * the awkward cases: comms with spaces and parentheses, nested pid
 * namespaces, cgroup v1 and v2 lines. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

/* Pure: the last pid of the "NSpid:" line of /proc/PID/status text (the
 * pid in the innermost namespace). 0, or -EINVAL if there is none. */
int control_proc_parse_nspid(const char *status, pid_t *ret_pid);
/* Pure: the real uid (first field of "Uid:"). */
int control_proc_parse_uid(const char *status, uid_t *ret_uid);
/* Pure: state letter and parent pid from /proc/PID/stat text. The comm is
 * found by the *last* ')', as it may itself hold spaces and parentheses. */
int control_proc_parse_stat(const char *stat, char *ret_state, pid_t *ret_ppid);
/* Pure: the path of `controller` (v1, e.g. "pids") or, for NULL, of the
 * unified hierarchy ("0::") in /proc/PID/cgroup text. NULL if absent. */

/* `pid`'s parent pid from /proc, or -errno. */
int control_proc_ppid(pid_t pid, pid_t *ret_ppid);
/* Every live descendant of `pid` (children first, breadth-first), from a
 * walk of /proc. */
GArray *control_proc_descendants(pid_t pid);
