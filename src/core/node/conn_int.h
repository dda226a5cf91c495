/* The connection server's state: private to its files (conn.c, node_tls.c,
 * addrtab.c); everything else goes through conn.h. */
#ifndef DDKV_NODE_CONN_INT_H
#define DDKV_NODE_CONN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "node/conn.h"
#include "util/tls.h"

struct evconnlistener;
struct event;

struct conn_server {
    struct evconnlistener *listener;
    char client_addr[64];         /* as bound, with the real port */
    SSL_CTX *tls_client;          /* the client port's TLS context, NULL: plain TCP (node_tls.c) */
    uint64_t tls_fail_logged_ms;  /* handshake failures: last logged, */
    uint64_t tls_fail_unlogged;   /* and how many since were not (one line a second) */
    struct event *accept_retry;
    struct conn *conns;           /* most recently active first (conn_touch) */
    struct conn *conns_tail;      /* least recently active */
    uint32_t nconns;
    struct addr_table addrs;      /* per IP address (addrtab.c) */
    uint64_t out_total;           /* unsent reply bytes of all client connections */
    bool out_over;                /* out_total went over node_output_bytes; connections wait */
    uint32_t npaused;             /* connections whose requests wait (read_paused) */
    struct event *conn_resume;    /* out_total fell back: look at the waiting connections */
    struct event *conn_sweep;     /* every second: idle timeout, address table */
    struct conn *flushq;          /* given replies since the last conn_flush_replies (each holds a reference) */
    uint64_t conns_idle_closed, conns_cut_output, conns_evicted; /* /metrics */
    uint64_t next_conn_id;
};

#endif
