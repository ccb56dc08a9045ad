/*
 * loop_workers_listen_reuseport(): one listener of a SO_REUSEPORT group.
 * Numeric addresses and "localhost" only, so that it never blocks on a
 * resolver (DESIGN 5.4 says the same of the stream layer's listeners).
 */
#include "loop_workers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* host:port into *ss; -EINVAL if host is not an address this takes. */
static int parse_address(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);

    memset(ss, 0, sizeof *ss);
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof *in4;
        return 0;
    }
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') { /* [::1] */
        if (n - 2 >= sizeof buf)
            return -EINVAL;
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = 0;
        host = buf;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof *in6;
        return 0;
    }
    return -EINVAL;
}

int loop_workers_listen_reuseport(const char *host, int port, int backlog)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;

    if (!host || port < 0 || port > 65535 || backlog < 0)
        return -EINVAL;
    int err = parse_address(host, port, &ss, &len);
    if (err)
        return err;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 ||
        listen(fd, backlog ? backlog : SOMAXCONN) < 0) {
        err = -errno;
        close(fd);
        return err;
    }
    return fd;
}
