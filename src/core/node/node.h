/* The node daemon's entry point and configuration.
 *
 * The CLI (src/apps/cli) parses flags, env and config file into a node_config and
 * calls node_run, which owns the process until SIGTERM/SIGINT. */
#ifndef DDKV_NODE_NODE_H
#define DDKV_NODE_NODE_H

#include <stdbool.h>
#include <stdint.h>

struct errbuf;
/* --peer-tls: AUTO is on when the node has a certificate (tls_cert). */
enum node_peer_tls { NODE_PEER_TLS_AUTO = 0, NODE_PEER_TLS_OFF, NODE_PEER_TLS_ON };
/* --tls-client-cert: what the client port asks of a client's certificate. AUTO
 * is OPTIONAL when there is a CA (tls_ca) to check one against, else NONE. */
enum node_client_cert {
    NODE_CLIENT_CERT_AUTO = 0,
    NODE_CLIENT_CERT_NONE,     /* server certificate only */
    NODE_CLIENT_CERT_OPTIONAL, /* asked for; a client without one is served, a bad one refused */
    NODE_CLIENT_CERT_REQUIRED, /* a client without a certificate from the CA is refused */
};

struct node_config {
    const char *name;          /* node name, for logs and status ("n1") */
    const char *data_dir;      /* RocksDB directory, created if missing */
    const char *client_addr;   /* "host:port"; port 0 picks a free port (logged) */
    const char *http_addr;     /* ops HTTP "host:port", or NULL for none */
    const char *peer_addr;     /* peer "host:port"; NULL: taken from cluster's entry for name */
    const char *listen_peer_addr; /* where to bind the peer port when it is not peer_addr
                                     (behind NAT, a proxy, a container); NULL: peer_addr */
    const char *cluster;       /* "n1=host:port,n2=host:port,..." founding members' peer
                                  addresses; NULL: a one-node cluster */
    bool join;                 /* an empty data dir waits to be added (ddkv members add)
                                  instead of founding a cluster */
    const char *cluster_token; /* mixed into the cluster id at founding (NULL: none), so
                                  clusters founded apart never share an id; with one,
                                  members prove it on every peer connection */
    bool insecure_peers;       /* allow a plain peer port beyond loopback without a token */
    uint32_t snapshot_entries; /* snapshot and compact the log every this many applied entries */
    uint32_t watch_history_bytes; /* keys and values of recent changes kept for watchers */
    uint32_t max_frame_bytes;
    uint32_t max_key_bytes;
    uint32_t max_value_bytes;
    uint32_t max_connections;
    uint32_t frame_timeout_ms; /* a started frame must complete within this */
    uint32_t heartbeat_ms;        /* Raft tick */
    uint32_t election_timeout_ms; /* a multiple of heartbeat_ms, at least 2x */
    const char *log_level;     /* debug|info|warn|error */
    /* TLS (PEM files). With tls_cert and tls_key the client port speaks TLS
     * only; tls_ca is the cluster CA that peers' and clients' certificates
     * must chain to. NULL: plain TCP. */
    const char *tls_cert;
    const char *tls_key;
    const char *tls_ca;
    /* The ops HTTP port's HTTPS (PEM files; may be tls_cert/tls_key): NULL: plain HTTP. */
    const char *http_tls_cert;
    const char *http_tls_key;
    enum node_peer_tls peer_tls;         /* mutual TLS between members */
    enum node_client_cert tls_client_cert;
    /* PBKDF2 iterations of the password hashes this node makes (each hash
     * keeps its own count, so a change applies to new passwords). */
    uint32_t auth_hash_iterations;
    /* A member is healthy only within both of these of the cluster's commit
     * index (node/lag.h): entries it lacks, and the age of the oldest one. */
    uint32_t health_max_lag_entries;
    uint32_t health_max_lag_ms;
    /* Connection limits (conn.c; README "Connection limits"). */
    uint32_t max_conns_per_addr;  /* client connections from one IP address */
    uint32_t idle_timeout_ms;     /* close a client connection with nothing in flight after this; 0: never */
    uint32_t conn_output_bytes;   /* a connection's unsent replies over this: its requests wait (8x: cut) */
    uint32_t conn_inflight_max;   /* requests in flight per connection; more wait unread */
    uint32_t node_output_bytes;   /* all connections' unsent replies over this: only idle ones are read (2x: cut) */
};

/* Defaults for every field (data_dir stays NULL: the caller must set it). */
void node_config_defaults(struct node_config *cfg);

/* What `ddkv snapshot restore` builds a data dir from (backup_restore.c). */
struct restore_config {
    const char *file;          /* the backup (kv/backup_file.h) */
    const char *data_dir;      /* must be absent or empty */
    const char *name;          /* this member's name in the new cluster */
    const char *cluster;       /* the new cluster's members, "n1=host:port,..."; NULL: a
                                  one-node cluster of name (started without --cluster) */
    const char *cluster_token; /* NULL: none */
};

/* What restore did, for the CLI to print. */
struct restore_result {
    uint64_t index, term, revision, lamport, keys;
    uint64_t source_cluster_id, cluster_id;
    char sha256[65];
};

/* Verify the backup, then build a data dir from which `ddkv serve --name
 * NAME --cluster ... --cluster-token ...` starts a member of a new cluster
 * holding the backup's state (a new cluster id: the backup's checksum is mixed
 * in). ERR_CORRUPT for a damaged file and ERR_BAD_INPUT for bad arguments or a
 * data dir in use, both before anything is written; on any failure a data dir
 * this call created is removed again. eb says why. */
int node_restore(const struct restore_config *rc, struct restore_result *out, struct errbuf *eb);

/* Run the node until SIGTERM/SIGINT. Returns a process exit code: 0 on a clean
 * stop, 2 for a bad configuration, 1 for a runtime failure (message logged). */
int node_run(const struct node_config *cfg);

#endif
