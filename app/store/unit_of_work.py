"""Run one request's business steps so that a refusal or a failure leaves no trace, and its answer is kept with them."""
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import pymongo
from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import PyMongoError
from pymongo.mongo_client import MongoClient
from pymongo.write_concern import WriteConcern

from app.store.idempotency_keys import Answer, HeldKey
from app.store.records import AuditContext, Records
from app.store.sealing import ValueStorage
from app.store.writes import BatchedWrites, CommandWrites, SuccessPathMissed

log = logging.getLogger("clinic.db")

# Acknowledged means on a majority's journal: a 201 must survive a crash of any server that honours `j`.
DURABLE = WriteConcern("majority", j=True)
# What a transaction returns: for a request holding an Idempotency-Key, its Answer.
Outcome = TypeVar("Outcome")


class UnitOfWork:
    """Commit a transaction's writes together, or none of them.

    With transactions it runs inside one (retried by pymongo on transient errors); without (allowed for
    development only), its links are freed and its inserts deleted again when it raises.

    Where the server takes a client bulkWrite (MongoDB 8.0+), the writes go in one command before the commit
    (Records.writes_deferred): the steps take their conditional writes to match; if one did not, that transaction
    is aborted and the steps run again, one command each, to give the outcome they give.
    """

    def __init__(self, client: MongoClient[dict[str, Any]], db: Database[dict[str, Any]], values: ValueStorage,
                 transactional: bool, timeout_s: float, audit_context: AuditContext | None = None,
                 batched: bool = False, held_key: HeldKey | None = None) -> None:
        self._client = client
        self._db = db
        self._values = values
        self.transactional = transactional
        self.batched = batched
        self._timeout_s = timeout_s
        self._audit_context = audit_context
        # For a request sent with an Idempotency-Key: its answer is written among the steps' own writes, so the
        # answer and the work commit or vanish together.
        self.held_key = held_key
        self.answer_kept = False

    def run(self, transaction: Callable[[Records], Outcome]) -> Outcome:
        """Call transaction(records) and commit its writes, and the answer it returns if the request holds a key;
        roll back if it raises."""
        if self.transactional:
            outcome = self._run_in_transactions(transaction)
        else:
            outcome = self._run_compensated(transaction)
        self.answer_kept = self.held_key is not None
        return outcome

    def _outcome(self, transaction: Callable[[Records], Outcome], records: Records) -> Outcome:
        """Run the transaction's steps, and store the answer it returns among their writes."""
        outcome = transaction(records)
        if self.held_key is not None:
            assert isinstance(outcome, Answer), "a request holding a key answers with an Answer"
            self.held_key.keep(outcome, records.writes)
        return outcome

    def _run_in_transactions(self, transaction: Callable[[Records], Outcome]) -> Outcome:
        """Run in one batched transaction where the server allows, else (or missing) one command at a time."""
        # Not causally consistent: each transaction reads the latest committed data anyway, and a retry's first
        # command then carries no afterClusterTime read concern (which some servers refuse on a bulkWrite).
        with self._client.start_session(causal_consistency=False) as session:
            # One deadline for the whole unit, retries included, so an outage answers within the timeout;
            # ending the session stays outside it, so a transaction left open is still aborted.
            with pymongo.timeout(self._timeout_s):
                if self.batched:
                    try:
                        return self._transaction(session, transaction, batched=True)
                    except SuccessPathMissed:
                        pass  # aborted: the steps, one command at a time, tell which check it was
                return self._transaction(session, transaction, batched=False)

    def _transaction(self, session: ClientSession, transaction: Callable[[Records], Outcome],
                     batched: bool) -> Outcome:
        """Run the steps in one transaction, their writes batched or not; if they raise, it is aborted."""

        # An attempt whose commit was sent but not answered (the server restarted, the connection dropped) may have
        # committed: the driver then runs the transaction again. Its first audit record, written by every attempt
        # under one id, tells: if it is there, that attempt's outcome is this unit's, and nothing runs twice.
        audit_id, sent_to_commit = ObjectId(), list[Outcome]()

        def attempt(bound: ClientSession) -> Outcome:
            writes = BatchedWrites(self._client, self._db, bound) if batched else CommandWrites(self._db, bound)
            records = Records(self._db, self._values, bound, self._audit_context, writes, audit_id)
            if sent_to_commit and self._audit_context is not None and records.audited(audit_id):
                return sent_to_commit[-1]
            outcome = self._outcome(transaction, records)
            writes.flush()
            sent_to_commit.append(outcome)
            return outcome

        return session.with_transaction(attempt, write_concern=DURABLE)

    def _run_compensated(self, transaction: Callable[[Records], Outcome]) -> Outcome:
        """Run without a transaction, undoing the links and inserts made if it raises."""
        records = Records(self._db, self._values, audit_context=self._audit_context)
        try:
            with pymongo.timeout(self._timeout_s):
                return self._outcome(transaction, records)
        except BaseException:
            self._undo(records)
            raise

    def _undo(self, records: Records) -> None:
        """Undo what the steps wrote, under a deadline of its own; if that fails, say which ids were left."""
        try:
            with pymongo.timeout(self._timeout_s):
                records.undo()
        except PyMongoError as error:
            left = ",".join(f"{collection}/{document_id}" for collection, document_id, _ in records.inserted)
            log.error("rollback failed (%s); left behind: %s", type(error).__name__, left)
