"""Floods are refused per token subject, and per client address for requests without a valid token."""
import math
import time
from typing import Any

from limits import RateLimitItem, parse_many
from limits.strategies import MovingWindowRateLimiter
from pymongo.mongo_client import MongoClient

from app.http.refusals import TooManyRequests
from app.store.rate_limit_storage import rate_limit_storage
from config import Config


class RateLimits:
    """The limits each subject and each address without a valid token is held to, counted in one shared storage."""

    def __init__(self, windows: MovingWindowRateLimiter | None, per_subject: list[RateLimitItem],
                 per_address: list[RateLimitItem]) -> None:
        self._windows = windows
        self._per_subject = per_subject
        self._per_address = per_address

    def admit_subject(self, subject: str) -> None:
        """Count a request of a verified token's subject, refusing it (429) once over the subject's limits."""
        self._admit(self._per_subject, "subject", subject)

    def admit_address(self, address: str | None) -> None:
        """Count a request without a valid token from this address, refusing it (429) once over the limits."""
        self._admit(self._per_address, "address", address or "unknown")

    def _admit(self, items: list[RateLimitItem], kind: str, who: str) -> None:
        """Take one request from each window in turn; the first that has no room refuses it with its wait."""
        windows = self._windows
        if windows is None:
            return  # RATE_LIMIT=off: nothing is counted, and there are no limits to hold a request to
        for item in items:
            if not windows.hit(item, kind, who):
                raise TooManyRequests(_seconds_until_room(windows, item, kind, who))


def _seconds_until_room(windows: MovingWindowRateLimiter, item: RateLimitItem, kind: str, who: str) -> int:
    """Return the whole seconds, at least one, until the oldest request in this window leaves it."""
    reset_at, _ = windows.get_window_stats(item, kind, who)
    return max(1, math.ceil(reset_at - time.time()))


def build(config: Config, client: MongoClient[dict[str, Any]]) -> RateLimits:
    """Return the service's rate limits (none with RATE_LIMIT=off), over the configured storage."""
    if not config.RATE_LIMIT:
        return RateLimits(None, [], [])
    # A moving window: exact, where a fixed window would let twice the limit through across a window's edge.
    storage = rate_limit_storage(config.RATE_LIMIT_STORAGE_URI, client, config.MONGODB_DB)
    return RateLimits(MovingWindowRateLimiter(storage), parse_many(config.RATE_LIMIT_PER_SUBJECT),
                      parse_many(config.RATE_LIMIT_PER_ADDRESS))
