"""The synchronous ddkv client: connection, failover, retries and every operation.

It keeps the guarantees of libddkv (include/ddkv/ddkv.h):

* one TCP (or TLS) connection to one member at a time, kept open across calls
  and reopened when it breaks; a refused or broken connection moves on to the
  next endpoint, NOT_LEADER to the leader the member names, UNAVAILABLE (no
  quorum, an election) is retried with a small exponential backoff until the
  call's deadline;
* writes carry (client_id, seq): seq grows by one per logical write and stays
  the same across that write's retries, so the cluster applies a retried write
  once and answers it with the original result. Only a write still in doubt at
  its deadline raises UnknownOutcome;
* every reply is checked: a frame over the size limit or bytes that are not a
  valid message raise ProtocolError, never hang and never buffer without bound.

A Client serialises its calls with a lock, so threads may share one (each call
waits for the previous); a Watch has its own connection.
"""
from __future__ import annotations

import json
import os
import random
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import _wire as W
from .errors import (BadRequest, Compacted, Error, Fenced, NotFound, PermissionDenied, ProtocolError,
                     Timeout, TooLarge, Unavailable, UnknownOutcome)

Bytesish = Union[bytes, bytearray, memoryview, str]

MAX_ENDPOINTS = 64
BACKOFF_MIN = 0.010
BACKOFF_MAX = 0.500
FREE_REDIRECTS = 3
DEFAULT_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 1.0
JOB_CHUNK_BYTES = 512 * 1024

_SESSION_ID = object()  # placeholders for a write's (client_id, seq), see Client._session
_SESSION_SEQ = object()
_CONSISTENCY = {"linearizable": W.LINEARIZABLE, "causal": W.CAUSAL, "stale": W.STALE}
_CMP_FIELDS = {"value": W.CMP_VALUE, "version": W.CMP_VERSION, "create_rev": W.CMP_CREATE_REV,
               "mod_rev": W.CMP_MOD_REV}
_CMP_OPS = {"==": W.CMP_EQ, "!=": W.CMP_NE, "<": W.CMP_LT, ">": W.CMP_GT}


def _b(x: Bytesish, what: str = "key") -> bytes:
    """Keys, values and names as bytes (str is encoded as UTF-8)."""
    if isinstance(x, str):
        return x.encode()
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise BadRequest(f"{what} must be bytes or str, not {type(x).__name__}")


def _u64(x: Any, what: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool) or x < 0 or x > W.U64_MAX:
        raise BadRequest(f"{what} must be an integer in 0..2^64-1")
    return x


def _text(x: Any) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, (bytes, bytearray)) else str(x)


# --- results ---------------------------------------------------------------


@dataclass(frozen=True)
class WriteResult:
    """A committed write or delete: its revision (log index) and Lamport time."""

    revision: int
    lamport: int


@dataclass(frozen=True)
class Value:
    """A key's value and metadata (a read, or one entry of a list)."""

    key: bytes
    value: bytes
    create_rev: int
    mod_rev: int
    version: int
    lamport: int

    @property
    def revision(self) -> int:
        """The revision of the key's last change (mod_rev)."""
        return self.mod_rev


@dataclass(frozen=True)
class Page:
    """One LIST page: entries sorted by key; more says keys remain after the last."""

    entries: List[Value]
    more: bool
    revision: int


@dataclass(frozen=True)
class TxnResult:
    """A transaction (or cas): whether every compare held, and its revision and Lamport time."""

    succeeded: bool
    revision: int
    lamport: int

    def __bool__(self) -> bool:
        return self.succeeded


@dataclass(frozen=True)
class Event:
    """One change seen by a watch: kind is "put" or "delete"."""

    kind: str
    key: bytes
    value: bytes
    create_rev: int
    mod_rev: int
    version: int
    lamport: int

    @property
    def revision(self) -> int:
        """The revision of this change (mod_rev)."""
        return self.mod_rev


@dataclass(frozen=True)
class Pong:
    node: str
    leader: Optional[str]
    term: int
    rtt: float  # seconds


@dataclass(frozen=True)
class Member:
    name: Optional[str]
    client_addr: Optional[str]
    peer_addr: Optional[str]
    role: Optional[str]
    healthy: bool


@dataclass(frozen=True)
class Status:
    """The answering member's own state and the members it knows (raw: every field sent)."""

    name: Optional[str]
    role: Optional[str]
    leader: Optional[str]
    client_addr: Optional[str]
    term: int
    commit: int
    applied: int
    lamport: int
    revision: int
    keys: int
    cluster_id: Optional[str]
    healthy: Optional[bool]
    members: List[Member]
    raw: Dict[str, Any] = field(repr=False)

    @property
    def version(self) -> Optional[str]:
        """The member's release, "X.Y.Z"."""
        v = self.raw.get("version")
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else None

    @property
    def cluster_version(self) -> str:
        """The cluster version the member has applied (a 0.1.0 member says none: "0.1.0")."""
        v = self.raw.get("cluster_version")
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else "0.1.0"


@dataclass(frozen=True)
class JobClaim:
    """A claimed job: present token to ack, nack or extend (it fences a stale worker)."""

    id: str
    token: int
    data_key: str
    attempts: int


@dataclass(frozen=True)
class Compare:
    """One transaction condition: the key's field compared (op) with operand.

    field is "value" (operand bytes), "version", "create_rev" or "mod_rev"
    (operand an int); op is "==", "!=", "<" or ">". An absent key has version,
    create_rev and mod_rev 0 and equals no value."""

    key: Bytesish
    field: str
    op: str
    operand: Union[Bytesish, int]

    def _wire(self) -> list:
        if self.field not in _CMP_FIELDS or self.op not in _CMP_OPS:
            raise BadRequest(f"compare: unknown field {self.field!r} or op {self.op!r}")
        f = _CMP_FIELDS[self.field]
        operand = _b(self.operand, "operand") if f == W.CMP_VALUE else _u64(self.operand, "operand")
        return [_b(self.key), f, _CMP_OPS[self.op], operand]


@dataclass(frozen=True)
class Put:
    """A transaction operation: set key to value (attached to lease, 0: none)."""

    key: Bytesish
    value: Bytesish
    lease: int = 0

    def _wire(self) -> list:
        return [W.OP_PUT, _b(self.key), _b(self.value, "value"), _u64(self.lease, "lease")]


@dataclass(frozen=True)
class Delete:
    """A transaction operation: remove key."""

    key: Bytesish

    def _wire(self) -> list:
        return [W.OP_DELETE, _b(self.key), b"", 0]


# --- TLS -------------------------------------------------------------------


def tls_context(ca: str, cert: Optional[str] = None, key: Optional[str] = None,
                check_name: bool = True) -> ssl.SSLContext:
    """An SSLContext for a TLS cluster: nodes must chain to ca (PEM) and, unless
    check_name is False, name the endpoint's host (an IP SAN for an address);
    cert and key (both or neither) are this client's certificate."""
    if (cert is None) != (key is None):
        raise BadRequest("tls: give both a client certificate and its key, or neither")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise BadRequest(f"tls: {e}") from None
    ctx.check_hostname = check_name
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


# --- endpoints and the connection -----------------------------------------


class _Endpoint:
    __slots__ = ("text", "host", "port")

    def __init__(self, text: str) -> None:
        s = text.strip()
        if s.startswith("["):
            close = s.find("]")
            if close < 0 or s[close + 1:close + 2] != ":":
                raise BadRequest(f"endpoint {s!r}: expected [ipv6]:port")
            host, port = s[1:close], s[close + 2:]
        else:
            if s.count(":") != 1:
                raise BadRequest(f"endpoint {s!r}: expected host:port ([::1]:7001 for IPv6)")
            host, port = s.split(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadRequest(f"endpoint {s!r}: expected host:port with a port in 1..65535")
        self.text, self.host, self.port = s, host, int(port)


class _Broken(Exception):
    """The connection failed. refused: before the node read anything (a TLS
    mismatch); sent=False: while sending (a node never acts on a partial frame)."""

    def __init__(self, msg: str, refused: bool = False, sent: bool = True) -> None:
        super().__init__(msg)
        self.refused, self.sent = refused, sent


class _TimedOut(Exception):
    """The deadline passed; sent says whether the whole request had left."""

    def __init__(self, msg: str, sent: bool) -> None:
        super().__init__(msg)
        self.sent = sent


class _Conn:
    """One connection to one endpoint: frames in and out, bounded by deadlines."""

    def __init__(self, sock: socket.socket, ep: _Endpoint, max_reply: int, tls: bool) -> None:
        self.sock, self.ep, self.max_reply, self.tls = sock, ep, max_reply, tls
        self.buf = bytearray()
        self.heard = False
        self.authed = False
        self.greeted = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _TimedOut(f"timed out sending to {self.ep.text}", sent=False)
        self.sock.settimeout(left)
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise _TimedOut(f"timed out sending to {self.ep.text}", sent=False) from None
        except (OSError, ssl.SSLError) as e:
            raise _Broken(f"sending to {self.ep.text}: {e}", sent=False) from None

    def _take(self, data: bytes) -> None:
        if not data:
            raise _Broken(f"{self.ep.text} closed the connection"
                          + (" in the middle of a reply" if self.buf else ""))
        if not self.tls and not self.heard and len(data) >= 2 and data[0] in (0x15, 0x16) and data[1] == 3:
            raise _Broken(f"{self.ep.text} speaks TLS: give tls= (the cluster's CA)", refused=True)
        self.heard = True
        self.buf += data

    def frame(self) -> Optional[bytes]:
        """The next complete frame body in the buffer, or None. Raises W.Garbled
        for a frame over the reply limit (never buffered)."""
        if len(self.buf) < 4:
            return None
        (n,) = W.FRAME_HEADER.unpack_from(self.buf)
        if n > self.max_reply:
            raise W.Garbled(f"{self.ep.text} sent a {n}-byte frame, over the client's {self.max_reply}-byte limit")
        if len(self.buf) < 4 + n:
            return None
        body = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        return body

    def fill(self, deadline: float) -> bool:
        """Read what arrives until deadline: True if bytes came, False if none in time."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ssl.SSLError as e:
            # An alert before the node said anything: it refused the handshake
            # (TLS 1.3 tells a client whose certificate it refuses only now), so
            # no request on this connection was read. Anything else (an EOF
            # without close_notify: a node that died) may follow a request it read.
            alert = "ALERT" in str(getattr(e, "reason", "") or "").upper()
            raise _Broken(f"reading from {self.ep.text}: {e}", refused=alert and not self.heard) from None
        except OSError as e:
            raise _Broken(f"reading from {self.ep.text}: {e}") from None
        self._take(data)
        return True

    def read_msg(self, deadline: float) -> Optional[list]:
        """The next message, or None if none arrived by deadline."""
        while True:
            body = self.frame()
            if body is not None:
                return W.decode(body)
            if not self.fill(deadline):
                return None

    def alive(self) -> bool:
        """Whether a kept-open connection is still up (the node may have closed it
        while idle). Bytes that arrived meanwhile answer nothing in flight."""
        try:
            self.sock.setblocking(False)
            while True:
                if not self.tls and not select.select([self.sock], [], [], 0)[0]:
                    return True
                try:
                    data = self.sock.recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    return True
                if not data:
                    return False
                self.heard = True
                self.buf += data
                while self.frame() is not None:
                    pass
        except (OSError, ssl.SSLError, W.Garbled):
            return False


# --- the client ------------------------------------------------------------


class Client:
    """A client of a ddkv cluster.

    >>> c = ddkv.Client(["127.0.0.1:7001", "127.0.0.1:7002"], timeout=5.0)
    >>> c.write("k", b"v").revision
    >>> c.read("k").value

    endpoints: "host:port" strings (or one comma-separated string); timeout: the
    default deadline of one whole call in seconds, retries and redirects
    included (every method takes timeout= to override it); user/password: for a
    cluster with auth enabled (every connection logs in before its first
    request); tls: an ssl.SSLContext (see ddkv.tls_context) for a TLS cluster.
    """

    def __init__(self, endpoints: Union[str, Sequence[str]] = "127.0.0.1:7001", timeout: float = DEFAULT_TIMEOUT,
                 user: Optional[str] = None, password: Optional[str] = None,
                 tls: Optional[ssl.SSLContext] = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 max_reply_bytes: int = W.DEFAULT_MAX_REPLY_BYTES, list_consistency: str = "linearizable") -> None:
        eps = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
        if not eps or len(eps) > MAX_ENDPOINTS:
            raise BadRequest(f"endpoints: 1..{MAX_ENDPOINTS} of them")
        self._eps = [_Endpoint(e) for e in eps]
        self._n_given = len(self._eps)
        if timeout <= 0 or connect_timeout <= 0:
            raise BadRequest("timeouts must be above 0")
        if list_consistency not in _CONSISTENCY:
            raise BadRequest(f"list_consistency {list_consistency!r}: linearizable, causal or stale")
        if tls is not None and not isinstance(tls, ssl.SSLContext):
            raise BadRequest("tls must be an ssl.SSLContext (see ddkv.tls_context)")
        if user is not None:
            if not 0 < len(user.encode()) <= W.AUTH_NAME_MAX or len((password or "").encode()) > W.AUTH_PASSWORD_MAX:
                raise BadRequest(f"credentials: a user name is 1..{W.AUTH_NAME_MAX} bytes, "
                                 f"a password at most {W.AUTH_PASSWORD_MAX}")
        self._opts = dict(timeout=timeout, user=user, password=password, tls=tls, connect_timeout=connect_timeout,
                          max_reply_bytes=max_reply_bytes, list_consistency=list_consistency)
        self.timeout = timeout
        self._connect_timeout = connect_timeout
        self._user, self._password, self._tls = user, password or "", tls
        self._max_reply = max_reply_bytes
        self._list_consistency = _CONSISTENCY[list_consistency]
        self._cur = 0
        self._conn: Optional[_Conn] = None
        self._lamport = 0
        self._seen_lamport = 0
        self.node_version = 0  # what the node last connected to said in WELCOME (0.1.0: said nothing)
        self.cluster_version = 0
        self._next_rid = 0
        self.client_id = random.SystemRandom().getrandbits(64) or 1  # 0 reads as "no session"
        self._seq = 0
        self._lock = threading.RLock()
        self.endpoint: Optional[str] = None  # "host:port" that answered the last call
        self._rng = random.Random(self.client_id)

    # -- lifecycle --

    def close(self) -> None:
        """Close the connection (the client reconnects if used again)."""
        with self._lock:
            self._disconnect()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _clone(self) -> "Client":
        """A client with the same endpoints and credentials and its own connection."""
        return Client([e.text for e in self._eps[:self._n_given]], **self._opts)

    @property
    def lamport(self) -> int:
        """The client's Lamport clock."""
        return self._lamport

    @property
    def seen_lamport(self) -> int:
        """The highest Lamport time of a committed change this client wrote or read."""
        return self._seen_lamport

    # -- connection management --

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _rotate(self) -> None:
        self._disconnect()
        self._cur = (self._cur + 1) % len(self._eps)

    def _backoff(self, state: List[float], deadline: float) -> None:
        b = state[0]
        t = min(b / 2 + self._rng.random() * b / 2, max(0.0, deadline - time.monotonic()))
        if t > 0:
            time.sleep(t)
        state[0] = min(b * 2, BACKOFF_MAX)

    def _connect_one(self, i: int, deadline: float) -> str:
        """Connect to endpoint i; "" on success, else why not."""
        ep = self._eps[i]
        until = min(time.monotonic() + self._connect_timeout, deadline)
        left = until - time.monotonic()
        if left <= 0:
            return f"connect {ep.text}: no time left"
        try:
            sock = socket.create_connection((ep.host, ep.port), timeout=left)
        except OSError as e:
            return f"connect {ep.text}: {e.strerror or e}"
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock.settimeout(max(0.001, until - time.monotonic()))
                sock = self._tls.wrap_socket(sock, server_hostname=ep.host)
        except (OSError, ssl.SSLError, ssl.CertificateError) as e:
            sock.close()
            return f"TLS handshake with {ep.text} failed: {e}"
        self._disconnect()
        self._conn = _Conn(sock, ep, self._max_reply, self._tls is not None)
        self._cur = i
        return ""

    def _connect_any(self, deadline: float) -> str:
        why = "no time left"
        for k in range(len(self._eps)):
            if time.monotonic() >= deadline:
                break
            why = self._connect_one((self._cur + k) % len(self._eps), deadline)
            if not why:
                return ""
        return why

    def _redirect(self, addr: Optional[bytes]) -> bool:
        """Follow NOT_LEADER to addr; False if there is nothing to follow."""
        if not addr:
            return False
        try:
            e = _Endpoint(_text(addr))
        except BadRequest:
            return False
        idx = next((i for i, x in enumerate(self._eps) if x.text == e.text), -1)
        if idx == self._cur and self._conn is not None:
            return False
        if idx < 0:
            if len(self._eps) < MAX_ENDPOINTS:
                self._eps.append(e)
                idx = len(self._eps) - 1
            elif self._n_given < MAX_ENDPOINTS and self._n_given != self._cur:
                idx = self._n_given
                self._eps[idx] = e
            else:
                return False
        self._disconnect()
        self._cur = idx
        return True

    def _tick(self) -> int:
        self._lamport += 1
        return self._lamport

    def _observe(self, m: list) -> None:
        self._lamport = max(self._lamport, m[1]) + 1

    def _saw(self, lamport: int) -> None:
        if self._seen_lamport < lamport < W.LAMPORT_MAX:
            self._seen_lamport = lamport

    def _exchange(self, mtype: int, fields: List[Any], deadline: float) -> Tuple[int, list]:
        """Send one request on the open connection and wait for its reply (an
        ERROR with request id 0 is the node refusing our frame). Raises _Broken,
        _TimedOut (not fully sent: sent=False on the exception) or W.Garbled."""
        conn = self._conn
        assert conn is not None
        self._next_rid += 1
        rid = self._next_rid
        try:
            frame = W.encode(mtype, self._tick(), rid, fields)
        except (TypeError, ValueError, OverflowError) as e:
            raise BadRequest(f"cannot encode the request: {e}") from None
        conn.send(frame, deadline)
        while True:
            m = conn.read_msg(deadline)
            if m is None:
                raise _TimedOut(f"no reply from {conn.ep.text} within {self.timeout:g} s", sent=True)
            self._observe(m)
            if m[2] == rid or (m[2] == 0 and m[0] == W.ERROR):
                return rid, m

    def _first_exchange(self, deadline: float) -> str:
        """What a fresh connection sends before its first request: HELLO with our
        versions (a 0.1.0 node answers BAD_REQUEST, not knowing it, and is taken
        for 0.1.0), then AUTH with the credentials, if any. Returns "" when done,
        or why the connection failed (it is closed: try another). Raises
        PermissionDenied/BadRequest when the cluster refuses the credentials
        (final: asking again changes nothing)."""
        conn = self._conn
        assert conn is not None
        if not conn.greeted:
            try:
                _, m = self._exchange(W.HELLO, [W.PROTOCOL_VERSION, W.CLIENT_VERSION], deadline)
            except _Broken as e:
                self._disconnect()
                if e.refused:  # a TLS port refused us: final, as for any request
                    raise Unavailable(str(e)) from None
                return str(e)
            except (_TimedOut, W.Garbled) as e:
                self._disconnect()
                return str(e)
            if m[0] == W.WELCOME and len(m) >= 6 and all(isinstance(x, int) for x in m[3:6]):
                self.node_version, self.cluster_version = m[4], m[5]
            elif m[0] == W.ERROR and len(m) > 3 and m[3] == W.WERR_BAD_REQUEST and m[2] != 0:
                self.node_version = self.cluster_version = W.VERSION_0_1_0
            elif m[0] == W.ERROR:
                # The node refused the connection (a plain client on a TLS port,
                # too many connections, shutting down): its words, then another.
                self._disconnect()
                text = _text(m[4]) if len(m) > 4 and isinstance(m[4], bytes) else f"error {m[3:4]}"
                return f"{conn.ep.text}: {text}"
            else:
                self._disconnect()
                return f"{conn.ep.text} answered HELLO with a malformed reply (type {m[0]})"
            conn.greeted = True
        if self._user is None or conn.authed:
            return ""
        try:
            _, m = self._exchange(W.AUTH, [self._user.encode(), self._password.encode()], deadline)
        except (_Broken, _TimedOut, W.Garbled) as e:
            self._disconnect()
            return str(e)
        if m[0] == W.AUTHED:
            conn.authed = True
            return ""
        self._disconnect()
        if m[0] == W.ERROR and len(m) > 3 and isinstance(m[3], int) and m[3] not in (
                W.WERR_UNAVAILABLE, W.WERR_NOT_LEADER, W.WERR_TIMEOUT):
            text = _text(m[4]) if len(m) > 4 and isinstance(m[4], bytes) else ""
            cls = BadRequest if m[3] == W.WERR_BAD_REQUEST else PermissionDenied
            raise cls(f"{conn.ep.text}: authenticating as {self._user!r}: {text}")
        return f"{conn.ep.text} did not authenticate the connection (type {m[0]})"

    def _call(self, mtype: int, reply_type: int, fields: List[Any], mutates: bool = False, once: bool = False,
              timeout: Optional[float] = None) -> list:
        """Run one request to completion: connect, send, wait, follow the leader and
        retry what is safe to retry until the deadline. Returns the reply's fields.

        A write (mutates) carries its session in fields, so it is sent again after
        a lost answer; once: a write without a session, never resent after it left."""
        with self._lock:
            if _SESSION_ID in fields:
                self._seq += 1
                fields = [self.client_id if x is _SESSION_ID else self._seq if x is _SESSION_SEQ else x
                          for x in fields]
            return self._call_locked(mtype, reply_type, fields, mutates, once, timeout)

    def _call_locked(self, mtype: int, reply_type: int, fields: List[Any], mutates: bool, once: bool,
                     timeout: Optional[float]) -> list:
        t = self.timeout if timeout is None else timeout
        if t <= 0:
            raise BadRequest("timeout must be above 0")
        deadline = time.monotonic() + t
        backoff = [BACKOFF_MIN]
        redirects = 0
        reached = False
        in_doubt = False  # a write fully sent whose fate was never learned
        relogged = False
        last = ""
        self.endpoint = None

        def unknown(why: str) -> UnknownOutcome:
            return UnknownOutcome(f"the write's outcome is unknown (it may or may not have been applied): {why}")

        while True:
            if time.monotonic() >= deadline:
                if in_doubt:
                    raise unknown(last)
                if not reached:
                    raise Unavailable(f"no endpoint reachable within {t:g} s (last error: {last or 'none'})")
                raise Unavailable(f"cluster unavailable for {t:g} s (last error: {last})")
            if self._conn is not None and not self._conn.alive():
                self._disconnect()
            if self._conn is None:
                why = self._connect_any(deadline)
                if why:
                    last = why
                    self._backoff(backoff, deadline)
                    continue
            reached = True
            try:
                why = self._first_exchange(deadline)
            except Error:
                if in_doubt:
                    raise unknown(last) from None
                raise
            if why:
                last = why
                self._rotate()
                self._backoff(backoff, deadline)
                continue
            conn = self._conn
            assert conn is not None
            t0 = time.monotonic()
            try:
                _, m = self._exchange(mtype, fields, deadline)
            except _Broken as e:
                last = str(e)
                self._disconnect()
                if e.refused:
                    raise Unavailable(last) from None
                if not e.sent:
                    self._rotate()
                    self._backoff(backoff, deadline)
                    continue
                if mutates and not once:
                    # It may have been applied: send it again elsewhere under the
                    # same (client_id, seq); the cluster applies it once.
                    in_doubt = True
                    self._rotate()
                    self._backoff(backoff, deadline)
                    continue
                if mutates:
                    raise unknown(last) from None
                self._cur = (self._cur + 1) % len(self._eps)
                self._backoff(backoff, deadline)
                continue
            except _TimedOut as e:
                self._disconnect()
                if mutates and (in_doubt or e.sent):
                    raise unknown(str(e)) from None
                raise Timeout(str(e)) from None
            except W.Garbled as e:
                self._disconnect()
                if mutates:
                    raise unknown(f"garbled reply from {conn.ep.text}: {e}") from None
                raise ProtocolError(f"garbled reply from {conn.ep.text}: {e}") from None
            self.rtt = time.monotonic() - t0
            self.endpoint = conn.ep.text
            if m[0] != W.ERROR:
                if m[0] == reply_type:
                    return m[3:]
                self._disconnect()
                why = f"{conn.ep.text} answered type {mtype} with type {m[0]}"
                if mutates:
                    raise unknown(why)
                raise ProtocolError(why)
            f = m[3:]
            if not f or not isinstance(f[0], int) or isinstance(f[0], bool) or \
                    (len(f) > 1 and f[1] is not None and not isinstance(f[1], bytes)) or \
                    (len(f) > 2 and f[2] is not None and not isinstance(f[2], bytes)):
                self._disconnect()
                why = f"garbled ERROR from {conn.ep.text}"
                if mutates:
                    raise unknown(why)
                raise ProtocolError(why)
            code = f[0]
            text = _text(f[1]) if len(f) > 1 and f[1] else W.WERR_NAMES.get(code, f"error {code}")
            leader = f[2] if len(f) > 2 else None
            conn_level = m[2] == 0
            last = f"{conn.ep.text}: {text}"
            if code == W.WERR_NOT_LEADER:
                # Refused before it was proposed: safe to send again, writes included.
                if self._redirect(leader):
                    redirects += 1
                    if redirects > FREE_REDIRECTS:
                        self._backoff(backoff, deadline)
                else:
                    self._rotate()
                    self._backoff(backoff, deadline)
                continue
            if code == W.WERR_UNAVAILABLE:
                if len(self._eps) > 1 or conn_level:
                    self._rotate()
                self._backoff(backoff, deadline)
                continue
            if code == W.WERR_UNAUTHENTICATED and self._user is not None and not relogged and not conn_level:
                relogged = True
                conn.authed = False
                continue
            if code == W.WERR_TIMEOUT and mutates and not once:
                in_doubt = True
                self._rotate()
                self._backoff(backoff, deadline)
                continue
            if conn_level:
                self._disconnect()  # the node closes after refusing a frame
            exc: Error
            if code == W.WERR_NOT_FOUND:
                exc = NotFound(last)
            elif code == W.WERR_TOO_LARGE:
                exc = TooLarge(last)
            elif code == W.WERR_COMPACTED:
                exc = Compacted(last, _last_number(text))
            elif code == W.WERR_FENCED:
                exc = Fenced(last)
            elif code == W.WERR_BAD_REQUEST:
                exc = BadRequest(last)
            elif code in (W.WERR_UNAUTHENTICATED, W.WERR_PERMISSION_DENIED):
                exc = PermissionDenied(last)
            elif code == W.WERR_TIMEOUT:
                exc = Timeout(last)
            else:
                # INTERNAL or a newer code: says nothing of whether a write took effect.
                exc = unknown(last) if mutates else Unavailable(last)
            raise exc

    def _session(self) -> List[Any]:
        """Where a write's (client_id, seq) go in its fields. _call fills them in
        under the client's lock when the call starts (the cluster refuses a seq
        lower than one it applied, so seqs must leave in order); seq is then kept
        across that write's retries."""
        return [_SESSION_ID, _SESSION_SEQ]

    def _bad_reply(self, what: str, mutates: bool) -> Error:
        self._disconnect()
        why = f"garbled reply from {self.endpoint}: expected {what}"
        return UnknownOutcome(why + "; the write's outcome is unknown") if mutates else ProtocolError(why)

    def _nums(self, f: list, n: int, what: str, mutates: bool, start: int = 0) -> List[int]:
        if len(f) < start + n or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= W.U64_MAX
                                         for x in f[start:start + n]):
            raise self._bad_reply(what, mutates)
        return f[start:start + n]

    # -- operations --

    def ping(self, timeout: Optional[float] = None) -> Pong:
        """Ask a member who it is and which leader it knows."""
        t0 = time.monotonic()
        f = self._call(W.PING, W.PONG, [], timeout=timeout)
        if len(f) < 3 or not isinstance(f[0], bytes) or not (f[1] is None or isinstance(f[1], bytes)):
            raise self._bad_reply("[node, leader|nil, term]", False)
        (term,) = self._nums(f, 1, "[node, leader|nil, term]", False, 2)
        return Pong(_text(f[0]), _text(f[1]) if f[1] is not None else None, term, time.monotonic() - t0)

    def read(self, key: Bytesish, consistency: str = "linearizable", after_lamport: int = 0,
             timeout: Optional[float] = None) -> Value:
        """Read a key; raises NotFound if it does not exist. consistency:
        "linearizable" (default), "causal" (any member that has applied what
        this client has seen, or after_lamport) or "stale"."""
        if consistency not in _CONSISTENCY:
            raise BadRequest(f"consistency {consistency!r}: linearizable, causal or stale")
        c = _CONSISTENCY[consistency]
        if c == W.CAUSAL and after_lamport == 0:
            after_lamport = self._seen_lamport
        k = _b(key)
        f = self._call(W.READ, W.VALUE, [k, c, _u64(after_lamport, "after_lamport")], timeout=timeout)
        if len(f) < 6 or not isinstance(f[1], bytes):
            raise self._bad_reply("[key, value, create_rev, mod_rev, version, lamport]", False)
        cr, mr, ver, lam = self._nums(f, 4, "[key, value, create_rev, mod_rev, version, lamport]", False, 2)
        self._saw(lam)
        return Value(k, f[1], cr, mr, ver, lam)

    def _change(self, mtype: int, reply: int, fields: List[Any], timeout: Optional[float]) -> WriteResult:
        f = self._call(mtype, reply, fields, mutates=True, timeout=timeout)
        lam, rev = self._nums(f, 2, "[lamport, revision]", True)
        self._saw(lam)
        return WriteResult(rev, lam)

    def write(self, key: Bytesish, value: Bytesish, lease: int = 0, timeout: Optional[float] = None) -> WriteResult:
        """Set key to value (attached to lease, 0: none). Applied exactly once
        across retries; UnknownOutcome if still in doubt at the deadline."""
        return self._change(W.WRITE, W.WRITTEN_AT,
                            [_b(key), _b(value, "value"), _u64(lease, "lease"), *self._session()], timeout)

    put = write

    def delete(self, key: Bytesish, timeout: Optional[float] = None) -> WriteResult:
        """Delete key; NotFound if it did not exist. Same outcome rules as write."""
        return self._change(W.DELETE, W.DELETED, [_b(key), *self._session()], timeout)

    def delete_prefix(self, prefix: Bytesish, timeout: Optional[float] = None) -> int:
        """Delete every key under prefix (b"": every key), in rounds of up to
        10,000 keys, each one write at its own revision; returns how many were
        deleted. Needs cluster version 0.2.0: an older cluster raises BadRequest
        saying so."""
        total = 0
        while True:
            try:
                f = self._call(W.DELETE_PREFIX, W.DELETED, [_b(prefix, "prefix"), 10000, *self._session()],
                               mutates=True, timeout=timeout)
            except BadRequest:
                if self.node_version and self.node_version < W.VERSION_0_2_0:
                    raise BadRequest("deleting by prefix needs cluster version 0.2.0; the leader runs ddkv 0.1.0, "
                                     "so the cluster runs at 0.1.0 until every member runs 0.2.0 or later") from None
                raise
            lam, rev, count = self._nums(f, 3, "[lamport, revision, count, more]", True)
            if len(f) < 4 or not isinstance(f[3], bool):
                raise self._bad_reply("[lamport, revision, count, more]", True)
            self._saw(lam)
            total += count
            if not f[3] or count == 0:
                return total

    def list_page(self, prefix: Bytesish = b"", start_after: Bytesish = b"", limit: int = 0,
                  timeout: Optional[float] = None) -> Page:
        """One page of keys starting with prefix, strictly after start_after (limit
        0: the node's default; the node may return fewer and set more)."""
        lc = self._list_consistency
        f = self._call(W.LIST, W.LIST_RESULT,
                       [_b(prefix, "prefix"), _b(start_after, "start_after"), _u64(limit, "limit"), lc,
                        self._seen_lamport if lc == W.CAUSAL else 0], timeout=timeout)
        what = "[entries, more, revision]"
        if len(f) < 3 or not isinstance(f[0], list) or not isinstance(f[1], bool):
            raise self._bad_reply(what, False)
        (rev,) = self._nums(f, 1, what, False, 2)
        entries = []
        for e in f[0]:
            if not isinstance(e, list) or len(e) < 6 or not isinstance(e[0], bytes) or not isinstance(e[1], bytes):
                raise self._bad_reply("entries [key, value, create_rev, mod_rev, version, lamport]", False)
            cr, mr, ver, lam = self._nums(e, 4, "entries of numbers", False, 2)
            self._saw(lam)
            entries.append(Value(e[0], e[1], cr, mr, ver, lam))
        return Page(entries, f[1], rev)

    def list_pages(self, prefix: Bytesish = b"", page_size: int = W.DEFAULT_LIST_LIMIT,
                   timeout: Optional[float] = None) -> Iterator[Page]:
        """Iterate over every page of keys with the prefix. Each page is its own call
        (with its own deadline); pages are not one snapshot."""
        after = b""
        while True:
            p = self.list_page(prefix, after, page_size, timeout=timeout)
            if not p.entries and p.more:
                raise ProtocolError(f"{self.endpoint} returned an empty LIST page with more set")
            yield p
            if not p.more:
                return
            after = p.entries[-1].key

    def list(self, prefix: Bytesish = b"", limit: Optional[int] = None, page_size: int = W.DEFAULT_LIST_LIMIT,
             timeout: Optional[float] = None) -> Iterator[Value]:
        """Iterate over the keys with the prefix in key order, page by page (at most limit)."""
        n = 0
        for p in self.list_pages(prefix, page_size if limit is None else min(page_size, limit), timeout):
            for e in p.entries:
                if limit is not None and n >= limit:
                    return
                n += 1
                yield e

    def txn(self, compares: Sequence[Compare] = (), success: Sequence[Union[Put, Delete]] = (),
            failure: Sequence[Union[Put, Delete]] = (), timeout: Optional[float] = None) -> TxnResult:
        """Apply a transaction atomically: if every compare holds, the success
        operations, else the failure ones (at most 128 of each). A write:
        exactly once across retries. A compare that fails is not an error:
        the result's succeeded is False."""
        for what, lst in (("compares", compares), ("success", success), ("failure", failure)):
            if len(lst) > 128:
                raise BadRequest(f"{len(lst)} {what}: at most 128")
        fields = [[c._wire() for c in compares], [o._wire() for o in success], [o._wire() for o in failure],
                  *self._session()]
        f = self._call(W.TXN, W.TXN_RESULT, fields, mutates=True, timeout=timeout)
        if not f or not isinstance(f[0], bool):
            raise self._bad_reply("[succeeded, lamport, revision]", True)
        lam, rev = self._nums(f, 2, "[succeeded, lamport, revision]", True, 1)
        self._saw(lam)
        return TxnResult(f[0], rev, lam)

    def cas(self, key: Bytesish, expected: Optional[Bytesish], value: Bytesish, lease: int = 0,
            timeout: Optional[float] = None) -> TxnResult:
        """Set key to value if its value is expected (None: if it does not exist).
        result.succeeded (also the result's truth) says whether it swapped."""
        cmp = Compare(key, "version", "==", 0) if expected is None else Compare(key, "value", "==", expected)
        return self.txn([cmp], [Put(key, value, lease)], [], timeout=timeout)

    # -- leases --

    def lease_grant(self, ttl: float, timeout: Optional[float] = None) -> Tuple[int, float]:
        """Grant a lease of ttl seconds: (lease id, granted ttl in seconds). Keys
        written with it are deleted when it expires or is revoked."""
        ms = int(round(ttl * 1000))
        if ms <= 0:
            raise BadRequest("a lease needs a ttl above 0")
        f = self._call(W.LEASE_GRANT, W.LEASE, [ms, *self._session()], mutates=True, timeout=timeout)
        lid, got = self._nums(f, 2, "[lease_id, ttl_ms]", True)
        if lid == 0:
            raise self._bad_reply("a lease id above 0", True)
        return lid, got / 1000.0

    def lease_keepalive(self, lease_id: int, timeout: Optional[float] = None) -> float:
        """Restart the lease's countdown; returns the ttl it now has (seconds).
        NotFound if it expired or was revoked."""
        if _u64(lease_id, "lease id") == 0:
            raise BadRequest("lease id 0 is no lease")
        f = self._call(W.LEASE_KEEPALIVE, W.LEASE, [lease_id], timeout=timeout)
        lid, ttl = self._nums(f, 2, "[lease_id, ttl_ms]", False)
        if lid != lease_id:
            raise self._bad_reply(f"a LEASE about lease {lease_id}", False)
        if ttl == 0:
            raise NotFound(f"lease {lease_id} is revoked")
        return ttl / 1000.0

    def lease_revoke(self, lease_id: int, timeout: Optional[float] = None) -> None:
        """Revoke the lease: it and every key attached to it go at one revision."""
        if _u64(lease_id, "lease id") == 0:
            raise BadRequest("lease id 0 is no lease")
        f = self._call(W.LEASE_REVOKE, W.LEASE, [lease_id, *self._session()], mutates=True, timeout=timeout)
        self._nums(f, 2, "[lease_id, ttl_ms]", True)

    def lease(self, ttl: float, revoke: bool = True) -> "KeptLease":
        """A context manager granting a lease and keeping it alive on a thread
        (its own connection) until the block ends; then revoked (revoke=True)."""
        return KeptLease(self, ttl, revoke)

    # -- watch --

    def watch(self, prefix: Bytesish = b"", from_rev: int = 0) -> "Watch":
        """Watch the keys with the prefix from revision from_rev on (0: the changes
        after now). The Watch is an iterator of Event on its own connection; it
        resumes from its last revision across failovers, without gap or duplicate."""
        return Watch(self._clone(), _b(prefix, "prefix"), _u64(from_rev, "from_rev"))

    # -- cluster --

    def status(self, timeout: Optional[float] = None) -> Status:
        """The answering member's state and the members it knows."""
        f = self._call(W.STATUS, W.STATUS_RESULT, [], timeout=timeout)
        if not f or not isinstance(f[0], dict):
            raise self._bad_reply("one map of status fields", False)
        raw = {_text(k): v for k, v in f[0].items()}

        def s(d: Dict[str, Any], k: str) -> Optional[str]:
            v = d.get(k)
            if v is None:
                return None
            if not isinstance(v, bytes):
                raise self._bad_reply(f"{k} as a string", False)
            return _text(v)

        def n(d: Dict[str, Any], k: str) -> int:
            v = d.get(k)
            if v is None:
                return 0
            if not isinstance(v, int) or isinstance(v, bool):
                raise self._bad_reply(f"{k} as a number", False)
            return v

        members = []
        mem = raw.get("members") or []
        if not isinstance(mem, list):
            raise self._bad_reply("members as an array", False)
        for x in mem:
            if not isinstance(x, dict):
                raise self._bad_reply("members as maps", False)
            d = {_text(k): v for k, v in x.items()}
            members.append(Member(s(d, "name"), s(d, "client_addr"), s(d, "peer_addr"), s(d, "role"),
                                  d.get("healthy") is True))
        h = raw.get("healthy")
        return Status(s(raw, "name"), s(raw, "role"), s(raw, "leader"), s(raw, "client_addr"), n(raw, "term"),
                      n(raw, "commit"), n(raw, "applied"), n(raw, "lamport"), n(raw, "revision"), n(raw, "keys"),
                      s(raw, "cluster_id"), h if isinstance(h, bool) else None, members, raw)

    def member_add(self, name: str, peer_addr: str, timeout: Optional[float] = None) -> int:
        """Add a member (started with --join) as a learner, promoted once caught up.
        Returns the change's log index (0: already a member with that address)."""
        if not name or not peer_addr:
            raise BadRequest("a member needs a name and a peer address")
        f = self._call(W.MEMBER_ADD, W.MEMBER_CHANGED, [_b(name), _b(peer_addr)], mutates=True, timeout=timeout)
        return self._nums(f, 1, "[index]", True)[0]

    def member_remove(self, name: str, timeout: Optional[float] = None) -> int:
        """Remove a member; NotFound if it is not one. Returns the change's log index."""
        if not name:
            raise BadRequest("a member needs a name")
        f = self._call(W.MEMBER_REMOVE, W.MEMBER_CHANGED, [_b(name)], mutates=True, timeout=timeout)
        return self._nums(f, 1, "[index]", True)[0]

    def leader_transfer(self, name: str = "", timeout: Optional[float] = None) -> str:
        """Hand leadership to the voter name ("": one the leader picks) and wait
        until a member names it leader; returns its name. Timeout if it did not move."""
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t
        f = self._call(W.LEADER_TRANSFER, W.LEADER_TRANSFERRING, [_b(name)], timeout=t)
        if not f or not isinstance(f[0], bytes) or not f[0]:
            raise self._bad_reply("[name, term]", False)
        (term,) = self._nums(f, 1, "[name, term]", False, 1)
        target = _text(f[0])
        while True:
            try:
                p = self.ping(timeout=max(0.05, deadline - time.monotonic()))
                if p.leader == target and p.term >= term:
                    return target
            except Unavailable:
                pass
            if time.monotonic() >= deadline:
                raise Timeout(f"leadership did not move to {target} within {t:g} s")
            time.sleep(0.02)

    # -- the job queue --

    def job_put(self, data_key: str, max_attempts: int = 3, name: Optional[str] = None,
                timeout: Optional[float] = None) -> str:
        """Queue a job whose input is data_key (under jobdata/), tried at most
        max_attempts times (1..100); returns its id. Applied once across retries."""
        dk = _b(data_key, "data_key")
        if not 0 < len(dk) < 256 or not 1 <= max_attempts <= 100 or (name is not None and len(_b(name)) >= 128):
            raise BadRequest("a job needs a data key (< 256 bytes), a name < 128 bytes and 1..100 attempts")
        fields: List[Any] = [dk, max_attempts, *self._session()]
        if name is not None:
            fields.append(_b(name))
        f = self._call(W.JOB_PUT, W.JOB, fields, mutates=True, timeout=timeout)
        if not f or not isinstance(f[0], bytes) or not f[0]:
            raise self._bad_reply("[id, revision]", True)
        return _text(f[0])

    def submit(self, data: Bytesish, name: str = "", algorithm: str = "stats", max_attempts: int = 3,
               timeout: Optional[float] = None) -> str:
        """Store data the way `ddkv job submit` does (jobdata/<16 hex>/c/<n> chunks
        and a meta record) and queue a job for it; returns the job id."""
        blob = _b(data, "data")
        prefix = f"jobdata/{os.urandom(8).hex()}/"
        chunks = 0
        for off in range(0, len(blob), JOB_CHUNK_BYTES):
            self.write(f"{prefix}c/{chunks:06d}", blob[off:off + JOB_CHUNK_BYTES], timeout=timeout)
            chunks += 1
        meta = {"algorithm": algorithm, "chunk_bytes": JOB_CHUNK_BYTES, "chunks": chunks, "name": name,
                "size": len(blob)}
        self.write(prefix + "meta", json.dumps(meta, sort_keys=True, separators=(",", ":")), timeout=timeout)
        return self.job_put(prefix, max_attempts, name or None, timeout=timeout)

    def job_data(self, data_key: str, timeout: Optional[float] = None) -> bytes:
        """A job's input: the chunks under a submit prefix (data_key ending in
        "/"), or the value of a plain key."""
        if data_key.endswith("/"):
            return b"".join(e.value for e in self.list(data_key + "c/", timeout=timeout))
        return self.read(data_key, timeout=timeout).value

    def _claimed(self, f: list, mutates: bool) -> JobClaim:
        what = "[id, token, data_key, attempts]"
        if len(f) < 4 or not isinstance(f[0], bytes) or not isinstance(f[2], bytes):
            raise self._bad_reply(what, mutates)
        self._nums(f, 1, what, mutates, 1)
        self._nums(f, 1, what, mutates, 3)
        return JobClaim(_text(f[0]), f[1], _text(f[2]), f[3])

    def claim(self, worker: str, visibility: float = 30.0, timeout: Optional[float] = None) -> Optional[JobClaim]:
        """Claim the oldest waiting job for visibility seconds (0.1 s .. 24 h); None
        when no job waits. Never resent once sent: a claim whose answer was lost
        simply expires (then UnknownOutcome)."""
        if not 0 < len(_b(worker)) < 64:
            raise BadRequest("a worker needs a name (< 64 bytes)")
        f = self._call(W.JOB_CLAIM, W.JOB_CLAIMED, [_b(worker), int(visibility * 1000)], mutates=True, once=True,
                       timeout=timeout)
        if not f:
            return None
        return self._claimed(f, True)

    def extend(self, job: JobClaim, visibility: float = 30.0, timeout: Optional[float] = None) -> JobClaim:
        """Keep the claim visibility seconds longer from now; returns the claim with
        its new token (the old one is fenced from then on). Fenced if lost."""
        f = self._call(W.JOB_EXTEND, W.JOB_CLAIMED,
                       [_b(job.id), _u64(job.token, "token"), int(visibility * 1000), *self._session()],
                       mutates=True, timeout=timeout)
        return self._claimed(f, True)

    def _settle(self, mtype: int, job: JobClaim, arg: str, result: Optional[bytes],
                timeout: Optional[float]) -> str:
        fields: List[Any] = [_b(job.id), _u64(job.token, "token"), _b(arg), *self._session()]
        if result is not None:
            fields.append(result)
        f = self._call(mtype, W.JOB_SETTLED, fields, mutates=True, timeout=timeout)
        if not f or not isinstance(f[0], bytes):
            raise self._bad_reply("[state]", True)
        return _text(f[0])

    def ack(self, job: JobClaim, result: Optional[Bytesish] = None, timeout: Optional[float] = None) -> str:
        """Complete the job, putting result (if given) at jobresult/<id> in the same
        transaction, which applies only while the token is the claim's. Fenced:
        the claim is no longer this token's; nothing was written."""
        return self._settle(W.JOB_ACK, job, "", None if result is None else _b(result, "result"), timeout)

    def nack(self, job: JobClaim, reason: str = "", timeout: Optional[float] = None) -> str:
        """Give the job back: returns "queued" (tried again) or "dead" (attempts used up)."""
        return self._settle(W.JOB_NACK, job, reason, None, timeout)


def _last_number(text: str) -> int:
    digits = ""
    for ch in reversed(text):
        if ch.isdigit():
            digits = ch + digits
        elif digits:
            break
    return int(digits) if digits else 0


# --- a lease kept alive -----------------------------------------------------


class KeptLease:
    """``with client.lease(ttl) as lease:`` grants a lease, keeps it alive every
    ttl/3 on a thread with its own connection, and revokes it at the end.
    lease.id is the id to write keys with; lease.lost is set (a threading.Event)
    if the cluster says the lease is gone; lease.error holds the last keepalive error."""

    def __init__(self, client: Client, ttl: float, revoke: bool = True) -> None:
        self._client, self._ttl, self._revoke = client, ttl, revoke
        self.id = 0
        self.ttl = 0.0
        self.lost = threading.Event()
        self.error: Optional[Error] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._keeper: Optional[Client] = None

    def __enter__(self) -> "KeptLease":
        self.id, self.ttl = self._client.lease_grant(self._ttl)
        self._keeper = self._client._clone()
        self._thread = threading.Thread(target=self._run, name=f"ddkv-lease-{self.id}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._keeper is not None
        period = max(0.05, self.ttl / 3)
        while not self._stop.wait(period):
            try:
                self._keeper.lease_keepalive(self.id, timeout=max(0.1, self.ttl / 3))
                period = max(0.05, self.ttl / 3)
            except NotFound as e:
                self.error = e
                self.lost.set()
                return
            except Error as e:  # try again sooner while there is time left
                self.error = e
                period = max(0.05, self.ttl / 10)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._keeper is not None:
            self._keeper.close()
        if self._revoke and not self.lost.is_set():
            try:
                self._client.lease_revoke(self.id)
            except NotFound:
                pass


# --- watch -------------------------------------------------------------------


class Watch:
    """An iterator over the changes to keys with a prefix, in revision order.

    Its position is (last revision delivered, how many of its events were
    delivered). When its member fails (the connection breaks, or it answers
    UNAVAILABLE or NOT_LEADER) it reconnects elsewhere with backoff and asks
    again from that revision, skipping the events of it already delivered, so
    every change is seen once with no gap. ``next_event(wait)`` returns None if
    nothing came within wait seconds; iterating blocks. Unavailable is raised
    (the watch goes on if called again) when no member served it for the
    client's timeout; Compacted, BadRequest and PermissionDenied are final."""

    def __init__(self, client: Client, prefix: bytes, from_rev: int) -> None:
        self._c = client
        self.prefix = prefix
        self.start_rev = from_rev
        self.last_rev = 0
        self._n_at_last = 0
        self._sent = False
        self._rid = 0
        self._sent_from = 0
        self._skip = 0
        self._sent_at = 0.0
        self._conn_events = 0
        self._backoff = [BACKOFF_MIN]
        self._compacted_answers = 0
        self._compacted_min = 0
        self._failed: Optional[Error] = None
        self._last = ""
        if from_rev == 0:
            # "From the next change" is pinned to a revision now, so a reconnect
            # before the first event cannot skip the changes made meanwhile.
            st = client.status()
            self.start_rev = st.applied + 1 if st.applied else 0
        now = time.monotonic()
        self._down_since = now
        if not self._send(now + client.timeout):
            client.close()
            raise Unavailable(f"no endpoint took the watch within {client.timeout:g} s "
                              f"(last error: {self._last or 'none'})")

    @property
    def revision(self) -> int:
        """The revision of the last event delivered (0: none yet)."""
        return self.last_rev

    def close(self) -> None:
        self._c.close()
        self._sent = False

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> Event:
        while True:
            ev = self.next_event(None)
            if ev is not None:
                return ev

    def _lost(self) -> None:
        now = time.monotonic()
        if not self._down_since or self._conn_events or (self._sent and now - self._sent_at >= self._c.timeout):
            self._down_since = now
        self._sent = False
        self._conn_events = 0
        self._skip = 0

    def _drop(self) -> None:
        self._c._rotate()
        self._lost()

    def _send(self, until: float) -> bool:
        """Connect (and log in) if needed and send WATCH from where the stream
        stands. False if no member took it by until."""
        c = self._c
        while True:
            if time.monotonic() >= until:
                return False
            if c._conn is not None and not c._conn.alive():
                c._disconnect()
            if c._conn is None:
                why = c._connect_any(until)
                if why:
                    self._last = why
                    c._backoff(self._backoff, until)
                    continue
            why = c._first_exchange(until)
            if why:
                self._last = why
                c._rotate()
                c._backoff(self._backoff, until)
                continue
            frm = self.last_rev if self.last_rev else self.start_rev
            conn = c._conn
            assert conn is not None
            c._next_rid += 1
            rid = c._next_rid
            try:
                conn.send(W.encode(W.WATCH, c._tick(), rid, [self.prefix, frm]), until)
            except (_Broken, _TimedOut) as e:
                self._last = str(e)
                c._rotate()
                c._backoff(self._backoff, until)
                continue
            self._sent = True
            self._rid = rid
            self._sent_from = frm
            self._skip = self._n_at_last if self.last_rev else 0
            self._sent_at = time.monotonic()
            self._conn_events = 0
            return True

    def _garbled(self, what: str) -> ProtocolError:
        e = ProtocolError(f"watch: {self._c._conn.ep.text if self._c._conn else '?'} {what}")
        self._drop()
        return e

    def next_event(self, wait: Optional[float] = None) -> Optional[Event]:
        """The next event, or None if none arrived within wait seconds (None: no bound)."""
        if self._failed is not None:
            raise self._failed
        c = self._c
        deadline = float("inf") if wait is None else time.monotonic() + wait
        while True:
            if not self._sent:
                now = time.monotonic()
                if not self._down_since:
                    self._down_since = now
                give_up = self._down_since + c.timeout
                if now >= give_up:
                    self._down_since = now  # the next call tries for another period
                    raise Unavailable(f"watch: no member served it for {c.timeout:g} s "
                                      f"(last error: {self._last or 'none'})")
                try:
                    ok = self._send(min(give_up, deadline))
                except (PermissionDenied, BadRequest) as e:
                    self._failed = e
                    raise
                if not ok:
                    if time.monotonic() >= deadline:
                        return None
                    continue
            conn = c._conn
            assert conn is not None
            try:
                m = conn.read_msg(min(deadline, time.monotonic() + 1.0))
            except _Broken as e:
                self._last = str(e)
                self._drop()
                continue
            except W.Garbled as e:
                raise self._garbled(f"sent a garbled frame: {e}") from None
            if m is None:
                if time.monotonic() >= deadline:
                    return None
                continue
            c._observe(m)
            ev = self._frame(m, deadline)
            if ev is not None:
                return ev

    def _frame(self, m: list, deadline: float) -> Optional[Event]:
        c = self._c
        conn_level = m[2] == 0 and m[0] == W.ERROR
        if m[2] != self._rid and not conn_level:
            raise self._garbled(f"sent type {m[0]} for request {m[2]} on the connection of watch request {self._rid}")
        f = m[3:]
        if m[0] == W.ERROR:
            return self._error(f, deadline)
        if m[0] != W.EVENT:
            raise self._garbled(f"answered WATCH with type {m[0]}")
        ok = (len(f) >= 7 and f[0] in (W.OP_PUT, W.OP_DELETE) and isinstance(f[1], bytes)
              and isinstance(f[2], bytes)
              and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= W.U64_MAX for x in f[3:7])
              and f[4] > 0)
        if not ok:
            raise self._garbled("sent a garbled EVENT (expected [kind, key, value, create_rev, mod_rev > 0, "
                                "version, lamport])")
        kind, key, value, cr, mr, ver, lam = f[:7]
        if not key.startswith(self.prefix):
            raise self._garbled("sent an event of a key outside the watched prefix")
        if mr < self._sent_from or mr < self.last_rev:
            raise self._garbled(f"sent an event of revision {mr}, before revision {max(self._sent_from, self.last_rev)}")
        self._conn_events += 1
        if mr == self.last_rev and self._skip:
            self._skip -= 1  # delivered before the reconnect
            return None
        if mr != self.last_rev and self._skip:
            raise self._garbled(f"replayed {self._n_at_last - self._skip} of the {self._n_at_last} events of "
                                f"revision {self.last_rev}, then revision {mr}")
        if mr == self.last_rev:
            self._n_at_last += 1
        else:
            self.last_rev = mr
            self._n_at_last = 1
        c._saw(lam)
        c.endpoint = c._conn.ep.text if c._conn else None
        self._down_since = 0.0
        self._backoff = [BACKOFF_MIN]
        self._compacted_answers = 0
        self._compacted_min = 0
        return Event("put" if kind == W.OP_PUT else "delete", key, value, cr, mr, ver, lam)

    def _error(self, f: list, deadline: float) -> None:
        c = self._c
        if not f or not isinstance(f[0], int) or isinstance(f[0], bool) or \
                (len(f) > 1 and f[1] is not None and not isinstance(f[1], bytes)) or \
                (len(f) > 2 and f[2] is not None and not isinstance(f[2], bytes)):
            raise self._garbled("sent a garbled ERROR")
        code = f[0]
        ep = c._conn.ep.text if c._conn else "?"
        text = _text(f[1]) if len(f) > 1 and f[1] else W.WERR_NAMES.get(code, f"error {code}")
        self._last = f"{ep}: {text}"
        bo_until = min(deadline, time.monotonic() + BACKOFF_MAX)
        if code == W.WERR_NOT_LEADER:
            if c._redirect(f[2] if len(f) > 2 else None):
                self._lost()
            else:
                self._drop()
            c._backoff(self._backoff, bo_until)
            return None
        if code == W.WERR_COMPACTED:
            oldest = _last_number(text)
            if oldest and (not self._compacted_min or oldest < self._compacted_min):
                self._compacted_min = oldest
            self._compacted_answers += 1
            if self._compacted_answers < len(c._eps):
                self._drop()
                return None
            frm = self._sent_from
            c._disconnect()
            self._lost()
            self._failed = Compacted(f"watch: revision {frm} is older than every member's history; oldest "
                                     f"revision available {self._compacted_min}", self._compacted_min)
            raise self._failed
        if code == W.WERR_UNAUTHENTICATED and c._user is not None:
            c._disconnect()
            self._lost()
            c._backoff(self._backoff, bo_until)
            return None
        if code in (W.WERR_UNAUTHENTICATED, W.WERR_NOT_FOUND, W.WERR_BAD_REQUEST, W.WERR_PERMISSION_DENIED,
                    W.WERR_TOO_LARGE):
            c._disconnect()
            self._lost()
            cls = {W.WERR_NOT_FOUND: NotFound, W.WERR_BAD_REQUEST: BadRequest,
                   W.WERR_TOO_LARGE: TooLarge}.get(code, PermissionDenied)
            self._failed = cls(self._last)
            raise self._failed
        # UNAVAILABLE, TIMEOUT, INTERNAL, newer codes: another member may serve it.
        self._drop()
        c._backoff(self._backoff, bo_until)
        return None
