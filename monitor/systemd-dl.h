/* libsystemd, loaded on first use. Linking it costs every monitor ~125 KiB
 * of private memory (its relocations and those of libgcrypt, liblz4, libzstd,
 * liblzma, libcap, libgpg-error), yet only the transient scopes (sd-bus,
 * bus.c) need it: they load it here, once. (The journald driver and sd_notify
 * speak their datagram protocols themselves.) */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

#define SYSTEMD_DL_LIBRARY "libsystemd.so.0"

/* The entry points ctrmon calls, typed from libsystemd's own headers. */
typedef struct {
        __typeof__(sd_bus_open_system) *bus_open_system;
        __typeof__(sd_bus_open_user) *bus_open_user;
        __typeof__(sd_bus_match_signal) *bus_match_signal;
        __typeof__(sd_bus_message_new_method_call) *bus_message_new_method_call;
        __typeof__(sd_bus_message_append) *bus_message_append;
        __typeof__(sd_bus_message_open_container) *bus_message_open_container;
        __typeof__(sd_bus_message_close_container) *bus_message_close_container;
        __typeof__(sd_bus_message_read) *bus_message_read;
        __typeof__(sd_bus_message_unref) *bus_message_unref;
        __typeof__(sd_bus_call) *bus_call;
        __typeof__(sd_bus_process) *bus_process;
        __typeof__(sd_bus_wait) *bus_wait;
        __typeof__(sd_bus_error_free) *bus_error_free;
        __typeof__(sd_bus_slot_unref) *bus_slot_unref;
        __typeof__(sd_bus_flush_close_unref) *bus_flush_close_unref;
} SystemdDl;

/* The loaded entry points in *ret_sd (the library stays loaded for the
 * process's life); -ELIBACC with *error naming the library and what is
 * missing if it cannot be loaded. */
int systemd_dl_get(const SystemdDl **ret_sd, GError **error);
