/* The control API's "exec" (CRI ExecSync): the pure parts, for the unit
 * tests. */
#pragma once

#include <glib.h>
#include <json.h>
#include <stdbool.h>

/* Pure: the OCI process spec for an exec. `config` is the container's
 * config.json (may be NULL): its process.env, process.cwd and process.user
 * are the defaults. `env` entries (NAME=VALUE) replace same-named defaults
 * and add the others; `cwd` NULL means the default ("/" without config).
 * Returns a new object. */
json_object *control_exec_build_spec(json_object *config, const char *const *args, const char *const *env,
                                     const char *cwd);

/* Pure: `buf` as a reply field: {"<name>": text} if valid UTF-8 (no NUL),
 * else {"<name>_base64": base64}. Adds to `obj`. */
void control_exec_add_output(json_object *obj, const char *name, const guint8 *buf, size_t len);
