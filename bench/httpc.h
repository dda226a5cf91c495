/* A minimal blocking HTTP/1.1 keep-alive connection over a raw socket, with a
 * deadline on every step: what the bench tools need to drive etcd's JSON
 * gateway (ack_loop.c) and the hub (hub_agents.c) without a client library
 * adding its own latency. Responses are parsed by the callers. */
#ifndef DDKV_BENCH_HTTPC_H
#define DDKV_BENCH_HTTPC_H

#include <stddef.h>
#include <stdint.h>

struct httpc {
    int fd;                 /* -1: not connected */
    char *buf;              /* what was received and not consumed yet */
    size_t len, cap;
    uint64_t first_byte_ns; /* CLOCK_MONOTONIC when bytes first came since the last reset (0: not yet) */
};

#define HTTPC_INIT {.fd = -1}
#define HTTPC_MAX_BUFFER ((size_t)256 << 20)

/* Milliseconds until deadline_ns (0 once passed), for poll. */
int httpc_ms_left(uint64_t deadline_ns);
/* Close the connection; the buffer is kept for the next one. */
void httpc_close(struct httpc *h);
/* Close and free the buffer too. */
void httpc_free(struct httpc *h);
/* Connect to "host:port" (IPv4), TCP_NODELAY. NULL on success, else why. */
const char *httpc_connect(struct httpc *h, const char *ep, uint64_t deadline_ns);
const char *httpc_send(struct httpc *h, const char *p, size_t n, uint64_t deadline_ns);
/* Receive more into h->buf (growing it, up to HTTPC_MAX_BUFFER): NULL once
 * some bytes came, else why not. */
const char *httpc_fill(struct httpc *h, uint64_t deadline_ns);
/* Drop the first n buffered bytes. */
void httpc_consume(struct httpc *h, size_t n);

#endif
