"""Run the business steps of one request so that a refusal or a failure leaves no trace."""
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pymongo
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import PyMongoError
from pymongo.mongo_client import MongoClient
from pymongo.write_concern import WriteConcern

from app.store.errors import KeptWork
from app.store.records import AuditContext, Records
from app.store.sealing import PlainValues
from app.store.writes import BatchedWrites, CommandWrites, SuccessPathMissed

log = logging.getLogger("clinic.db")

# Acknowledged means on a majority's journal: a 201 must survive a crash of any server that honours `j`.
DURABLE = WriteConcern("majority", j=True)
# What the steps return when they succeed.
Outcome = TypeVar("Outcome")


class Answer(Protocol):
    """What a request sent with an Idempotency-Key hands the unit of work (app.http.idempotency.KeyedRequest)."""

    stored: bool

    def write(self, records: Records, outcome: object) -> None:
        """Store the answer to the steps' outcome (a result or a refusal that keeps its writes) among them."""


class UnitOfWork:
    """Commit the steps' writes together, or none of them.

    With transactions the steps run inside one (retried by pymongo on transient errors); without (allowed for
    development only), their links are freed and their inserts deleted again when they end in a refusal that
    rolls back, or in an error.

    Where the server takes a client bulkWrite (MongoDB 8.0+), a transaction's writes go in one command before
    the commit: the success path (the steps themselves, or a shorter path the caller gives) runs first, its
    conditional writes taken to match; if one did not, that transaction is aborted and the steps run again,
    one command each, to give the outcome they give.
    """

    def __init__(self, client: MongoClient[dict[str, Any]], db: Database[dict[str, Any]], values: PlainValues,
                 transactional: bool, timeout_s: float, audit_context: AuditContext | None = None,
                 batched: bool = False) -> None:
        self._client = client
        self._db = db
        self._values = values
        self.transactional = transactional
        self.batched = batched
        self._timeout_s = timeout_s
        self._audit_context = audit_context
        # Set for a request sent with an Idempotency-Key: an object whose write(records, outcome) stores the
        # request's answer among the steps' own writes, so the answer and the work commit or vanish together.
        self.answer: Answer | None = None

    def run(self, steps: Callable[[Records], Outcome],
            success_path: Callable[[Records], Outcome] | None = None) -> Outcome:
        """Call steps(records) and commit its writes; roll back when it raises, except on a refusal that keeps them.

        success_path(records), when given, does the steps' writes when everything goes as hoped, without their
        checks: it is tried first, in one bulkWrite, where the server takes one.
        """
        if self.transactional:
            outcome = self._run_in_transactions(steps, success_path or steps)
        else:
            outcome = self._run_compensated(steps)
        if self.answer is not None:
            self.answer.stored = True
        if isinstance(outcome, KeptWork):
            raise outcome
        return outcome

    def _outcome(self, steps: Callable[[Records], Outcome], records: Records) -> Outcome | KeptWork:
        """Run the steps, and store the answer with their writes; a refusal that keeps its writes is an outcome."""
        outcome: Outcome | KeptWork
        try:
            outcome = steps(records)
        except KeptWork as kept:
            outcome = kept
        if self.answer is not None:
            self.answer.write(records, outcome)
        return outcome

    def _run_in_transactions(self, steps: Callable[[Records], Outcome],
                             success_path: Callable[[Records], Outcome]) -> Outcome | KeptWork:
        """Run the success path in one batched transaction where the server allows, else (or failing) the steps."""
        # Not causally consistent: each transaction reads the latest committed data anyway, and a retry's first
        # command then carries no afterClusterTime read concern (which some servers refuse on a bulkWrite).
        with self._client.start_session(causal_consistency=False) as session:
            # One deadline for the whole unit, retries included, so an outage answers within the timeout;
            # ending the session stays outside it, so a transaction left open is still aborted.
            with pymongo.timeout(self._timeout_s):
                if self.batched:
                    try:
                        return self._transaction(session, success_path, BatchedWrites)
                    except SuccessPathMissed:
                        pass  # aborted: the steps, one command at a time, tell which check it was
                return self._transaction(session, steps, None)

    def _transaction(self, session: ClientSession, steps: Callable[[Records], Outcome],
                     batch: type[BatchedWrites] | None) -> Outcome | KeptWork:
        """Run the steps in one transaction, their writes batched or not; a refusal that rolls back aborts it."""

        def attempt(bound: ClientSession) -> Outcome | KeptWork:
            writes = CommandWrites(self._db, bound) if batch is None else batch(self._client, self._db, bound)
            records = Records(self._db, self._values, bound, self._audit_context, writes)
            outcome = self._outcome(steps, records)
            writes.flush()
            return outcome

        return session.with_transaction(attempt, write_concern=DURABLE)

    def _run_compensated(self, steps: Callable[[Records], Outcome]) -> Outcome | KeptWork:
        """Run the steps without a transaction, undoing their links and inserts on any error or rolled-back refusal."""
        records = Records(self._db, self._values, audit_context=self._audit_context)
        try:
            with pymongo.timeout(self._timeout_s):
                return self._outcome(steps, records)
        except BaseException:
            self._undo(records)
            raise

    def _undo(self, records: Records) -> None:
        """Undo what the steps wrote, under a deadline of its own; if that fails, say which ids were left."""
        try:
            with pymongo.timeout(self._timeout_s):
                records.undo()
        except PyMongoError as error:
            left = ",".join(f"{collection}/{document_id}" for collection, document_id in records.inserted)
            log.error("rollback failed (%s); left behind: %s", type(error).__name__, left)
