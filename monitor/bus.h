/* systemd over D-Bus: transient scopes for the monitor and the container
 * (--systemd-scope). This header keeps sd-bus types out of every other file. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

typedef enum {
        CTRMON_BUS_SYSTEM,
        CTRMON_BUS_USER,
} CtrmonBusKind;

typedef struct {
        CtrmonBusKind kind;
        const char *unit;         /* e.g. "ctrmon-<cid>.scope" (escaped)       */
        const char *description;
        const char *slice;
        pid_t pid;
        bool delegate;            /* the container's scope: Delegate=yes      */
        int timeout_ms;           /* for the call and the job; 0: 10 s        */
} BusScope;

/* StartTransientUnit for a scope holding `pid`, then wait until systemd
 * reports the job done (JobRemoved). Errors name the manager and the unit. */
int bus_start_scope(const BusScope *scope, GError **error);

/* The manager to use when the caller did not say: the user's when not root. */
CtrmonBusKind bus_default_kind(uid_t euid);
/* podman's conventions: machine.slice on the system manager, user.slice on
 * the user's manager. */
const char *bus_default_slice(CtrmonBusKind kind);
const char *bus_kind_name(CtrmonBusKind kind);

/* Pure: a unit name made of `prefix`, `id` escaped to systemd's unit-name
 * alphabet ([A-Za-z0-9:_.-], others as \xNN), and `suffix`. */
char *bus_unit_name(const char *prefix, const char *id, const char *suffix);
