/* File helpers with one job each: atomic small-file writes (pidfiles, exit
 * files) and directory-safe names. */
#pragma once

#include <glib.h>
#include <sys/types.h>

/* Write `len` bytes to `path` atomically: a temp file "<path>.XXXXXX" in the
 * same directory, fchmod(mode), rename over `path`. */
int fs_write_file_atomic(const char *path, const char *content, size_t len, mode_t mode, GError **error);

/* Create an empty file (O_CREAT, no truncation of an existing one). */
int fs_touch(const char *path, mode_t mode, GError **error);
