/* The cluster part (cluster.c, peer.c): member ids and the address book, the
 * cluster id and the data dir's identity, the peer transport. */
#ifndef DDKV_NODE_CLUSTER_H
#define DDKV_NODE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct node;
struct errbuf;
struct store;
struct store_batch;
struct raft_entry;
struct raft_msg;
struct cluster;
struct peer_transport;

/* A member of the cluster as this node knows it. */
struct member {
    uint64_t id;
    char name[64];
    char peer_addr[64];
    char client_addr[64]; /* learned from its peer hello; "" until then */
    uint64_t inc_proposed_ms; /* a leader proposed its incarnation record then (mod/members.c) */
    uint64_t inc_logged_ms;   /* a refusal of its incarnation was last logged then */
    uint64_t ver_logged_ms;   /* a refusal or hold-back for its release version was last logged then */
};

/* The part's state (cluster.c): made before anything runs (NULL: out of
 * memory), freed after cluster_stop. */
struct cluster *cluster_new(void);
void cluster_free(struct node *n);
/* What the others may know of it. The members known (the configuration's
 * and the addresses learned; *count of them); this data dir's incarnation;
 * whether this run founded the cluster; the peer address as bound ("" for
 * none); the peer transport (NULL: a one-node cluster without a peer port). */
struct member *cluster_members(struct node *n, size_t *count);
uint64_t cluster_incarnation(const struct node *n);
bool cluster_founding(const struct node *n);
const char *cluster_peer_addr(const struct node *n);
struct peer_transport *cluster_peers(const struct node *n);
/* This member's client port as bound, for its hello and its own entry
 * (node.c, once it listens). */
void cluster_set_client_addr(struct node *n, const char *addr);

/* Cluster identity and peers (cluster.c). */
uint64_t cluster_node_id(const char *name);
int cluster_parse(const char *spec, struct member *out, size_t *n, struct errbuf *eb);
/* The cluster id of a cluster founded by members m[0..n) (sorted, as
 * cluster_parse leaves them), with --cluster-token token (NULL or "": none)
 * and seed (0, or the first 8 bytes of the backup a cluster was restored
 * from). Never 0. */
uint64_t cluster_derive_id(const struct member *m, size_t n, const char *token, uint64_t seed);
/* A hash of the token kept in the data dir (0 for none), to tell at a restart
 * whether --cluster-token is the founding one without storing it. */
uint64_t cluster_token_fp(const char *token);
/* Stage the data dir's identity (raft_state): its member id, the cluster id,
 * the restore seed and the token's hash. */
void cluster_stage_identity(struct store_batch *b, uint64_t self_id, uint64_t cluster_id, uint64_t seed,
                            uint64_t token_fp);
/* Replace the address book in the state machine (meta m/ID) with m[0..nm),
 * in one synced write (backup_restore.c: a restored cluster has new members). */
int cluster_replace_book(struct store *st, const struct member *m, size_t nm, struct errbuf *eb);
/* Members, self id and cluster id from the config and the data dir. */
int cluster_load(struct node *n, struct errbuf *eb);
/* Peer transport: listen and add every other member. After the client
 * listener. leader_refused(n, id): member id's address refused a connection
 * (its process is gone; the replica's replica_leader_refused). */
int cluster_start(struct node *n, void (*leader_refused)(void *node, uint64_t id), struct errbuf *eb);
void cluster_stop(struct node *n);
struct member *cluster_member(struct node *n, uint64_t id);
/* A voter to hand leadership to: the first other one whose connection is up
 * (0: none). */
uint64_t cluster_transfer_target(struct node *n);
/* The leader's client address, NULL when no leader or its address is unknown. */
const char *cluster_leader_client_addr(struct node *n);
/* "NAME=PEER_ADDR", the context of a CONF entry that adds a member; 0 if too long. */
size_t cluster_ctx_encode(char *out, size_t cap, const char *name, const char *peer_addr);
/* A CONF entry was appended to the log (the member becomes reachable), or
 * applies (the address book in META is updated in the apply batch b). */
void cluster_on_appended(struct node *n, const struct raft_entry *e);
void cluster_on_applied(struct node *n, const struct raft_entry *e, struct store_batch *b);
/* Whether member id (name) may connect with data dir incarnation inc: the one
 * the cluster recorded, or none recorded yet (refusals logged). */
bool cluster_incarnation_ok(struct node *n, uint64_t id, const char *name, uint64_t inc);
/* Reload the address book after a snapshot replaced the state machine. */
int cluster_reload(struct node *n, struct errbuf *eb);
/* Whether raft message m may go to its member: not an entry or an image that
 * member's release cannot read (proto/version.h); held back ones are logged. */
bool cluster_may_send(struct node *n, const struct raft_msg *m);

#endif
