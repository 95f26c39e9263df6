/* libFuzzer target for the control API's request parser: any bytes must
 * yield either a request or a JSON-RPC error, never a crash, a leak or an
 * out-parameter in an inconsistent state. Built with -Dfuzz=true (clang). */
#include "control-api.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *method = NULL, *message = NULL;
        json_object *params = NULL, *id = NULL;
        bool has_id = false;

        int r = control_parse_request((const char *) data, size, &method, &params, &id, &has_id, &message);
        if (r == 0) {
                /* A request always has a method and an object of params. */
                if (!method || !params || !json_object_is_type(params, json_type_object))
                        abort();
                if (message)
                        abort();
        } else {
                if (!message || method || params)
                        abort();
                if (r != CTRMON_CONTROL_ERROR_PARSE && r != CTRMON_CONTROL_ERROR_INVALID_REQUEST &&
                    r != CTRMON_CONTROL_ERROR_INVALID_PARAMS)
                        abort();
        }
        if (id && !has_id)
                abort();
        g_free(method);
        g_free(message);
        json_object_put(params);
        json_object_put(id);
        return 0;
}
