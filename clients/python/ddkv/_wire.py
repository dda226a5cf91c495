"""The wire contract, as include/ddkv/wire.h defines it (the single source of truth).

A frame is a 4-byte big-endian length followed by that many bytes of one
msgpack array ``[type, lamport, request_id, ...fields]``.
"""
from __future__ import annotations

import struct
from typing import Any, List

import msgpack

# Message types (enum ddkv_msg_type).
ERROR = 1
PING = 2
PONG = 3
READ = 4
VALUE = 5
WRITE = 6
WRITTEN_AT = 7
DELETE = 8
DELETED = 9
LIST = 10
LIST_RESULT = 11
STATUS = 12
STATUS_RESULT = 13
MEMBER_ADD = 14
MEMBER_REMOVE = 15
MEMBER_CHANGED = 16
TXN = 17
TXN_RESULT = 18
LEASE_GRANT = 19
LEASE = 20
LEASE_KEEPALIVE = 21
LEASE_REVOKE = 22
WATCH = 23
EVENT = 24
LEADER_TRANSFER = 25
LEADER_TRANSFERRING = 26
JOB_PUT = 27
JOB = 28
JOB_CLAIM = 29
JOB_CLAIMED = 30
JOB_ACK = 31
JOB_NACK = 32
JOB_EXTEND = 33
JOB_SETTLED = 34
AUTH = 40
AUTHED = 41
HELLO = 48          # [protocol_version, client_version] -> WELCOME (since 0.2.0)
WELCOME = 49        # [protocol_version, node_version, cluster_version, node_name]
DELETE_PREFIX = 50  # [prefix, limit, client_id, seq] -> DELETED [lamport, revision, count, more]

PROTOCOL_VERSION = 1


def version_pack(major: int, minor: int, patch: int) -> int:
    """A release version on the wire: major << 32 | minor << 16 | patch."""
    return (major << 32) | (minor << 16) | patch


def version_text(v: int) -> str:
    return f"{v >> 32}.{(v >> 16) & 0xffff}.{v & 0xffff}"


VERSION_0_1_0 = version_pack(0, 1, 0)
VERSION_0_2_0 = version_pack(0, 2, 0)
CLIENT_VERSION = VERSION_0_2_0  # this client's release (as ddkv --version's)

# Error codes (enum ddkv_wire_error).
WERR_NOT_LEADER = 1
WERR_NOT_FOUND = 2
WERR_TOO_LARGE = 3
WERR_BAD_REQUEST = 4
WERR_UNAVAILABLE = 5
WERR_TIMEOUT = 6
WERR_COMPACTED = 7
WERR_PERMISSION_DENIED = 8
WERR_INTERNAL = 9
WERR_FENCED = 10
WERR_UNAUTHENTICATED = 11

WERR_NAMES = {
    WERR_NOT_LEADER: "NOT_LEADER", WERR_NOT_FOUND: "NOT_FOUND", WERR_TOO_LARGE: "TOO_LARGE",
    WERR_BAD_REQUEST: "BAD_REQUEST", WERR_UNAVAILABLE: "UNAVAILABLE", WERR_TIMEOUT: "TIMEOUT",
    WERR_COMPACTED: "COMPACTED", WERR_PERMISSION_DENIED: "PERMISSION_DENIED",
    WERR_INTERNAL: "INTERNAL", WERR_FENCED: "FENCED", WERR_UNAUTHENTICATED: "UNAUTHENTICATED",
}

# TXN compares and operations.
CMP_VALUE, CMP_VERSION, CMP_CREATE_REV, CMP_MOD_REV = 0, 1, 2, 3
CMP_EQ, CMP_NE, CMP_LT, CMP_GT = 0, 1, 2, 3
OP_PUT, OP_DELETE = 1, 2

# READ consistency levels.
LINEARIZABLE, CAUSAL, STALE = 0, 1, 2

LAMPORT_MAX = 1 << 62
U64_MAX = (1 << 64) - 1
FRAME_HEADER = struct.Struct(">I")
# Largest reply frame accepted (DDKV_DEFAULT_MAX_REPLY_BYTES): above it the
# reply is treated as garbled rather than buffered.
DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024
DEFAULT_LIST_LIMIT = 1000
AUTH_NAME_MAX = 64
AUTH_PASSWORD_MAX = 1024


class Garbled(Exception):
    """A frame that is not a valid message (internal to the client)."""


def encode(mtype: int, lamport: int, rid: int, fields: List[Any]) -> bytes:
    """One frame: header and the msgpack array [type, lamport, rid, *fields]."""
    body = msgpack.packb([mtype, lamport, rid, *fields], use_bin_type=True)
    return FRAME_HEADER.pack(len(body)) + body


def decode(body: bytes) -> List[Any]:
    """The message in a frame body: [type, lamport, request_id, ...fields].

    Strings and binaries both come back as bytes. Raises Garbled for anything
    that is not one msgpack array starting with three unsigned integers."""
    try:
        m = msgpack.unpackb(body, raw=True, strict_map_key=False, use_list=True)
    except Exception as e:  # msgpack raises several types for bad input
        raise Garbled(f"not one msgpack value ({type(e).__name__})") from None
    if not isinstance(m, list) or len(m) < 3:
        raise Garbled("not an array [type, lamport, request_id, ...]")
    for i, what in enumerate(("type", "lamport", "request_id")):
        v = m[i]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > U64_MAX:
            raise Garbled(f"{what} is not an unsigned integer")
    if m[1] >= LAMPORT_MAX:
        raise Garbled(f"Lamport time {m[1]} out of range")
    return m
