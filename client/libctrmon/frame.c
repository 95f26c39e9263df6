/* ctrmon-attach-v1 frames: 1 byte type, 4-byte big-endian length, payload.
 * Encoding and decoding are pure; the two writers only loop over write(). */
#include "ctrmon/client.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

void ctrmon_frame_encode_header(uint8_t header[CTRMON_FRAME_HEADER_SIZE], uint8_t type, uint32_t payload_len)
{
        header[0] = type;
        header[1] = (uint8_t) (payload_len >> 24);
        header[2] = (uint8_t) (payload_len >> 16);
        header[3] = (uint8_t) (payload_len >> 8);
        header[4] = (uint8_t) payload_len;
}

static uint32_t frame_get_be32(const uint8_t *p)
{
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

int ctrmon_frame_decode(const void *buf, size_t len, uint8_t *ret_type, const uint8_t **ret_payload,
                        uint32_t *ret_payload_len)
{
        const uint8_t *p = buf;
        if (len < CTRMON_FRAME_HEADER_SIZE)
                return 0;
        uint32_t n = frame_get_be32(p + 1);
        if (n > CTRMON_FRAME_MAX_PAYLOAD)
                return -EBADMSG;
        if (len - CTRMON_FRAME_HEADER_SIZE < n)
                return 0;
        *ret_type = p[0];
        *ret_payload = p + CTRMON_FRAME_HEADER_SIZE;
        *ret_payload_len = n;
        return (int) (CTRMON_FRAME_HEADER_SIZE + n);
}

int ctrmon_frame_write(int fd, uint8_t type, const void *payload, size_t len)
{
        if (len > CTRMON_FRAME_MAX_PAYLOAD)
                return -EMSGSIZE;
        uint8_t header[CTRMON_FRAME_HEADER_SIZE];
        ctrmon_frame_encode_header(header, type, (uint32_t) len);
        /* One writev: the monitor never sees a header without its payload
         * in the common case, and it costs one syscall. */
        struct iovec iov[2] = {
                { .iov_base = header, .iov_len = sizeof header },
                { .iov_base = (void *) payload, .iov_len = len },
        };
        int n_iov = len ? 2 : 1;
        struct iovec *v = iov;
        while (n_iov > 0) {
                ssize_t n = writev(fd, v, n_iov);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                while (n_iov > 0 && (size_t) n >= v->iov_len) {
                        n -= (ssize_t) v->iov_len;
                        v++;
                        n_iov--;
                }
                if (n_iov > 0) {
                        v->iov_base = (uint8_t *) v->iov_base + n;
                        v->iov_len -= (size_t) n;
                }
        }
        return 0;
}

int ctrmon_frame_write_resize(int fd, unsigned rows, unsigned cols)
{
        if (rows > 0xffff || cols > 0xffff)
                return -ERANGE;
        uint8_t p[4] = { (uint8_t) (rows >> 8), (uint8_t) rows, (uint8_t) (cols >> 8), (uint8_t) cols };
        return ctrmon_frame_write(fd, CTRMON_FRAME_RESIZE, p, sizeof p);
}

int ctrmon_frame_parse_exit(const uint8_t *payload, uint32_t len, int *ret_status)
{
        if (len < 4)
                return -EBADMSG;
        *ret_status = (int) (int32_t) frame_get_be32(payload);
        return 0;
}

int ctrmon_frame_parse_resize(const uint8_t *payload, uint32_t len, unsigned *ret_rows, unsigned *ret_cols)
{
        if (len < 4)
                return -EBADMSG;
        *ret_rows = (unsigned) payload[0] << 8 | payload[1];
        *ret_cols = (unsigned) payload[2] << 8 | payload[3];
        return 0;
}

int ctrmon_client_build_address(const char *path, int dir_fd, struct sockaddr_un *ret_addr, socklen_t *ret_len)
{
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        size_t len = path ? strlen(path) : 0;
        if (len == 0)
                return -EINVAL;
        if (len < sizeof addr.sun_path) {
                memcpy(addr.sun_path, path, len + 1);
        } else {
                if (dir_fd < 0)
                        return -ENAMETOOLONG;
                const char *slash = strrchr(path, '/');
                const char *name = slash ? slash + 1 : path;
                if (!*name)
                        return -EINVAL;
                int n = snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/%s", dir_fd, name);
                if (n < 0 || (size_t) n >= sizeof addr.sun_path)
                        return -ENAMETOOLONG;
                len = (size_t) n;
        }
        *ret_addr = addr;
        *ret_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1);
        return 0;
}
