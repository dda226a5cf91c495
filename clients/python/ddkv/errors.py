"""Exceptions, one class per exit class of the ``ddkv`` CLI.

====================  ====  ==========================================================
class                 exit  meaning
====================  ====  ==========================================================
``NotFound``          1     the answer is no: no such key / lease / member / job waiting
  ``Compacted``       1     the revision asked for is older than the history kept
  ``Fenced``          1     a job token that is no longer the claim's
``BadRequest``        2     the request as given must change (malformed, bad argument)
  ``TooLarge``        2     key, value or frame over the node's limit
  ``PermissionDenied`` 2    auth: wrong user or password, or the user may not do this
``Unavailable``       3     the operation did not complete: no quorum, no endpoint
  ``Timeout``         3     a read-only operation ran out of time
  ``UnknownOutcome``  3     a write was sent and no answer came: it may or may not be applied
  ``ProtocolError``   3     a node's reply was garbled (bad or oversized frame)
====================  ====  ==========================================================

Every one derives from ``ddkv.Error``; ``err.exit_code`` is the CLI's exit code.
"""
from __future__ import annotations


class Error(Exception):
    """Base of every ddkv client error."""

    exit_code: int = 3


class NotFound(Error):
    """The answer is no (CLI exit 1): the key, lease, member or job does not exist."""

    exit_code = 1


class Compacted(NotFound):
    """The revision asked for is older than every member's history.

    ``oldest`` is the oldest revision still available (0 if unknown)."""

    def __init__(self, msg: str, oldest: int = 0) -> None:
        super().__init__(msg)
        self.oldest = oldest


class Fenced(NotFound):
    """The job token is no longer the claim's: nothing was written; drop the result."""


class BadRequest(Error):
    """The node (or the client) refused the request as given (CLI exit 2)."""

    exit_code = 2


class TooLarge(BadRequest):
    """A key, value or frame over the node's limit."""


class PermissionDenied(BadRequest):
    """Auth refused: wrong credentials, none given, or not allowed (CLI exit 2)."""


class Unavailable(Error):
    """The operation did not complete (CLI exit 3): no endpoint, no quorum, an election."""

    exit_code = 3


class Timeout(Unavailable):
    """A read-only operation ran out of time."""


class UnknownOutcome(Unavailable):
    """A write left and its answer never came: it may or may not have been applied."""


class ProtocolError(Unavailable):
    """A node sent something that is not a valid reply (garbled or oversized frame)."""
