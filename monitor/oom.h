/* OOM detection for the container's memory cgroup (spec §8): cgroup v1 through
 * memory.oom_control + an eventfd, cgroup v2 through memory.events. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct OomWatch OomWatch;

typedef void (*OomFn)(void *user_data);

/* Watch `pid`'s memory cgroup; `oom_cb` runs on each OOM kill seen. A host
 * without a usable memory cgroup gives *ret_watch = NULL and 0 (nothing to
 * watch is not an error). */
int oom_watch_new(pid_t pid, OomFn oom_cb, void *user_data, OomWatch **ret_watch, GError **error);

/* At exit, read the counters once more (v2: memory.events; v1: oom_kill in
 * memory.oom_control): true if an OOM kill that was not reported yet
 * happened, for an event still queued when the container's exit is handled. */
bool oom_watch_final_check(OomWatch *watch);

void oom_watch_free(OomWatch *watch);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(OomWatch, oom_watch_free)

/* Pure helpers, unit-tested. */
/* From memory.events content: the "oom" and "oom_kill" counters. */
void oom_parse_memory_events(const char *content, guint64 *ret_oom, guint64 *ret_oom_kill);
