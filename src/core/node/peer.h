/* The peer transport: framed msgpack Raft messages between the members of one
 * cluster, over TCP, on the node's event loop.
 *
 * Shape. Each member dials one outbound connection to every peer it sends to
 * and uses it only for sending; connections it accepts are only for receiving.
 * So A -> B traffic always rides A's connection to B, there is never a pair of
 * simultaneous connects to deduplicate, and both directions behave alike.
 *
 * Handshake. The dialer's first frame is a hello:
 *   [DDKV_MSG_PEER_HELLO, lamport, 0, cluster_id, from_id, protocol_version,
 *    name, client_addr, peer_addr, nonce_d]
 * The acceptor refuses (logs both cluster ids, closes) a hello of another
 * cluster or protocol version; a transport whose cluster_id is 0 (a node
 * joining an existing cluster) adopts the first one it hears. name,
 * client_addr and peer_addr (optional strings) tell the acceptor who the
 * dialer is, where its clients connect (how a follower learns the client
 * address of a leader to name in NOT_LEADER) and where to answer it.
 *
 * Proof of membership (cfg.token, the cluster token). The hello carries a
 * fresh random nonce_d; the acceptor answers with the only frame it ever sends,
 *   [DDKV_MSG_PEER_CHALLENGE, lamport, 0, acceptor_id, nonce_a, mac_a]
 * and the dialer, having checked mac_a and that acceptor_id is the member it
 * dialled, sends [DDKV_MSG_PEER_AUTH, lamport, 0, mac_d]. Both tags are
 * HMAC-SHA256 under the token over (peer_auth_mac) a label naming the role
 * (acceptor or dialer), the cluster id, the dialer's and the acceptor's ids and
 * both nonces: neither can be replayed on another connection (fresh nonces)
 * or reflected into the other role (the label). Until the proof checks, the
 * hello has no effect: no id on the connection, no Lamport time observed, no
 * address learned (the hello callback), no cluster id adopted. A hello without
 * a nonce to a transport with a token, or with one to a transport without, is
 * refused. A refused proof is counted (refused_hellos) and logged at most once
 * a second. Without a token there is no challenge: the hello is taken at its
 * word (for loopback; see cluster_start's check).
 *
 * Every later frame on that connection must be a Raft message
 * (src/core/consensus/raft_msg.c) from that (proven) id to this node; anything else
 * is a bad frame and closes that connection only. Its Lamport time is a
 * member's: observed within the clock's member budget (proto/lamport.h),
 * clamped, never a reason to drop the message.
 *
 * Sending never blocks and memory is bounded. Messages wait in two queues per
 * peer: InstallSnapshot chunks (SNAP) in a low-priority one, everything else
 * (heartbeats, AppendEntries, votes, responses) in a high-priority one. The
 * writer moves high-priority frames into the socket's output buffer first, and
 * a snapshot frame only while that buffer holds less than PEER_SNAP_WATERMARK,
 * so a heartbeat waits behind at most that many bytes plus the one snapshot
 * chunk already started on the wire (frames are not interleaved). Keep Raft's
 * snapshot chunk size modest for that reason. When the queued bytes of a peer
 * (both classes) would pass queue_bytes_max the new message is dropped and
 * counted: Raft retransmits, and a stale backlog is worth nothing.
 *
 * TLS (cfg.tls): the dialer connects TCP, then runs the TLS handshake in a
 * filter bufferevent over that socket (so peer_flush can still push the
 * encrypted bytes out before the driver's fsync), checks that the server's
 * certificate names the member it dialled, and sends its hello. The acceptor
 * demands a client certificate from the cluster CA and checks that the hello
 * comes from the member the certificate names. A handshake that fails is
 * logged with OpenSSL's reason, once per attempt: the dialer's backoff paces
 * the attempts.
 *
 * Reconnects use exponential backoff with jitter between reconnect_min_ms and
 * reconnect_max_ms. The backoff resets once a connection has stayed up for
 * PEER_STABLE_MS: a dialer cannot see its hello accepted (the acceptor never
 * answers), and a completed connect or a drained write only proves the kernel
 * took the bytes, so a peer of another cluster that hangs up at once would
 * otherwise be redialled at the minimum interval forever.
 *
 * Threading: single-threaded, everything runs on the event_base given to
 * peer_transport_new; no function may be called from another thread. */
#ifndef DDKV_NODE_PEER_H
#define DDKV_NODE_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "consensus/raft.h"
#include "ddkv/wire.h"
#include "proto/lamport.h"
#include "util/err.h"

/* A snapshot frame enters the socket's output buffer only below this. */
#define PEER_SNAP_WATERMARK (64u << 10)
/* High-priority frames enter it only below this; the rest wait in the queue,
 * where they count against queue_bytes_max and can be dropped. */
#define PEER_OUT_HIGH (256u << 10)
/* A connection that lived this long resets the reconnect backoff. */
#define PEER_STABLE_MS 1000u

struct event_base;
struct peer_transport;

struct peer_config {
    uint64_t self_id;            /* this node's Raft id, nonzero */
    uint64_t cluster_id;         /* sent in the hello; another cluster's hello is refused */
    uint32_t max_frame_bytes;    /* largest inbound frame body; bigger closes the connection */
    size_t queue_bytes_max;      /* per peer, both queues; messages beyond it are dropped */
    uint32_t reconnect_min_ms;   /* first backoff; nonzero */
    uint32_t reconnect_max_ms;   /* backoff cap; >= reconnect_min_ms */
    char self_name[64];          /* sent in the hello (may be empty) */
    char self_client_addr[64];   /* sent in the hello (may be empty) */
    char self_peer_addr[64];     /* sent in the hello (may be empty) */
    uint64_t self_incarnation;   /* this data dir's incarnation, sent in the hello (0: none) */
    /* Mutual TLS (NULL: plain TCP). The context must verify the other side
     * and demand its certificate (tls_server_ctx with TLS_PEER_CERT_REQUIRED);
     * borrowed, it must outlive the transport. A dialled member's certificate,
     * and an accepted connection's, must then name the member: its common name
     * is a member name whose id (id_of_name) is the one dialled, or the one
     * the hello claims. */
    struct ssl_ctx_st *tls;
    uint64_t (*id_of_name)(const char *name);
    /* The cluster token (NULL or "": none), borrowed: it must outlive the
     * transport. With one, every connection proves it both ways (above). */
    const char *token;
};

/* HMAC-SHA256 under token over the handshake's transcript: "ddkv peer auth
 * v1", the role ('A' for the acceptor's tag, 'D' for the dialer's), then
 * cluster_id, dialer_id, acceptor_id (8 bytes big-endian each), nonce_d,
 * nonce_a. Exposed for tests and the fuzzer, which play a member. */
void peer_auth_mac(const char *token, char role, uint64_t cluster_id, uint64_t dialer_id,
                   uint64_t acceptor_id, const uint8_t nonce_d[DDKV_PEER_NONCE_BYTES],
                   const uint8_t nonce_a[DDKV_PEER_NONCE_BYTES], uint8_t out[DDKV_PEER_MAC_BYTES]);

/* Fills cfg with defaults (4 MiB frames, 16 MiB queues, 50..2000 ms backoff);
 * the caller sets self_id and cluster_id. */
void peer_config_defaults(struct peer_config *cfg);

/* Called for every valid inbound Raft message, after its Lamport time has been
 * observed on the clock. m and everything it points to are borrowed for the
 * call only (copy what must outlive it). The callback may call peer_send,
 * peer_add and peer_remove, but not peer_transport_free. */
typedef void (*peer_deliver_fn)(void *ud, const struct raft_msg *m);

/* Called for every accepted (with a token: proven) hello, with the cluster id (adopted, if this
 * transport had none), the dialer's name, client and peer address ("" when it
 * sent none; strings NUL-terminated, borrowed for the call). */
struct peer_hello {
    uint64_t cluster_id, from;
    char name[64], client_addr[64], peer_addr[64];
    uint64_t incarnation; /* the dialer's data-dir incarnation (0: an older member sent none) */
    uint64_t version;     /* its release version (proto/version.h; 0.1.0 if it sent none) */
};
/* Returns false to refuse the connection (the callback logs why); nothing of
 * a refused hello counts. */
typedef bool (*peer_hello_fn)(void *ud, const struct peer_hello *h);
void peer_set_hello_cb(struct peer_transport *t, peer_hello_fn fn);
/* The incarnation the proven inbound connection from member id announced
 * (0: none connected, or it sent none). */
uint64_t peer_incarnation_of(struct peer_transport *t, uint64_t id);
/* The release version the proven inbound connection from member id announced
 * (0: none connected). */
uint64_t peer_version_of(struct peer_transport *t, uint64_t id);
/* Close every inbound connection from member id (its hello no longer holds). */
void peer_drop_inbound(struct peer_transport *t, uint64_t id, const char *why);
/* Called when dialling peer `id` was refused (ECONNREFUSED): nothing listens
 * at its address, so its process is not running there. A connection that was
 * up and is lost is dialled again at once (after the backoff) to find out. */
typedef void (*peer_refused_fn)(void *ud, uint64_t id);
void peer_set_refused_cb(struct peer_transport *t, peer_refused_fn fn);
/* The peer address our hello announces (known once listening). */
void peer_set_self_peer_addr(struct peer_transport *t, const char *addr);

/* Create a transport on base. cfg is copied; base and clock are borrowed and
 * must outlive the transport (clock is ticked on every send and observed on
 * every accepted receive). Returns ERR_OK and *out (free with
 * peer_transport_free), or ERR_BAD_INPUT / ERR_NOMEM with eb filled. */
int peer_transport_new(struct event_base *base, const struct peer_config *cfg,
                       struct lamport *clock, peer_deliver_fn deliver, void *ud,
                       struct peer_transport **out, struct errbuf *eb);

/* Start accepting peer connections on addr ("host:port", port 0 lets the kernel
 * pick). Writes the bound address, with its real port, into bound[0..n) if
 * bound is non-NULL. Returns ERR_OK, ERR_BAD_INPUT (bad address), ERR_EXISTS
 * (already listening) or ERR_IO (bind/listen failed), with eb filled. */
int peer_listen(struct peer_transport *t, const char *addr, char *bound, size_t n,
                struct errbuf *eb);

/* Take fd, a connected stream socket, as an accepted peer connection (what
 * the listener does with each accept; tests and the fuzzer use a socketpair).
 * The transport owns fd from now on. ERR_OK, ERR_UNAVAILABLE (too many
 * inbound connections) or ERR_NOMEM; fd is closed on failure. */
int peer_accept_fd(struct peer_transport *t, int fd);

/* Add an outbound target. addr is resolved now and copied. Nothing is dialled
 * until the first message for id is queued. Returns ERR_OK, ERR_BAD_INPUT (id 0,
 * id == self_id, or addr unparsable), ERR_EXISTS (id already added) or
 * ERR_NOMEM. */
int peer_add(struct peer_transport *t, uint64_t id, const char *addr);

/* Connect to id now, before any message is queued (so it learns our hello:
 * name and client address). ERR_NOT_FOUND if id was never added. */
int peer_dial(struct peer_transport *t, uint64_t id);

/* Forget an outbound target: its connection is closed and its queued messages
 * are dropped. Inbound connections from id are left alone (that peer decides
 * when to hang up). Unknown id: nothing happens. */
void peer_remove(struct peer_transport *t, uint64_t id);

/* Queue m for m->to, stamped with a Lamport tick of the clock. m is borrowed for
 * the call (it is encoded at once). m->from must be self_id. Never blocks.
 * Returns ERR_OK (queued or written), ERR_NOT_FOUND (m->to was never added),
 * ERR_AGAIN (dropped: the peer's queue is full, connected or not), ERR_NOMEM, or
 * ERR_BAD_INPUT (m->type is not a Raft message type). */
int peer_send(struct peer_transport *t, const struct raft_msg *m);

/* Write what the connected peers' output buffers hold to their sockets now,
 * without waiting for the event loop: the driver calls this after queueing a
 * turn's messages and before its fsync, so followers receive AppendEntries
 * while the leader's disk works (thesis 10.2.1). Never blocks. */
void peer_flush(struct peer_transport *t);

/* Close every connection, drop every queued message and free t. NULL is fine. */
void peer_transport_free(struct peer_transport *t);

struct peer_stats {
    uint64_t sent;           /* frames handed to the socket (lost if it dies after) */
    uint64_t dropped;        /* peer_send refused for a full queue, plus queued frames
                                discarded by peer_remove */
    uint64_t received;       /* Raft messages delivered */
    uint64_t bad_frames;     /* inbound connections closed for bad input */
    uint64_t refused_hellos; /* hellos of another cluster or protocol version, or
                                whose proof of the cluster token failed */
    uint64_t connects;       /* outbound connections established */
    uint64_t disconnects;    /* established outbound connections lost */
    uint64_t queued_bytes;   /* now waiting in the queues (not yet in the socket buffer) */
};

/* Counters for peer id, or for the whole transport when id is 0 (the totals
 * also count inbound traffic from ids that were never added, and hellos
 * refused before an id was known). An unknown id gives zeros. */
void peer_get_stats(const struct peer_transport *t, uint64_t id, struct peer_stats *out);

#endif
