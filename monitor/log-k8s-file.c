/* The k8s-file log sink: turns container output chunks into CRI log records
 * (spec §6.2), enforces the size limits and truncates or rotates the file
 * (spec §6.3). It owns the log fd and nothing else. It is on the hot path:
 * no per-line allocation, one timestamp per chunk, batched writev. It must
 * never exit or abort: every failure is returned and the monitor goes on. */

#include "log-k8s-file.h"
#include "log-k8s-lines.h"
#include "log-timestamp.h"

#include <ctrmon/error.h>
#include <ctrmon/fd-util.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* conmon capped itself at 128 iovecs per writev; the kernel takes IOV_MAX
 * (1024 on Linux). A full 8 KiB chunk of short lines fits in one call. */
#define K8S_FILE_IOV_BATCH IOV_MAX
/* Size of the staging buffer (the longest line copied into it is
 * K8S_FILE_COPY_MAX, log-k8s-lines.h). */
#define K8S_FILE_STAGE_SIZE (128 * 1024)
/* After this many chunks in a row that each needed at most
 * K8S_FILE_STAGE_KEEP bytes of stage, the rest a burst touched is handed
 * back to the kernel (the next burst touches it again). */
#define K8S_FILE_STAGE_KEEP (16 * 1024)
#define K8S_FILE_QUIET_WRITES 64

G_STATIC_ASSERT(K8S_FILE_HEADER_LEN == 45);

typedef struct {
        LogSink base;

        char *path;
        int fd;
        int64_t size_max;
        int64_t global_size_max;
        bool rotate;
        int max_files;
        char **allowlist_dirs;

        int64_t cur;                    /* bytes in the current file        */
        int64_t total;                  /* bytes in all files, never reset  */
        uint64_t bytes_written;
        uint64_t bytes_dropped;

        /* localtime_r() is the expensive part of a timestamp and only changes
         * once a second, so the second and offset parts are cached. */
        bool ts_cache_valid;
        time_t ts_cache_sec;
        char ts_cache_seconds[LOG_TIMESTAMP_SECONDS_LEN + 1];
        char ts_cache_offset[LOG_TIMESTAMP_OFFSET_LEN + 1];

        /* Headers of the chunk being written; the iovecs point into them and
         * into the caller's chunk, so both stay valid until the flush at the
         * end of write(). */
        char header_full[K8S_FILE_HEADER_LEN];
        char header_partial[K8S_FILE_HEADER_LEN];

        struct iovec iov[K8S_FILE_IOV_BATCH];
        size_t n_iov;
        size_t pending;                 /* bytes queued in iov              */

        /* Short records are copied here and go to the kernel as one iovec:
         * the kernel's cost is per segment, and a 100-byte line would
         * otherwise be three (measured: half the monitor's CPU). Long lines
         * are still referenced in place, not copied. Mapped on the first
         * write, so an idle monitor does not carry it, and only the pages
         * records were copied into are backed. */
        char *stage;
        size_t stage_len;
        size_t stage_write_peak;        /* most used during this write()    */
        size_t stage_backed;            /* most used since the last release */
        unsigned quiet_writes;
} K8sFileSink;

static const char k8s_file_newline = '\n';

static K8sFileSink *k8s_file_sink_from(LogSink *sink)
{
        return (K8sFileSink *) sink;
}

/* Fill header_full / header_partial for one chunk. */
static int k8s_file_build_headers(K8sFileSink *s, CtrmonStream stream,
                                  const struct timespec *now, GError **error)
{
        struct timespec ts;
        const char *name;
        char *h = s->header_full;
        int r;

        switch (stream) {
        case CTRMON_STREAM_STDOUT:
                name = "stdout";
                break;
        case CTRMON_STREAM_STDERR:
                name = "stderr";
                break;
        default:
                return ctrmon_set_error(error, EINVAL,
                                        "k8s-file log: invalid stream %d", (int) stream);
        }

        if (now)
                ts = *now;
        else
                clock_gettime(CLOCK_REALTIME, &ts);
        if (ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000L)
                return ctrmon_set_error(error, EINVAL,
                                        "k8s-file log: invalid timestamp nanoseconds %ld",
                                        (long) ts.tv_nsec);

        if (!s->ts_cache_valid || s->ts_cache_sec != ts.tv_sec) {
                r = log_timestamp_format_second(ts.tv_sec, s->ts_cache_seconds,
                                           s->ts_cache_offset);
                if (r < 0) {
                        s->ts_cache_valid = false;
                        return ctrmon_set_error_errno(error, r,
                                                      "k8s-file log: cannot format time %lld",
                                                      (long long) ts.tv_sec);
                }
                s->ts_cache_sec = ts.tv_sec;
                s->ts_cache_valid = true;
        }

        log_timestamp_join(s->ts_cache_seconds, ts.tv_nsec, s->ts_cache_offset, h);
        h += LOG_TIMESTAMP_LEN;
        *h++ = ' ';
        memcpy(h, name, K8S_FILE_STREAM_LEN);
        h += K8S_FILE_STREAM_LEN;
        *h++ = ' ';
        *h++ = 'F';
        *h++ = ' ';

        memcpy(s->header_partial, s->header_full, K8S_FILE_HEADER_LEN);
        s->header_partial[K8S_FILE_HEADER_LEN - 2] = 'P';
        return 0;
}

/* Record bytes that [p, end) would have produced; for drop accounting. */
static uint64_t k8s_file_record_bytes(const char *p, const char *end)
{
        uint64_t n = 0;

        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));

                if (!nl)
                        return n + K8S_FILE_HEADER_LEN + (uint64_t) (end - p) + 1;
                n += K8S_FILE_HEADER_LEN + (uint64_t) (nl - p) + 1;
                p = nl + 1;
        }
        return n;
}

/* Write every queued iovec. On failure the unwritten bytes are dropped and
 * taken out of the size accounting, so cur/total keep matching the file. */
static int k8s_file_flush_iov(K8sFileSink *s, GError **error)
{
        struct iovec *iov = s->iov;
        size_t n = s->n_iov;
        int r;

        while (n > 0) {
                ssize_t k = writev(s->fd, iov, (int) MIN(n, (size_t) IOV_MAX));

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto fail;
                }
                if (k == 0) {
                        /* Should not happen for files; don't spin. */
                        r = -EIO;
                        goto fail;
                }

                s->bytes_written += (uint64_t) k;
                s->pending -= (size_t) k;

                /* Short write: skip what went out, resume mid-iovec. */
                while (n > 0 && (size_t) k >= iov->iov_len) {
                        k -= (ssize_t) iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0 && k > 0) {
                        iov->iov_base = (char *) iov->iov_base + k;
                        iov->iov_len -= (size_t) k;
                }
        }

        s->n_iov = 0;
        s->stage_write_peak = MAX(s->stage_write_peak, s->stage_len);
        s->stage_len = 0;
        return 0;

fail:
        s->bytes_dropped += s->pending;
        s->cur -= (int64_t) s->pending;
        s->total -= (int64_t) s->pending;
        s->pending = 0;
        s->n_iov = 0;
        s->stage_write_peak = MAX(s->stage_write_peak, s->stage_len);
        s->stage_len = 0;
        return ctrmon_set_error_errno(error, r, "Failed to write log file %s", s->path);
}

static int k8s_file_open_new(const char *path, int extra_flags, GError **error)
{
        int fd;

        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | extra_flags, 0640);
        if (fd < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to create %s", path);
        return fd;
}

/* Reopen without --log-rotate: replace the file with an empty one. The old
 * fd stays in use until the new file is in place, so a failure loses no
 * output.
 *
 * The replacement is created under a fresh random name with O_EXCL (and
 * O_NOFOLLOW, for the record): whoever can write the log's directory cannot
 * make the monitor, often root, open or truncate anything through a symlink
 * planted at a predictable "<log>.tmp" (it did: a 0600 file elsewhere was
 * emptied), and a stale name left by a crash cannot block us either. */
#define K8S_FILE_TMP_ATTEMPTS 16

static int k8s_file_truncate(K8sFileSink *s, GError **error)
{
        g_autofree char *tmp = NULL;
        _cleanup_close_ int fd = -1;

        for (int i = 0; fd < 0; i++) {
                g_free(tmp);
                tmp = g_strdup_printf("%s.tmp.%08" G_GINT32_MODIFIER "x", s->path, g_random_int());
                /* conmon opens the replacement without O_APPEND. ctrmon
                 * improvement: O_APPEND, so anything else appending to the
                 * log (or truncating it under us) cannot make our records
                 * overwrite each other. */
                fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_APPEND | O_CLOEXEC, 0640);
                if (fd < 0 && (errno != EEXIST || i + 1 >= K8S_FILE_TMP_ATTEMPTS))
                        return ctrmon_set_error_errno(error, errno, "Failed to create %s", tmp);
        }

        if (rename(tmp, s->path) < 0) {
                int r = ctrmon_set_error_errno(error, errno, "Failed to rename %s to %s",
                                               tmp, s->path);
                (void) unlink(tmp);
                return r;
        }

        ctrmon_close_fd(&s->fd);
        s->fd = TAKE_FD(fd);
        s->cur = 0;
        return 0;
}

static bool k8s_file_path_has_dotdot(const char *path)
{
        g_auto(GStrv) parts = g_strsplit(path, "/", -1);

        for (char **p = parts; *p; p++)
                if (strcmp(*p, "..") == 0)
                        return true;
        return false;
}

static bool k8s_file_path_is_under(const char *path, const char *dir)
{
        size_t n = strlen(dir);

        while (n > 1 && dir[n - 1] == '/')
                n--;
        if (strncmp(path, dir, n) != 0)
                return false;
        return path[n] == '\0' || path[n] == '/' || (n == 1 && dir[0] == '/');
}

/* Checks before rotating (spec §6.3). The parent checks only matter when the
 * log file has gone missing: then we are about to create a file in a
 * directory someone else may control. */
static int k8s_file_rotate_validate(K8sFileSink *s, bool *ret_missing, GError **error)
{
        g_autofree char *dir = NULL, *lexical = NULL, *physical = NULL;
        struct stat st;
        bool allowed;

        if (lstat(s->path, &st) == 0) {
                if (S_ISLNK(st.st_mode))
                        return ctrmon_set_error(error, ELOOP,
                                                "Refusing to rotate %s: it is a symlink",
                                                s->path);
                *ret_missing = false;
                return 0;
        }
        if (errno != ENOENT)
                return ctrmon_set_error_errno(error, errno, "Failed to stat %s", s->path);

        if (k8s_file_path_has_dotdot(s->path))
                return ctrmon_set_error(error, EINVAL,
                                        "Refusing to recreate %s: path contains '..'",
                                        s->path);

        dir = g_path_get_dirname(s->path);
        if (stat(dir, &st) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to stat %s", dir);
        if (st.st_mode & S_IWOTH)
                return ctrmon_set_error(error, EPERM,
                                        "Refusing to recreate %s: %s is world-writable",
                                        s->path, dir);
        if (st.st_uid != 0 && st.st_uid != getuid() && st.st_uid != geteuid())
                return ctrmon_set_error(error, EPERM,
                                        "Refusing to recreate %s: %s is owned by uid %u",
                                        s->path, dir, (unsigned) st.st_uid);

        /* With '..' ruled out, the lexical and the resolved form differ only
         * if a component is a symlink. */
        lexical = g_canonicalize_filename(dir, NULL);
        physical = realpath(dir, NULL);
        if (!physical)
                return ctrmon_set_error_errno(error, errno, "Failed to resolve %s", dir);
        if (strcmp(lexical, physical) != 0)
                return ctrmon_set_error(error, EPERM,
                                        "Refusing to recreate %s: %s contains a symlink",
                                        s->path, dir);

        allowed = !s->allowlist_dirs || !s->allowlist_dirs[0];
        for (char **a = s->allowlist_dirs; a && *a && !allowed; a++) {
                g_autofree char *adir = realpath(*a, NULL);

                allowed = k8s_file_path_is_under(physical, adir ?: *a);
        }
        if (!allowed)
                return ctrmon_set_error(error, EPERM,
                                        "Refusing to recreate %s: not under an allowed log directory",
                                        s->path);

        *ret_missing = true;
        return 0;
}

static int k8s_file_lock_fd(int fd, short type)
{
        struct flock fl = {
                .l_type = type,
                .l_whence = SEEK_SET,
        };

        return fcntl(fd, F_SETLK, &fl) < 0 ? -errno : 0;
}

/* Reopen with --log-rotate: path.(k-1) → path.k, path → path.1, a fresh
 * path. Any failure leaves the current file in place and untruncated. */
static int k8s_file_rotate(K8sFileSink *s, GError **error)
{
        g_autofree char *new_path = g_strdup_printf("%s.new", s->path);
        g_autofree char *first = g_strdup_printf("%s.1", s->path);
        _cleanup_close_ int fd = -1;
        struct stat fd_st, path_st;
        bool missing = false;
        int max_files, r;

        r = k8s_file_rotate_validate(s, &missing, error);
        if (r < 0)
                return r;

        /* Whoever else rotates or ships this file (another monitor, a log
         * collector) may hold a lock: then leave the file to them. */
        r = k8s_file_lock_fd(s->fd, F_WRLCK);
        if (r == -EACCES || r == -EAGAIN)
                return ctrmon_set_error(error, EBUSY,
                                        "Not rotating %s: locked by another process", s->path);
        if (r < 0)
                return ctrmon_set_error_errno(error, r, "Failed to lock %s", s->path);

        if (!missing) {
                /* Only rotate the file we write to: if it was replaced under
                 * us, shifting it into the backups would lose someone's file. */
                if (fstat(s->fd, &fd_st) < 0) {
                        r = ctrmon_set_error_errno(error, errno, "Failed to stat log fd");
                        goto unlock;
                }
                if (stat(s->path, &path_st) < 0) {
                        r = ctrmon_set_error_errno(error, errno, "Failed to stat %s", s->path);
                        goto unlock;
                }
                if (fd_st.st_dev != path_st.st_dev || fd_st.st_ino != path_st.st_ino) {
                        r = ctrmon_set_error(error, ESTALE,
                                             "Not rotating %s: it is no longer the file being written",
                                             s->path);
                        goto unlock;
                }
        }

        /* A stale .new from a monitor that died mid-rotation would make
         * O_EXCL fail forever. unlink() does not follow symlinks, and O_EXCL
         * still refuses anything that appears in between. */
        (void) unlink(new_path);
        fd = k8s_file_open_new(new_path, O_EXCL | O_APPEND, error);
        if (fd < 0) {
                r = fd;
                goto unlock;
        }

        if (!missing) {
                /* DECISION: conmon keeps max(2, N) backups, so the default
                 * --log-max-files 1 keeps two (quirk 8). ctrmon keeps exactly
                 * N (.1 … .N). Nobody depends on the extra file: podman 4.3
                 * never passes --log-rotate. */
                max_files = MAX(s->max_files, 1);
                for (int k = max_files; k >= 2; k--) {
                        g_autofree char *from = g_strdup_printf("%s.%d", s->path, k - 1);
                        g_autofree char *to = g_strdup_printf("%s.%d", s->path, k);

                        if (rename(from, to) < 0 && errno != ENOENT) {
                                r = ctrmon_set_error_errno(error, errno,
                                                           "Failed to rename %s to %s",
                                                           from, to);
                                goto drop_new;
                        }
                }

                if (rename(s->path, first) < 0) {
                        r = ctrmon_set_error_errno(error, errno, "Failed to rename %s to %s",
                                                   s->path, first);
                        goto drop_new;
                }
        }

        if (rename(new_path, s->path) < 0) {
                r = ctrmon_set_error_errno(error, errno, "Failed to rename %s to %s",
                                           new_path, s->path);
                /* Put the old file back so writers and readers still find it. */
                if (!missing)
                        (void) rename(first, s->path);
                goto drop_new;
        }

        /* Closing the old fd drops our lock. */
        ctrmon_close_fd(&s->fd);
        s->fd = TAKE_FD(fd);
        s->cur = 0;
        return 0;

drop_new:
        (void) unlink(new_path);
unlock:
        (void) k8s_file_lock_fd(s->fd, F_UNLCK);
        return r;
}

static int k8s_file_do_reopen(K8sFileSink *s, GError **error)
{
        int r;

        r = s->rotate ? k8s_file_rotate(s, error) : k8s_file_truncate(s, error);
        if (r < 0)
                g_prefix_error(error, "k8s-file log: ");
        return r;
}

/* Queue `len` bytes: copied into the staging buffer (extending its last
 * iovec when contiguous) or referenced in place. Needs room for one more
 * iovec and, when copying, `len` bytes of stage: callers check first. */
static void k8s_file_queue(K8sFileSink *s, const void *data, size_t len, bool copy)
{
        if (!copy) {
                s->iov[s->n_iov++] = (struct iovec) { .iov_base = (void *) data, .iov_len = len };
                return;
        }
        char *dst = s->stage + s->stage_len;
        memcpy(dst, data, len);
        s->stage_len += len;
        struct iovec *last = s->n_iov ? &s->iov[s->n_iov - 1] : NULL;
        if (last && (char *) last->iov_base + last->iov_len == dst)
                last->iov_len += len;
        else
                s->iov[s->n_iov++] = (struct iovec) { .iov_base = dst, .iov_len = len };
}

/* The common case, no size limit: every whole line that fits the staging
 * buffer is copied there behind its header, and the run goes out as one
 * iovec; the accounting is done once for the run, not per line. Returns
 * where it stopped: at `end`, or at a record the general path must take
 * (a fragment, a long line, a full stage or iovec array). */
static const char *k8s_file_stage_lines(K8sFileSink *s, const char *p, const char *end)
{
        char *start = s->stage + s->stage_len, *dst = start;
        const char *stage_end = s->stage + K8S_FILE_STAGE_SIZE;

        if (s->n_iov >= K8S_FILE_IOV_BATCH)
                return p;

        p = k8s_lines_copy(s->header_full, p, end, &dst, stage_end);

        size_t added = (size_t) (dst - start);
        if (added == 0)
                return p;
        struct iovec *last = s->n_iov ? &s->iov[s->n_iov - 1] : NULL;
        if (last && (char *) last->iov_base + last->iov_len == start)
                last->iov_len += added;
        else
                s->iov[s->n_iov++] = (struct iovec) { .iov_base = start, .iov_len = added };
        s->stage_len += added;
        s->pending += added;
        s->cur += (int64_t) added;
        s->total += (int64_t) added;
        return p;
}

/* A burst leaves the whole stage backed; once chunks have been small for a
 * while, give all but its head back. */
static void k8s_file_release_stage(K8sFileSink *s)
{
        s->stage_backed = MAX(s->stage_backed, s->stage_write_peak);
        if (s->stage_write_peak > K8S_FILE_STAGE_KEEP) {
                s->quiet_writes = 0;
                return;
        }
        if (s->stage_backed <= K8S_FILE_STAGE_KEEP || ++s->quiet_writes < K8S_FILE_QUIET_WRITES)
                return;
        (void) madvise(s->stage + K8S_FILE_STAGE_KEEP, K8S_FILE_STAGE_SIZE - K8S_FILE_STAGE_KEEP,
                       MADV_DONTNEED);
        s->stage_backed = K8S_FILE_STAGE_KEEP;
        s->quiet_writes = 0;
}

static int k8s_file_write(LogSink *sink, CtrmonStream stream, const struct timespec *now,
                          const char *buf, size_t len, GError **error)
{
        K8sFileSink *s = k8s_file_sink_from(sink);
        g_autoptr(GError) first_error = NULL;
        const char *p = buf, *end = buf + len;
        int first_r = 0, r;

        if (len == 0)
                return 0;

        r = k8s_file_build_headers(s, stream, now, error);
        if (r < 0) {
                s->bytes_dropped += k8s_file_record_bytes(p, end);
                return r;
        }
        if (!s->stage) {
                void *m = mmap(NULL, K8S_FILE_STAGE_SIZE, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (m == MAP_FAILED) {
                        r = -errno;
                        s->bytes_dropped += k8s_file_record_bytes(p, end);
                        return ctrmon_set_error_errno(error, r,
                                                      "k8s-file log: cannot map the staging buffer");
                }
                s->stage = m;
        }
        s->stage_write_peak = 0;

        bool unlimited = s->size_max <= 0 && s->global_size_max <= 0;
        while (p < end) {
                if (unlimited) {
                        p = k8s_file_stage_lines(s, p, end);
                        if (p == end)
                                break;
                }

                /* One record the fast path could not take, with limits. */
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t line_len = nl ? (size_t) (nl - p) + 1 : (size_t) (end - p);
                int64_t rec = K8S_FILE_HEADER_LEN + (int64_t) line_len + (nl ? 0 : 1);

                /* 1. Global limit: may overshoot by one record, as conmon. */
                if (s->global_size_max > 0 && s->total >= s->global_size_max) {
                        s->bytes_dropped += k8s_file_record_bytes(p, end);
                        break;
                }

                /* 2. Per-file limit. Nothing to gain from truncating or
                 * rotating an empty file (conmon does, which rotates empty
                 * backups for records bigger than the limit). */
                if (s->size_max > 0 && s->cur > 0 && s->cur + rec > s->size_max) {
                        r = k8s_file_flush_iov(s, first_error ? NULL : &first_error);
                        if (r < 0) {
                                first_r = first_r ?: r;
                                s->bytes_dropped += k8s_file_record_bytes(p, end);
                                break;
                        }
                        /* On failure keep appending to the old file; the
                         * next record over the limit retries. */
                        r = k8s_file_do_reopen(s, first_error ? NULL : &first_error);
                        if (r < 0)
                                first_r = first_r ?: r;
                }

                bool copy = line_len <= K8S_FILE_COPY_MAX;
                size_t stage_need = K8S_FILE_HEADER_LEN + (copy ? line_len : 0) + 1;
                if (s->n_iov + 3 > K8S_FILE_IOV_BATCH || s->stage_len + stage_need > K8S_FILE_STAGE_SIZE) {
                        r = k8s_file_flush_iov(s, first_error ? NULL : &first_error);
                        if (r < 0) {
                                first_r = first_r ?: r;
                                s->bytes_dropped += k8s_file_record_bytes(p, end);
                                break;
                        }
                }

                /* 3. Append. */
                k8s_file_queue(s, nl ? s->header_full : s->header_partial, K8S_FILE_HEADER_LEN, true);
                k8s_file_queue(s, p, line_len, copy);
                if (!nl)
                        k8s_file_queue(s, &k8s_file_newline, 1, true);
                s->pending += (size_t) rec;
                s->cur += rec;
                s->total += rec;
                p += line_len;
        }

        r = k8s_file_flush_iov(s, first_error ? NULL : &first_error);
        if (r < 0)
                first_r = first_r ?: r;
        k8s_file_release_stage(s);

        if (first_r < 0) {
                g_propagate_error(error, g_steal_pointer(&first_error));
                return first_r;
        }
        return 0;
}

static int k8s_file_flush(G_GNUC_UNUSED LogSink *sink, G_GNUC_UNUSED GError **error)
{
        /* Records never wait across chunks: a trailing fragment was already
         * written as a P record, and conmon 2.2.1 adds no closing F. */
        return 0;
}

static int k8s_file_sync(LogSink *sink, GError **error)
{
        K8sFileSink *s = k8s_file_sink_from(sink);

        if (fsync(s->fd) < 0) {
                /* Not a syncable file (pipe, /dev/null...): nothing to do. */
                if (errno == EINVAL || errno == EROFS)
                        return 0;
                return ctrmon_set_error_errno(error, errno, "Failed to fsync log file %s",
                                              s->path);
        }
        return 0;
}

static int k8s_file_reopen(LogSink *sink, GError **error)
{
        return k8s_file_do_reopen(k8s_file_sink_from(sink), error);
}

static void k8s_file_free(LogSink *sink)
{
        K8sFileSink *s = k8s_file_sink_from(sink);

        if (!s)
                return;
        ctrmon_close_fd(&s->fd);
        if (s->stage)
                munmap(s->stage, K8S_FILE_STAGE_SIZE);
        g_free(s->path);
        g_strfreev(s->allowlist_dirs);
        g_free(s);
}

static const LogSinkOps k8s_file_ops = {
        .name = "k8s-file",
        .write = k8s_file_write,
        .flush = k8s_file_flush,
        .sync = k8s_file_sync,
        .reopen = k8s_file_reopen,
        .free = k8s_file_free,
};

/* On success the sink owns config->fd; on failure the caller still does.
 * config->fd < 0 means: open config->path here, as conmon does. */
int k8s_file_sink_new(const K8sFileConfig *config, LogSink **ret_sink, GError **error)
{
        _cleanup_close_ int own_fd = -1;
        K8sFileSink *s;
        struct stat st;
        int fd;

        g_return_val_if_fail(config, -EINVAL);
        g_return_val_if_fail(ret_sink, -EINVAL);

        if (!config->path || !config->path[0])
                return ctrmon_set_error(error, EINVAL, "k8s-file log: no path");

        fd = config->fd;
        if (fd < 0) {
                own_fd = open(config->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
                if (own_fd < 0)
                        return ctrmon_set_error_errno(error, errno, "Failed to open log file %s",
                                                      config->path);
                fd = own_fd;
        }

        /* Existing content counts towards the limits (spec §6.3). */
        if (fstat(fd, &st) < 0)
                return ctrmon_set_error_errno(error, errno, "Failed to stat log file %s",
                                              config->path);

        s = g_new0(K8sFileSink, 1);
        s->base.ops = &k8s_file_ops;
        s->path = g_strdup(config->path);
        s->size_max = config->size_max;
        s->global_size_max = config->global_size_max;
        s->rotate = config->rotate;
        s->max_files = config->max_files;
        s->allowlist_dirs = g_strdupv((char **) config->allowlist_dirs);
        s->cur = S_ISREG(st.st_mode) ? (int64_t) st.st_size : 0;
        s->total = s->cur;
        s->fd = own_fd >= 0 ? TAKE_FD(own_fd) : fd;

        *ret_sink = &s->base;
        return 0;
}

void k8s_file_sink_get_stats(LogSink *sink, K8sFileStats *ret_stats)
{
        K8sFileSink *s = k8s_file_sink_from(sink);

        g_return_if_fail(sink && sink->ops == &k8s_file_ops);
        g_return_if_fail(ret_stats);

        *ret_stats = (K8sFileStats) {
                .bytes_written = s->bytes_written,
                .bytes_dropped = s->bytes_dropped,
                .current_size = s->cur,
        };
}
