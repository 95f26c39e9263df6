/* Loads libsystemd with dlopen() the first time a feature needs it and keeps
 * its entry points in one process-wide table (a cache of the loaded library,
 * not monitor state). It decides nothing: callers report a failure. */
#include "systemd-dl.h"

#include "ctrmon/error.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static const struct {
        const char *symbol;
        size_t offset;
} systemd_dl_symbols[] = {
#define SYSTEMD_DL_SYMBOL(field, symbol) { #symbol, offsetof(SystemdDl, field) }
        SYSTEMD_DL_SYMBOL(bus_open_system, sd_bus_open_system),
        SYSTEMD_DL_SYMBOL(bus_open_user, sd_bus_open_user),
        SYSTEMD_DL_SYMBOL(bus_match_signal, sd_bus_match_signal),
        SYSTEMD_DL_SYMBOL(bus_message_new_method_call, sd_bus_message_new_method_call),
        SYSTEMD_DL_SYMBOL(bus_message_append, sd_bus_message_append),
        SYSTEMD_DL_SYMBOL(bus_message_open_container, sd_bus_message_open_container),
        SYSTEMD_DL_SYMBOL(bus_message_close_container, sd_bus_message_close_container),
        SYSTEMD_DL_SYMBOL(bus_message_read, sd_bus_message_read),
        SYSTEMD_DL_SYMBOL(bus_message_unref, sd_bus_message_unref),
        SYSTEMD_DL_SYMBOL(bus_call, sd_bus_call),
        SYSTEMD_DL_SYMBOL(bus_process, sd_bus_process),
        SYSTEMD_DL_SYMBOL(bus_wait, sd_bus_wait),
        SYSTEMD_DL_SYMBOL(bus_error_free, sd_bus_error_free),
        SYSTEMD_DL_SYMBOL(bus_slot_unref, sd_bus_slot_unref),
        SYSTEMD_DL_SYMBOL(bus_flush_close_unref, sd_bus_flush_close_unref),
#undef SYSTEMD_DL_SYMBOL
};

int systemd_dl_get(const SystemdDl **ret_sd, GError **error)
{
        static SystemdDl table;
        static bool loaded;
        if (loaded) {
                *ret_sd = &table;
                return 0;
        }

        /* Kept loaded: the table points into it. A failed load is retried
         * on the next call (the library may have been installed since). */
        void *lib = dlopen(SYSTEMD_DL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
        if (!lib)
                return ctrmon_set_error(error, ELIBACC, "Failed to load %s: %s", SYSTEMD_DL_LIBRARY, dlerror());
        SystemdDl loading;
        for (size_t i = 0; i < G_N_ELEMENTS(systemd_dl_symbols); i++) {
                void *fn = dlsym(lib, systemd_dl_symbols[i].symbol);
                if (!fn) {
                        int r = ctrmon_set_error(error, ELIBACC, "%s lacks %s (libsystemd >= 246 is needed)",
                                                 SYSTEMD_DL_LIBRARY, systemd_dl_symbols[i].symbol);
                        dlclose(lib);
                        return r;
                }
                memcpy((char *) &loading + systemd_dl_symbols[i].offset, &fn, sizeof fn);
        }
        table = loading;
        loaded = true;
        *ret_sd = &table;
        return 0;
}
