/* tests: a static sd_notify client for containers (busybox has none that
 * speaks unix datagrams); compiled by tests/podman/test_sdnotify.py and
 * tests/compat/scenarios_io.py. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
/* notify MESSAGE: one datagram to $NOTIFY_SOCKET (path sockets only). */
int main(int argc, char **argv)
{
        const char *path = getenv("NOTIFY_SOCKET");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (!path || argc != 2 || strlen(path) >= sizeof(sa.sun_path))
                return 2;
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return 3;
        size_t n = strlen(argv[1]);
        if (sendto(fd, argv[1], n, 0, (struct sockaddr *) &sa, sizeof(sa)) != (ssize_t) n)
                return 4;
        return 0;
}
