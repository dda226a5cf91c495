"""ddkv: a pure-Python client for the ddkv replicated key-value coordination service.

    import ddkv
    c = ddkv.Client(["127.0.0.1:7001", "127.0.0.1:7002"], timeout=5.0)
    w = c.write("k", b"v")      # w.revision, w.lamport
    v = c.read("k")             # v.value (bytes), v.revision, v.lamport; raises ddkv.NotFound

Errors are exceptions named after the CLI's exit classes (see ddkv.errors).
"""
from . import _wire
from .client import (Client, Compare, Delete, Event, JobClaim, KeptLease, Member, Page, Pong, Put, Status,
                     TxnResult, Value, Watch, WriteResult, tls_context)
from .errors import (BadRequest, Compacted, Error, Fenced, NotFound, PermissionDenied, ProtocolError, Timeout,
                     TooLarge, Unavailable, UnknownOutcome)

__version__ = "0.2.0"

__all__ = [
    "Client", "Compare", "Delete", "Event", "JobClaim", "KeptLease", "Member", "Page", "Pong", "Put", "Status",
    "TxnResult", "Value", "Watch", "WriteResult", "tls_context",
    "Error", "NotFound", "Compacted", "Fenced", "BadRequest", "TooLarge", "PermissionDenied", "Unavailable",
    "Timeout", "UnknownOutcome", "ProtocolError",
]
