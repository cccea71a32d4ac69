"""Remembered answers to requests sent with an Idempotency-Key, shared by every worker through MongoDB."""
import datetime
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from app.store.exceptions import KeyAlreadyUsed, KeyContended, KeyTakenOver
from app.store.records import IDEMPOTENCY, IDEMPOTENCY_TTL_SECONDS, checked, now
from app.store.sealing import ValueStorage
from app.store.writes import BatchedWrites, CommandWrites

# A request still "running" after this long died with its worker: a retry may take its key over. Taking over
# is safe at any age on a replica set, since the first run can only store its answer, in its own transaction,
# while it still holds the claim; the delay only keeps two live runs from doing the same work twice.
ABANDONED_AFTER = datetime.timedelta(seconds=60)
TTL = datetime.timedelta(seconds=IDEMPOTENCY_TTL_SECONDS)


@dataclass(frozen=True)
class Answer:
    """What a request was answered, as stored to be given again: its status, its body and the headers that belong
    to it."""

    status: int
    body: Any
    headers: dict[str, str]


@dataclass(frozen=True)
class Claim:
    """A key this request holds: its record, its doctor, and the claim time that proves it is still ours."""

    record_id: ObjectId
    doctor_id: str
    claimed_at: datetime.datetime

    def is_ours(self) -> dict[str, Any]:
        """Return the filter that matches the key's record only while this request still holds it."""
        return {"_id": self.record_id, "doctor_id": self.doctor_id, "state": "running", "claimed_at": self.claimed_at}


@dataclass(frozen=True)
class HeldKey:
    """A key claimed for the request running now, and the store that keeps its answer."""

    store: "IdempotencyStore"
    claim: Claim

    def keep(self, answer: Answer, writes: CommandWrites | BatchedWrites | None = None) -> None:
        """Store the request's answer (among a unit of work's writes, if given); KeyTakenOver if no longer held."""
        self.store.complete(self.claim, answer, writes)

    def release(self) -> None:
        """Forget the key, so that a retry runs again."""
        self.store.release(self.claim)


class IdempotencyStore:
    """Claim, complete and release idempotency keys, scoped per doctor."""

    def __init__(self, db: Database[dict[str, Any]], values: ValueStorage) -> None:
        self._keys = db[IDEMPOTENCY]
        # How answers and request digests are stored: sealed and keyed (app.store.sealing.SealedValues) or plain.
        self._values = values

    def same_request(self, record: dict[str, Any], fingerprint: str) -> bool:
        """Tell whether the record was stored for the request with this fingerprint (its digest)."""
        return self._values.same_request(record, fingerprint)

    def answer_of(self, record: dict[str, Any]) -> Answer:
        """Return a record's kept answer, refusing one whose body was stored for another key."""
        return Answer(record["status"], checked(IDEMPOTENCY, record, self._values.answer_body),
                      record.get("headers") or {})

    def claim(self, doctor_id: str, key: str, fingerprint: str) -> Claim:
        """Claim the key for a new request, or raise KeyAlreadyUsed with the record already holding it."""
        for _ in range(3):  # a record can expire or be released between our insert and our read
            moment = now()
            record: dict[str, Any] = {"_id": ObjectId(), "doctor_id": doctor_id, "key": key,
                      **self._values.request_fingerprint(fingerprint), "state": "running", "created_at": moment,
                      "claimed_at": moment}
            try:
                self._keys.insert_one(record)
                return Claim(record["_id"], doctor_id, moment)
            except DuplicateKeyError:
                existing = self._keys.find_one({"doctor_id": doctor_id, "key": key})
            if existing is None:
                continue
            if _aware(existing["created_at"]) < moment - TTL:
                self._keys.delete_one({"_id": existing["_id"], "doctor_id": doctor_id,
                                       "created_at": existing["created_at"]})
                continue
            if self._take_over_abandoned(existing, fingerprint, moment):
                return Claim(existing["_id"], doctor_id, moment)
            raise KeyAlreadyUsed(existing)
        existing = self._keys.find_one({"doctor_id": doctor_id, "key": key})
        if existing is None:
            raise KeyContended()  # claimed and freed three times over: someone else is at it
        raise KeyAlreadyUsed(existing)

    def _take_over_abandoned(self, existing: dict[str, Any], fingerprint: str, moment: datetime.datetime) -> bool:
        """Take a same-request key whose first run never finished; tell whether we got it."""
        if existing["state"] != "running" or not self.same_request(existing, fingerprint):
            return False
        if _aware(existing["claimed_at"]) > moment - ABANDONED_AFTER:
            return False
        taken = self._keys.update_one(
            {"_id": existing["_id"], "doctor_id": existing["doctor_id"], "state": "running",
             "claimed_at": existing["claimed_at"]},
            {"$set": {"claimed_at": moment}},
        )
        return taken.modified_count == 1

    def complete(self, claim: Claim, answer: Answer, writes: CommandWrites | BatchedWrites | None = None) -> None:
        """Store the answer of the request holding the claim, or raise KeyTakenOver if it no longer holds it.

        With a unit of work's writes, the answer is written among them (in its transaction, or its batch).
        """
        sealed = self._values.answer(claim.record_id, claim.doctor_id, answer.body)
        done = {"$set": {"state": "done", "status": answer.status, **sealed, "headers": answer.headers}}
        held = (writes.update(IDEMPOTENCY, claim.is_ours(), done) if writes is not None
                else self._keys.update_one(claim.is_ours(), done).matched_count == 1)
        if not held:
            raise KeyTakenOver()

    def release(self, claim: Claim) -> None:
        """Forget a key whose request got no answer worth keeping (a server error), so that a retry runs again."""
        # Only while still running and ours: a commit whose reply was lost may have stored the answer after all.
        self._keys.delete_one(claim.is_ours())


def _aware(moment: datetime.datetime) -> datetime.datetime:
    """Return a datetime as UTC-aware (mongomock and some clients return naive UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)
