/* The wire contract: message type numbers, error codes and default limits.
 *
 * This header is the single source of truth for every number that crosses the
 * client and peer ports. docs/wire-format.md describes the fields of each
 * message; a change here is a protocol change and must be reflected there.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes holding one
 * msgpack array: [type, lamport, request_id, ...fields]. */
#ifndef DDKV_WIRE_H
#define DDKV_WIRE_H

#include <stdint.h>

/* The framing and the hello's first fields: only a change that an older
 * member could not even parse bumps it. What a member can read beyond that
 * is said by its release version (below), and what the cluster uses by the
 * cluster version agreed through the log (docs/wire-format.md, Versions). */
#define DDKV_PROTOCOL_VERSION 1

/* A release version on the wire: major << 32 | minor << 16 | patch. A peer
 * or client that sends none is v0.1.0, the first release. */
#define DDKV_VERSION_PACK(major, minor, patch) \
    (((uint64_t)(major) << 32) | ((uint64_t)(minor) << 16) | (uint64_t)(patch))
#define DDKV_VERSION_0_1_0 DDKV_VERSION_PACK(0, 1, 0)
#define DDKV_VERSION_0_2_0 DDKV_VERSION_PACK(0, 2, 0)

/* Message types. Numbers are allocated in ranges so modules stay apart:
 *   1..63    client protocol (kv, admin, coordination)
 *   64..95   peer protocol (Raft, snapshots)
 *   96..127  job queue module
 *   128..255 reserved
 * Types are < DDKV_MSG_TYPE_MAX so the dispatcher can be a flat table. */
enum ddkv_msg_type {
    DDKV_MSG_ERROR = 1,          /* [code, message, leader_client_addr|nil] */
    DDKV_MSG_PING = 2,           /* [] */
    DDKV_MSG_PONG = 3,           /* [node_name, leader_name|nil, term] */
    DDKV_MSG_READ = 4,           /* [key, consistency, after_lamport] */
    DDKV_MSG_VALUE = 5,          /* [key, value, create_rev, mod_rev, version, lamport] */
    DDKV_MSG_WRITE = 6,          /* [key, value, lease_id, client_id, seq] */
    DDKV_MSG_WRITTEN_AT = 7,     /* [lamport, revision] */
    DDKV_MSG_DELETE = 8,         /* [key, client_id, seq] */
    DDKV_MSG_DELETED = 9,        /* [lamport, revision] */
    DDKV_MSG_LIST = 10,          /* [prefix, start_after, limit] */
    DDKV_MSG_LIST_RESULT = 11,   /* [[[key, value, create_rev, mod_rev, version, lamport]...], more, revision] */
    DDKV_MSG_STATUS = 12,        /* [] */
    DDKV_MSG_STATUS_RESULT = 13, /* [{string: value...}] */
    DDKV_MSG_MEMBER_ADD = 14,    /* [name, peer_addr]: add as a learner, promoted once caught up */
    DDKV_MSG_MEMBER_REMOVE = 15, /* [name] */
    DDKV_MSG_MEMBER_CHANGED = 16, /* [index]: the change committed at index */
    /* Coordination (docs/wire-format.md has the field layouts). */
    DDKV_MSG_TXN = 17,           /* [compares, on_success, on_failure, client_id, seq] */
    DDKV_MSG_TXN_RESULT = 18,    /* [succeeded, lamport, revision] */
    DDKV_MSG_LEASE_GRANT = 19,   /* [ttl_ms, client_id, seq] */
    DDKV_MSG_LEASE = 20,         /* [lease_id, ttl_ms] (ttl 0: revoked) */
    DDKV_MSG_LEASE_KEEPALIVE = 21, /* [lease_id] -> LEASE with the full ttl again */
    DDKV_MSG_LEASE_REVOKE = 22,  /* [lease_id, client_id, seq] -> LEASE [id, 0] */
    DDKV_MSG_WATCH = 23,         /* [prefix, from_rev] -> EVENT... until the connection closes */
    DDKV_MSG_EVENT = 24,         /* [kind, key, value, create_rev, mod_rev, version, lamport] */
    DDKV_MSG_LEADER_TRANSFER = 25, /* [name] ("": the leader picks a voter) -> LEADER_TRANSFERRING */
    DDKV_MSG_LEADER_TRANSFERRING = 26, /* [name, term]: handing leadership to name has begun */

    /* The job queue (src/core/node/mod/jobs.c): jobs live in ordinary keys
     * (jobs/<id>, indexes jobq/ and jobc/), changed by transactions. */
    DDKV_MSG_JOB_PUT = 27,       /* [data_key, max_attempts, client_id, seq] -> JOB */
    DDKV_MSG_JOB = 28,           /* [id, revision] */
    DDKV_MSG_JOB_CLAIM = 29,     /* [worker, visibility_ms] -> JOB_CLAIMED */
    DDKV_MSG_JOB_CLAIMED = 30,   /* [id, token, data_key, attempts] ([] : no job waits) */
    DDKV_MSG_JOB_ACK = 31,       /* [id, token, result_key, client_id, seq] -> JOB_SETTLED, or ERROR FENCED */
    DDKV_MSG_JOB_NACK = 32,      /* [id, token, reason, client_id, seq] -> JOB_SETTLED, or ERROR FENCED */
    DDKV_MSG_JOB_EXTEND = 33,    /* [id, token, visibility_ms, client_id, seq] -> JOB_CLAIMED (a new token) */
    DDKV_MSG_JOB_SETTLED = 34,   /* [state]: "done", "queued" (to retry) or "dead" */

    /* Backups (src/core/node/mod/backup.c): a consistent image of the state
     * machine, streamed from the leader in order. The chunks are written as
     * the client reads them (TCP backpressure): the node never holds more
     * than about 1 MiB of one in memory. */
    DDKV_MSG_SNAPSHOT_SAVE = 35,  /* [] -> SNAPSHOT_META, then SNAPSHOT_CHUNK... (same request id) */
    DDKV_MSG_SNAPSHOT_META = 36,  /* [cluster_id, index, term, revision, lamport, keys, image_bytes, members] */
    DDKV_MSG_SNAPSHOT_CHUNK = 37, /* [offset, data, last]: image bytes, in order, until last */
    /* Authentication and permissions (src/core/node/mod/auth.c; docs/wire-format.md). */
    DDKV_MSG_AUTH = 40,          /* [user, password] -> AUTHED: this connection's identity */
    DDKV_MSG_AUTHED = 41,        /* [user, root, auth_enabled] */
    DDKV_MSG_AUTH_CHANGE = 42,   /* [op (enum ddkv_auth_op), name, arg, perm, client_id, seq] -> AUTH_CHANGED */
    DDKV_MSG_AUTH_CHANGED = 43,  /* [lamport, revision] */
    DDKV_MSG_AUTH_STATUS = 44,   /* [] -> AUTH_INFO */
    DDKV_MSG_AUTH_INFO = 45,     /* [auth_enabled, user|nil, root, roles (0.2)]: as the answering member sees this connection */
    DDKV_MSG_AUTH_LIST = 46,     /* [] -> AUTH_LIST_RESULT (root only when auth is enabled) */
    DDKV_MSG_AUTH_LIST_RESULT = 47, /* [[[user, [role...]]...], [[role, [[prefix, perm]...]]...], auth_enabled] */
    /* A client's first frame on a connection (since 0.2.0; a 0.1.0 node
     * answers ERROR BAD_REQUEST and keeps the connection, so the client
     * takes it for 0.1.0): [protocol_version, client_version] -> WELCOME. */
    DDKV_MSG_HELLO = 48,
    DDKV_MSG_WELCOME = 49,       /* [protocol_version, node_version, cluster_version, node_name] */
    /* Delete every key under a prefix, at most limit of them (in key order)
     * per request, all at one revision (needs cluster version 0.2.0):
     * [prefix, limit, client_id, seq] -> DELETED [lamport, revision, count, more]. */
    DDKV_MSG_DELETE_PREFIX = 50,
    /* A job's cancel or removal (src/core/node/mod/jobs.c): [id, what (0 cancel,
     * 1 delete the job and its result, 2 delete the result), client_id, seq]
     * -> JOB_SETTLED [state]: "cancelled", "deleted" or "done". */
    DDKV_MSG_JOB_CANCEL = 51,

    /* Peer protocol: Raft messages (layout in src/core/consensus/README.md). */
    DDKV_MSG_RAFT_APP = 64,             /* AppendEntries */
    DDKV_MSG_RAFT_APP_RESP = 65,
    DDKV_MSG_RAFT_VOTE = 66,
    DDKV_MSG_RAFT_VOTE_RESP = 67,
    DDKV_MSG_RAFT_PREVOTE = 68,
    DDKV_MSG_RAFT_PREVOTE_RESP = 69,
    DDKV_MSG_RAFT_HEARTBEAT = 70,
    DDKV_MSG_RAFT_HEARTBEAT_RESP = 71,
    DDKV_MSG_RAFT_SNAP = 72,            /* one InstallSnapshot chunk */
    DDKV_MSG_RAFT_SNAP_RESP = 73,
    DDKV_MSG_RAFT_TIMEOUT_NOW = 74,     /* leadership transfer */
    DDKV_MSG_RAFT_READ_INDEX = 75,
    DDKV_MSG_RAFT_READ_INDEX_RESP = 76,
    /* First frame on a peer connection (dialer -> acceptor):
     * [cluster_id, from_id, protocol_version, name, client_addr, peer_addr, nonce,
     * incarnation, release_version]; nonce (32 random bytes) only when the
     * dialer has a cluster token; release_version (DDKV_VERSION_PACK) since
     * 0.2.0, absent from a 0.1.0 member. */
    DDKV_MSG_PEER_HELLO = 77,
    /* With a cluster token, the acceptor's answer to the hello (the only
     * frame it ever sends): [acceptor_id, nonce, mac] (docs/wire-format.md). */
    DDKV_MSG_PEER_CHALLENGE = 78,
    /* The dialer's proof, its second frame: [mac]. Raft messages follow. */
    DDKV_MSG_PEER_AUTH = 79,
};

/* Sizes in the peer handshake: random nonces and HMAC-SHA256 tags. */
#define DDKV_PEER_NONCE_BYTES 32
#define DDKV_PEER_MAC_BYTES 32

#define DDKV_MSG_TYPE_MAX 256

/* Error codes carried by DDKV_MSG_ERROR. */
enum ddkv_wire_error {
    DDKV_WERR_NOT_LEADER = 1,  /* message field: leader's client address, when known */
    DDKV_WERR_NOT_FOUND = 2,
    DDKV_WERR_TOO_LARGE = 3,   /* frame, key or value over its limit */
    DDKV_WERR_BAD_REQUEST = 4, /* malformed message, unknown type, bad field */
    DDKV_WERR_UNAVAILABLE = 5, /* no quorum, storage failure (disk full), shutting down */
    DDKV_WERR_TIMEOUT = 6,
    DDKV_WERR_COMPACTED = 7,   /* revision older than the history kept */
    DDKV_WERR_PERMISSION_DENIED = 8,
    DDKV_WERR_INTERNAL = 9,
    DDKV_WERR_FENCED = 10,     /* a job token that is no longer the claim's */
    /* Auth is enabled and this connection has no valid identity (it never
     * sent AUTH, authenticated while auth was off, or its user was removed or
     * given a new password since): send AUTH, then the request again. A
     * refused AUTH (wrong user or password) and a request the identity may
     * not make are PERMISSION_DENIED. Neither request changed anything. */
    DDKV_WERR_UNAUTHENTICATED = 11,
};

/* AUTH_CHANGE operations: [op, name, arg, perm]. name is a user or role name
 * ("" for ENABLE and DISABLE); arg is the password (USER_ADD, USER_PASSWD:
 * the node stores only a salted hash), a role (USER_GRANT, USER_REVOKE) or a
 * key prefix (ROLE_GRANT, ROLE_REVOKE; "" is every key); perm is an enum
 * ddkv_perm (ROLE_GRANT) or 0. */
enum ddkv_auth_op {
    DDKV_AUTH_ENABLE = 1,
    DDKV_AUTH_DISABLE = 2,
    DDKV_AUTH_USER_ADD = 3,
    DDKV_AUTH_USER_REMOVE = 4,
    DDKV_AUTH_USER_PASSWD = 5,
    DDKV_AUTH_USER_GRANT = 6,
    DDKV_AUTH_USER_REVOKE = 7,
    DDKV_AUTH_ROLE_ADD = 8,
    DDKV_AUTH_ROLE_REMOVE = 9,
    DDKV_AUTH_ROLE_GRANT = 10,
    DDKV_AUTH_ROLE_REVOKE = 11,
};
/* What a role grants on a key prefix. */
enum ddkv_perm { DDKV_PERM_READ = 1, DDKV_PERM_READWRITE = 2 };
/* The built-in role that may do everything, and the user `ddkv auth enable`
 * requires (holding that role). */
#define DDKV_ROOT_ROLE "root"
#define DDKV_ROOT_USER "root"
/* User and role names: 1..64 bytes of [A-Za-z0-9_.@-]. Passwords: 1..1024 bytes. */
#define DDKV_AUTH_NAME_MAX 64u
#define DDKV_AUTH_PASSWORD_MAX 1024u

/* TXN compares: [key, field, cmp, operand]. field VALUE compares bytes,
 * the others numbers; an absent key has version, create_rev and mod_rev 0
 * (so "must not exist" is VERSION EQ 0) and never equals any VALUE. */
enum ddkv_cmp_field {
    DDKV_CMP_VALUE = 0,
    DDKV_CMP_VERSION = 1,
    DDKV_CMP_CREATE_REV = 2,
    DDKV_CMP_MOD_REV = 3,
};
enum ddkv_cmp_op { DDKV_CMP_EQ = 0, DDKV_CMP_NE = 1, DDKV_CMP_LT = 2, DDKV_CMP_GT = 3 };
/* TXN operations: [kind, key, value, lease_id]; EVENT kinds. */
enum ddkv_op_kind { DDKV_OP_PUT = 1, DDKV_OP_DELETE = 2 };

/* READ consistency levels. */
enum ddkv_consistency {
    DDKV_CONSISTENCY_LINEARIZABLE = 0,
    DDKV_CONSISTENCY_CAUSAL = 1,
    DDKV_CONSISTENCY_STALE = 2,
};

/* Default limits; each is configurable on the node (--max-frame-bytes, ...). */
#define DDKV_DEFAULT_MAX_FRAME_BYTES (4u * 1024 * 1024)
#define DDKV_DEFAULT_MAX_KEY_BYTES (4u * 1024)
#define DDKV_DEFAULT_MAX_VALUE_BYTES (1024u * 1024)
#define DDKV_DEFAULT_LIST_LIMIT 1000u
#define DDKV_MAX_LIST_LIMIT 10000u

/* Frame header: 4-byte big-endian body length. */
#define DDKV_FRAME_HEADER_BYTES 4u

/* Lamport times at or above this are refused as bad input, so that
 * max(local, received) + 1 can never wrap (see src/core/proto/lamport.c). */
#define DDKV_LAMPORT_MAX (UINT64_C(1) << 62)

#endif
