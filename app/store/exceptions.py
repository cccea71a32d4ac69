"""What the store raises for its callers to handle; no HTTP here: app/http/error_handlers.py answers each."""
from typing import Any


class ReplicaSetRequired(Exception):
    """The server cannot run this service's transactions (a standalone server without ALLOW_STANDALONE)."""

    message = ("Replica set required: the database does not support transactions "
               "(set replication.replSetName and run rs.initiate())")

    def __init__(self) -> None:
        super().__init__(self.message)


class InvalidCursor(ValueError):
    """A page cursor not shaped like one this service issued."""


class KeyAlreadyUsed(Exception):
    """The request's Idempotency-Key already holds an answer (or a run in progress): replay it, run nothing."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__("idempotency key already claimed")
        self.record = record


class KeyContended(Exception):
    """The key was claimed and freed over and over while this request tried: another request is at it."""


class KeyTakenOver(Exception):
    """Another run took this request's key over as abandoned: its answer is the key's, and this run's work must not
    commit beside it."""


class UnreadableRecord(Exception):
    """A stored record this service cannot answer as it is: refused when read alone, left out of a list."""

    # What the log says of it, before its collection and id (never a value).
    logged = "stored record cannot be read"


class NotSealedForThisRecord(UnreadableRecord):
    """A stored record's sealed value belongs to another record (copied), to none when none should remain, or is no
    value this service sealed (another program's)."""

    logged = "stored record failed its integrity check (its sealed value is not bound to it)"


class UnreadableVersion(UnreadableRecord):
    """A stored record's version is none this service writes: text, a fraction, a bool, a list, below the first or
    beyond the last."""

    logged = "stored record has a version this service cannot read"
