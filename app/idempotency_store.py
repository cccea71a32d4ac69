"""Remembered answers to requests sent with an Idempotency-Key, shared by every worker through MongoDB."""
import datetime
from dataclasses import dataclass

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from app.records import IDEMPOTENCY, IDEMPOTENCY_TTL_SECONDS, now

# A request still "running" after this long died with its worker: a retry may take its key over.
ABANDONED_AFTER = datetime.timedelta(seconds=60)
TTL = datetime.timedelta(seconds=IDEMPOTENCY_TTL_SECONDS)


@dataclass
class Claim:
    """The outcome of claiming a key: ours to run (record_id), or someone else's record (existing)."""

    record_id: ObjectId = None
    existing: dict = None


class IdempotencyStore:
    """Claim, complete and release idempotency keys, scoped per doctor."""

    def __init__(self, db):
        self._keys = db[IDEMPOTENCY]

    def claim(self, doctor_id, key, fingerprint):
        """Claim the key for a new request, or return the record already holding it."""
        for _ in range(3):  # a record can expire or be released between our insert and our read
            moment = now()
            record = {"_id": ObjectId(), "doctor_id": doctor_id, "key": key, "fingerprint": fingerprint,
                      "state": "running", "created_at": moment, "claimed_at": moment}
            try:
                self._keys.insert_one(record)
                return Claim(record_id=record["_id"])
            except DuplicateKeyError:
                existing = self._keys.find_one({"doctor_id": doctor_id, "key": key})
            if existing is None:
                continue
            if _aware(existing["created_at"]) < moment - TTL:
                self._keys.delete_one({"_id": existing["_id"], "created_at": existing["created_at"]})
                continue
            if self._take_over_abandoned(existing, fingerprint, moment):
                return Claim(record_id=existing["_id"])
            return Claim(existing=existing)
        return Claim(existing=self._keys.find_one({"doctor_id": doctor_id, "key": key}))

    def _take_over_abandoned(self, existing, fingerprint, moment):
        """Take a same-request key whose first run never finished; tell whether we got it."""
        if existing["state"] != "running" or existing["fingerprint"] != fingerprint:
            return False
        if _aware(existing["claimed_at"]) > moment - ABANDONED_AFTER:
            return False
        taken = self._keys.update_one(
            {"_id": existing["_id"], "state": "running", "claimed_at": existing["claimed_at"]},
            {"$set": {"claimed_at": moment}},
        )
        return taken.modified_count == 1

    def complete(self, record_id, status, body):
        """Remember the answer given to the request holding this key."""
        self._keys.update_one({"_id": record_id}, {"$set": {"state": "done", "status": status, "body": body}})

    def release(self, record_id):
        """Forget the key, so that the client may retry (after a server error)."""
        self._keys.delete_one({"_id": record_id})


def _aware(moment):
    """Return a datetime as UTC-aware (mongomock and some clients return naive UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)
