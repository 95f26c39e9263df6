/* Transient scopes through the service manager's D-Bus API. The only file
 * that includes sd-bus: it connects, asks, waits for the job and disconnects,
 * so an idle monitor holds no bus connection. Errors are returned; whether a
 * failed scope is fatal is decided by the caller. */
#include "bus.h"

#include "systemd-dl.h"
#include "ctrmon/error.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#define BUS_DEFAULT_TIMEOUT_MS 10000

CtrmonBusKind bus_default_kind(uid_t euid)
{
        return euid == 0 ? CTRMON_BUS_SYSTEM : CTRMON_BUS_USER;
}

const char *bus_default_slice(CtrmonBusKind kind)
{
        return kind == CTRMON_BUS_SYSTEM ? "machine.slice" : "user.slice";
}

const char *bus_kind_name(CtrmonBusKind kind)
{
        return kind == CTRMON_BUS_SYSTEM ? "system" : "user";
}

char *bus_unit_name(const char *prefix, const char *id, const char *suffix)
{
        GString *s = g_string_new(prefix);
        for (const unsigned char *p = (const unsigned char *) id; *p; p++) {
                if (g_ascii_isalnum(*p) || *p == ':' || *p == '_' || *p == '.' || *p == '-')
                        g_string_append_c(s, (char) *p);
                else
                        g_string_append_printf(s, "\\x%02x", *p);
        }
        g_string_append(s, suffix);
        return g_string_free(s, FALSE);
}

typedef struct {
        const SystemdDl *sd;
        const char *job;
        bool done;
        char *result;
} BusJobWait;

static int bus_job_removed_cb(sd_bus_message *m, void *user_data, sd_bus_error *ret_error)
{
        BusJobWait *w = user_data;
        const SystemdDl *sd = w->sd;
        uint32_t id;
        const char *path, *unit, *result;
        if (sd->bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
                return 0;
        if (w->job && strcmp(path, w->job) == 0) {
                w->done = true;
                w->result = g_strdup(result);
        }
        return 0;
}

static uint64_t bus_now_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static int bus_append_properties(const SystemdDl *sd, sd_bus_message *m, const BusScope *scope)
{
        int r = sd->bus_message_open_container(m, 'a', "(sv)");
        if (r >= 0)
                r = sd->bus_message_append(m, "(sv)", "Description", "s", scope->description);
        if (r >= 0)
                r = sd->bus_message_append(m, "(sv)", "Slice", "s", scope->slice);
        if (r >= 0)
                r = sd->bus_message_append(m, "(sv)", "CollectMode", "s", "inactive-or-failed");
        if (r >= 0)
                r = sd->bus_message_append(m, "(sv)", "PIDs", "au", 1, (uint32_t) scope->pid);
        if (r >= 0 && scope->delegate)
                r = sd->bus_message_append(m, "(sv)", "Delegate", "b", 1);
        if (r >= 0)
                r = sd->bus_message_close_container(m);
        if (r >= 0)
                r = sd->bus_message_append(m, "a(sa(sv))", 0);
        return r;
}

int bus_start_scope(const BusScope *scope, GError **error)
{
        const char *manager = bus_kind_name(scope->kind);
        int timeout_ms = scope->timeout_ms > 0 ? scope->timeout_ms : BUS_DEFAULT_TIMEOUT_MS;
        sd_bus *bus = NULL;
        sd_bus_slot *slot = NULL;
        sd_bus_message *m = NULL, *reply = NULL;
        const SystemdDl *sd = NULL;
        int r = systemd_dl_get(&sd, error);
        if (r < 0) {
                g_prefix_error(error, "Cannot reach the %s manager: ", manager);
                return r;
        }
        sd_bus_error bus_error = SD_BUS_ERROR_NULL;
        BusJobWait wait = { .sd = sd };
        g_autofree char *job = NULL;

        r = scope->kind == CTRMON_BUS_USER ? sd->bus_open_user(&bus) : sd->bus_open_system(&bus);
        if (r < 0) {
                r = ctrmon_set_error_errno(error, r, "Failed to connect to the %s bus", manager);
                goto out;
        }

        /* Subscribe before asking, or the job may finish unseen. */
        r = sd->bus_match_signal(bus, &slot, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                 "org.freedesktop.systemd1.Manager", "JobRemoved", bus_job_removed_cb, &wait);
        if (r < 0) {
                r = ctrmon_set_error_errno(error, r, "Failed to subscribe to the %s manager's jobs", manager);
                goto out;
        }

        r = sd->bus_message_new_method_call(bus, &m, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                            "org.freedesktop.systemd1.Manager", "StartTransientUnit");
        if (r >= 0)
                r = sd->bus_message_append(m, "ss", scope->unit, "fail");
        if (r >= 0)
                r = bus_append_properties(sd, m, scope);
        if (r < 0) {
                r = ctrmon_set_error_errno(error, r, "Failed to build the StartTransientUnit call");
                goto out;
        }

        r = sd->bus_call(bus, m, (uint64_t) timeout_ms * 1000u, &bus_error, &reply);
        if (r < 0) {
                r = ctrmon_set_error(error, -r, "The %s manager refused to start %s: %s", manager, scope->unit,
                                     bus_error.message ? bus_error.message : g_strerror(-r));
                goto out;
        }
        const char *path = NULL;
        r = sd->bus_message_read(reply, "o", &path);
        if (r < 0) {
                r = ctrmon_set_error_errno(error, r, "Unexpected reply from the %s manager", manager);
                goto out;
        }
        job = g_strdup(path);
        wait.job = job;

        uint64_t deadline = bus_now_usec() + (uint64_t) timeout_ms * 1000u;
        while (!wait.done) {
                r = sd->bus_process(bus, NULL);
                if (r < 0) {
                        r = ctrmon_set_error_errno(error, r, "Lost the %s bus while waiting for %s", manager,
                                                   scope->unit);
                        goto out;
                }
                if (r > 0)
                        continue;
                uint64_t now = bus_now_usec();
                if (now >= deadline) {
                        r = ctrmon_set_error(error, ETIMEDOUT, "The %s manager did not start %s within %d ms",
                                             manager, scope->unit, timeout_ms);
                        goto out;
                }
                r = sd->bus_wait(bus, deadline - now);
                if (r < 0 && r != -EINTR) {
                        r = ctrmon_set_error_errno(error, r, "Failed to wait on the %s bus", manager);
                        goto out;
                }
        }
        if (!g_str_equal(wait.result, "done")) {
                r = ctrmon_set_error(error, EIO, "The %s manager could not start %s (job result: %s)", manager,
                                     scope->unit, wait.result);
                goto out;
        }
        r = 0;
out:
        g_free(wait.result);
        sd->bus_error_free(&bus_error);
        sd->bus_message_unref(reply);
        sd->bus_message_unref(m);
        sd->bus_slot_unref(slot);
        sd->bus_flush_close_unref(bus);
        return r;
}
