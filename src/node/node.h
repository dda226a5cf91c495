/* The node daemon's entry point and configuration.
 *
 * The CLI (src/cli) parses flags, env and config file into a node_config and
 * calls node_run, which owns the process until SIGTERM/SIGINT. */
#ifndef DDKV_NODE_NODE_H
#define DDKV_NODE_NODE_H

#include <stdint.h>

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
    /* PBKDF2 iterations of the password hashes this node makes (each hash
     * keeps its own count, so a change applies to new passwords). */
    uint32_t auth_hash_iterations;
};

/* Defaults for every field (data_dir stays NULL: the caller must set it). */
void node_config_defaults(struct node_config *cfg);

/* Run the node until SIGTERM/SIGINT. Returns a process exit code: 0 on a clean
 * stop, 2 for a bad configuration, 1 for a runtime failure (message logged). */
int node_run(const struct node_config *cfg);

#endif
