/* What libctrmon's files share and the world does not see. */
#pragma once

#include "ctrmon/client.h"
#include "protocol.h"

typedef void (*ClientNotifyFn)(CtrmonClient *c, const ClientMessage *msg, void *userdata);

struct CtrmonClient {
        int fd;
        int64_t next_id;
        char *buf;             /* bytes read, not yet a whole line     */
        size_t len;
        size_t cap;
        char *error;
        int error_code;
        ClientNotifyFn notify_fn;      /* notifications during a call  */
        void *notify_userdata;
};

/* Record the failure's message and JSON-RPC code; returns r. */
int client_set_error(CtrmonClient *c, int r, int code, const char *format, ...)
        __attribute__((format(printf, 4, 5)));
/* The next message from the monitor (blocking). */
int client_read_message(CtrmonClient *c, bool exact, ClientMessage *ret_msg);
/* ctrmon_client_call with `exact` reading (see client.c). */
int client_call_full(CtrmonClient *c, const char *method, const char *params_json, bool exact,
                     char **ret_result_json);
