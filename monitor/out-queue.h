/* A non-blocking output queue in front of one fd: bytes are appended, written
 * as far as the fd takes them now, and the rest when it becomes writable (a
 * G_IO_OUT watch on the default main context). The owner hears when the queue
 * ran empty and when the peer failed. This is the one "write what you can,
 * keep the rest" mechanism of the monitor: API answers, API attach frames,
 * an exec's stdin and the container's stdin all use it.
 *
 * Re-entrancy: the callback may free the owner, and with it the queue (it
 * must then call out_queue_free). out_queue_append, out_queue_flush and the
 * watch return without touching the queue after calling back. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct OutQueue OutQueue;

typedef enum {
        OUT_QUEUE_DRAINED, /* everything appended so far is written */
        OUT_QUEUE_FAILED,  /* the fd refused a write (peer gone: EPIPE, ECONNRESET, ...) */
} OutQueueEvent;

/* `error` is the errno of the failed write (0 for DRAINED). */
typedef void (*OutQueueCallback)(OutQueue *q, OutQueueEvent event, int error, void *user_data);

typedef enum {
        OUT_QUEUE_PIPE,   /* write(2); the fd must be O_NONBLOCK */
        OUT_QUEUE_SOCKET, /* send(2) with MSG_DONTWAIT | MSG_NOSIGNAL */
} OutQueueKind;

/* The queue does not own `fd`; the owner closes it after out_queue_free. A
 * NULL callback means: nobody needs to know (the queue just stops on error). */
OutQueue *out_queue_new(int fd, OutQueueKind kind, OutQueueCallback cb, void *user_data);
void out_queue_free(OutQueue *q);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(OutQueue, out_queue_free)

/* Queue `len` bytes behind what is pending and write what the fd takes now.
 * After a FAILED callback the queue takes nothing more. */
void out_queue_append(OutQueue *q, const void *data, size_t len);
/* The same for several pieces that should leave together (a frame's header
 * and payload, a line and its newline). */
void out_queue_append_iov(OutQueue *q, const struct iovec *iov, int n);
/* Queue only, write nothing now (no callback): for a caller that writes
 * with out_queue_flush_until next. */
void out_queue_push_iov(OutQueue *q, const struct iovec *iov, int n);

/* Write what the fd takes now; DRAINED is called back when nothing is left,
 * also when nothing was pending. */
void out_queue_flush(OutQueue *q);

/* Blocking, bounded: poll and write until empty, failed or `deadline`
 * (g_get_monotonic_time() microseconds). For moments when the main loop no
 * longer runs (exit frames) or an answer must precede a hand-over. No
 * callback is made. Returns 0 when everything is written, -EAGAIN at the
 * deadline, or -errno of the failed write. */
int out_queue_flush_until(OutQueue *q, gint64 deadline);

size_t out_queue_pending(const OutQueue *q);
uint64_t out_queue_written(const OutQueue *q);
bool out_queue_failed(const OutQueue *q);

/* Forget what is pending (the reader will never read it). */
void out_queue_discard(OutQueue *q);
