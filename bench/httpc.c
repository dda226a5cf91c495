#include "httpc.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/clock.h"

int httpc_ms_left(uint64_t deadline_ns)
{
    uint64_t now = clock_mono_ns();
    return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

void httpc_close(struct httpc *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    h->len = 0;
}

void httpc_free(struct httpc *h)
{
    httpc_close(h);
    free(h->buf);
    h->buf = NULL;
    h->cap = 0;
}

const char *httpc_connect(struct httpc *h, const char *ep, uint64_t deadline_ns)
{
    char host[128];
    snprintf(host, sizeof host, "%s", ep);
    char *colon = strrchr(host, ':');
    if (!colon)
        return "endpoint without a port";
    *colon = 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return "cannot resolve the endpoint";
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return "socket failed";
    }
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        return "connect refused";
    }
    if (rc != 0) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (poll(&p, 1, httpc_ms_left(deadline_ns)) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
            close(fd);
            return "connect failed or timed out";
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    h->fd = fd;
    h->len = 0;
    return NULL;
}

const char *httpc_send(struct httpc *h, const char *p, size_t n, uint64_t deadline_ns)
{
    while (n) {
        ssize_t k = send(h->fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EINTR)
            return "send failed";
        struct pollfd pf = {.fd = h->fd, .events = POLLOUT};
        if (poll(&pf, 1, httpc_ms_left(deadline_ns)) != 1)
            return "send timed out";
    }
    return NULL;
}

const char *httpc_fill(struct httpc *h, uint64_t deadline_ns)
{
    if (h->cap - h->len < 65536) {
        if (h->cap >= HTTPC_MAX_BUFFER)
            return "response too large";
        size_t cap = h->cap ? h->cap * 2 : (size_t)1 << 16;
        char *b = realloc(h->buf, cap);
        if (!b)
            return "out of memory";
        h->buf = b;
        h->cap = cap;
    }
    for (;;) {
        ssize_t k = recv(h->fd, h->buf + h->len, h->cap - h->len, 0);
        if (k > 0) {
            if (!h->first_byte_ns)
                h->first_byte_ns = clock_mono_ns();
            h->len += (size_t)k;
            return NULL;
        }
        if (k == 0)
            return "connection closed";
        if (errno != EAGAIN && errno != EINTR)
            return "connection broken";
        struct pollfd pf = {.fd = h->fd, .events = POLLIN};
        int left = httpc_ms_left(deadline_ns);
        if (left == 0 || poll(&pf, 1, left) != 1)
            return "no answer in time";
    }
}

void httpc_consume(struct httpc *h, size_t n)
{
    memmove(h->buf, h->buf + n, h->len - n);
    h->len -= n;
}
