"""Query shapes over the clinic's collections; callers see 24-hex id strings, never ObjectIds."""
import datetime
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.database import Database

from app.store.cursors import (
    after_clause,
    after_undated_clause,
    encode_cursor,
    encode_undated_cursor,
    encode_version_cursor,
    is_undated,
)
from app.store.exceptions import UnreadableRecord
from app.store.sealing import PLAIN_SEARCH_FIELDS, STORAGE_FIELDS, ValueStorage
from app.store.showable import UNSHOWABLE, showable
from app.store.versions import FIRST_VERSION, version_of, versions_below
from app.store.writes import BatchedWrites, CommandWrites

log = logging.getLogger("clinic.db")

PATIENTS = "patients"
APPOINTMENTS = "appointments"
AUDIT = "audit"
IDEMPOTENCY = "idempotency_keys"
# The versions of each patient before its current one; the current version lives on the patient itself.
PATIENT_VERSIONS = "patient_versions"
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
# On a cluster sharded on doctor_id (docs/scaling.md) a read that names no one doctor goes to every shard. The few
# that must look across doctors carry one of these in their filter ($comment), so that the server's log and profiler,
# and tests/shard_routing.py, tell them from a read that lost its doctor_id by mistake.
WHOSE_RECORD = "clinic: whose record is this (a refused request: 403 or 404)"
EVERY_DOCTOR = "clinic: every doctor's records (a start's check or an operator command)"
ACROSS_DOCTORS = (WHOSE_RECORD, EVERY_DOCTOR)
# Kept for queries, never shown: the creation time (newest first); how its values are stored is app.store.sealing's.
# Kept for versions, never shown in a patient's body: its version (the ETag), and when and by whom it was last changed.
VERSION_FIELDS = ("version", "updated_at", "updated_by")
INTERNAL_PATIENT_FIELDS = ("_id", "doctor_id", "created_at", *VERSION_FIELDS)
# An appointment's own fields besides its ids. Another program (the clinic's scheduler) may have stored anything
# there, or nothing: they are shown as stored. Whatever else it stored is not shown.
APPOINTMENT_FIELDS = ("date", "reason")
# An appointment's date as this service stores it: a date, not a list holding one. Lists show these appointments
# first, by (date, _id); those another program dated otherwise (text, a number, null, none) follow by _id.
DATED = {"$type": "date", "$not": {"$type": "array"}}
# What a listing returns: one page of items as callers see them, and the cursor of the next page (None on the last).
Page = tuple[list[dict[str, Any]], str | None]
# What a step records in the audit trail: (action, outcome, targets) or (action, outcome, targets, changed fields),
# the outcome in words ("created", "done", ...), stored as the status AuditContext.outcomes gives it.
AuditEvent = tuple[str, str, dict[str, Any]] | tuple[str, str, dict[str, Any], list[str]]


def object_id(hex_id: str) -> ObjectId:
    """Convert a validated 24-hex string to an ObjectId."""
    return ObjectId(hex_id)


def public_patient(stored: dict[str, Any], values: ValueStorage) -> dict[str, Any]:
    """Shape a stored patient as callers see it: string ids and its own fields, opened by values."""
    return {"_id": str(stored["_id"]), "doctor_id": stored["doctor_id"],
            **values.patient_fields(stored, INTERNAL_PATIENT_FIELDS)}


def patient_record(stored: dict[str, Any], values: ValueStorage) -> dict[str, Any]:
    """Shape a stored patient for the service steps: as callers see it, plus its version, time and actor."""
    # Patients stored before versions existed are at their first version, last changed when created.
    return {**public_patient(stored, values), "version": version_of(stored),
            "updated_at": stored.get("updated_at", stored.get("created_at")), "updated_by": stored.get("updated_by")}


def checked(collection: str, stored: dict[str, Any], shape: Callable[[dict[str, Any]], Any]) -> Any:
    """Shape a stored record, logging which one (collection and id, no values) cannot be read, and why."""
    try:
        return shape(stored)
    except UnreadableRecord as unreadable:
        log.error("%s: %s %s", unreadable.logged, collection, stored.get("_id"))
        raise


def readable(collection: str, stored: Iterable[dict[str, Any]], shape: Callable[[dict[str, Any]], Any]) -> list[Any]:
    """Shape each stored record of a list, leaving out (and logging) any that cannot be read."""
    shaped = []
    for document in stored:
        try:
            shaped.append(checked(collection, document, shape))
        except UnreadableRecord:
            continue  # the rest of the list is still answered
    return shaped


def own_fields(patient: dict[str, Any]) -> dict[str, Any]:
    """Return the fields a caller gave a patient (names, birth date, ...), without ids and version."""
    return {name: value for name, value in patient.items() if name not in INTERNAL_PATIENT_FIELDS}


def version_entry(patient_id: str | ObjectId, doctor_id: str, fields: dict[str, Any], version: int,
                  at: datetime.datetime, actor: str | None) -> dict[str, Any]:
    """Shape one version of a patient as the history shows it: the whole record then, its version, time and actor."""
    return {"_id": str(patient_id), "doctor_id": doctor_id, **fields, "version": version, "at": at, "actor": actor}


def exactly(value: Any) -> dict[str, Any]:
    """Return the filter matching a field that holds this value itself, not a list holding it among others."""
    return {"$eq": value, "$not": {"$type": "array"}}


def stored_patient_id(patient_id: Any) -> Any:
    """Return a patient id as stored: an ObjectId for 24-hex text, any other value another program wrote as it is."""
    return object_id(patient_id) if isinstance(patient_id, str) and ObjectId.is_valid(patient_id) else patient_id


def public_appointment(stored: dict[str, Any], values: ValueStorage) -> dict[str, Any]:
    """Shape a stored appointment as callers see it: string ids, its own fields as stored, sealed ones opened.

    A value JSON cannot carry is left out. So is a doctor_id that is not text: such an appointment is no doctor's.
    """
    opened = values.appointment_fields(stored)
    appointment: dict[str, Any] = {"_id": str(stored["_id"])}
    if isinstance(opened.get("doctor_id"), str):
        appointment["doctor_id"] = opened["doctor_id"]
    # A patient_id the scheduler did not write at all is free, as a null one is.
    own = {"patient_id": opened.get("patient_id"),
           **{name: opened[name] for name in APPOINTMENT_FIELDS if name in opened}}
    for name, value in own.items():
        value = showable(value)
        if value is not UNSHOWABLE:
            appointment[name] = value
    return appointment


@dataclass(frozen=True)
class AuditContext:
    """Who acts, in which doctor's trail, in which request: what every audit record of a request shares."""

    actor: str
    doctor_id: str
    request_id: str
    # The uid a refused attempt named when its actor may not act for that doctor: the record is then in the
    # actor's own trail (doctor_id), since no one writes into a trail that is not theirs to act in.
    named_doctor: str | None = None
    # An audit record's outcome is the status its caller was answered, so that the trail reads like the access log:
    # the HTTP layer gives each outcome word of its request its status.
    outcomes: Mapping[str, int] = field(default_factory=dict)


def audit_entry(context: AuditContext, action: str, outcome: str, targets: dict[str, Any],
                changed: Iterable[str] | None = None) -> dict[str, Any]:
    """Build one audit record: ids, outcome and changed field names only, never a patient's field values."""
    entry: dict[str, Any] = {
        "_id": ObjectId(),
        "at": now(),
        "actor": context.actor,
        "doctor_id": context.doctor_id,
        "action": action,
        # A read of a list names every id it answered: a list of ids, each as text.
        "targets": {name: [str(item) for item in value] if isinstance(value, list) else str(value)
                    for name, value in targets.items() if value is not None},
        "outcome": context.outcomes[outcome],
        "request_id": context.request_id,
    }
    if context.named_doctor is not None:
        entry["named_doctor"] = context.named_doctor
    if changed is not None:
        entry["fields"] = list(changed)
    return entry


def public_audit(stored: dict[str, Any]) -> dict[str, Any]:
    """Shape a stored audit record as callers see it."""
    record = dict(stored)
    record["_id"] = str(stored["_id"])
    return record


class Records:
    """The reads and writes of one unit of work, bound to its session and journalling its inserts."""

    def __init__(self, db: Database[dict[str, Any]], values: ValueStorage, session: ClientSession | None = None,
                 audit_context: AuditContext | None = None,
                 writes: CommandWrites | BatchedWrites | None = None, audit_id: ObjectId | None = None) -> None:
        self._db = db
        # How patient values are stored: sealed (app.store.sealing.SealedValues) or plain.
        self._values = values
        self._session = session
        self._audit_context = audit_context
        # The id of this unit's first audit record, the same in every attempt of its transaction: finding it tells a
        # retry that an earlier attempt committed (app.store.unit_of_work).
        self._audit_id = audit_id
        # How writes reach the server: one command each, or one bulkWrite for the whole unit (app.store.writes).
        self.writes: CommandWrites | BatchedWrites = writes or CommandWrites(db, session)
        # What this unit of work inserted (collection, id, doctor), and the appointments whose patient it set as
        # (id, doctor, set, was), so a rollback without transactions can undo them.
        self.inserted: list[tuple[str, ObjectId, str]] = []
        self.relinked: list[tuple[ObjectId, str, ObjectId | None, Any]] = []

    @property
    def writes_deferred(self) -> bool:
        """Tell whether writes wait for one batch at the commit, so that a conditional write is taken to match."""
        return isinstance(self.writes, BatchedWrites)

    def _insert(self, collection: str, document: dict[str, Any]) -> dict[str, Any]:
        """Insert a document and journal it."""
        self.writes.insert(collection, [document])
        self.inserted.append((collection, document["_id"], document["doctor_id"]))
        return document

    def add_patient(self, doctor_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Store a new patient of this doctor at its first version and return it."""
        moment, actor, patient_id = now(), self._actor(), ObjectId()
        # The current version lives on the patient itself, so creating one costs no command beyond its insert.
        document = {"_id": patient_id, "doctor_id": doctor_id, **self._values.patient(patient_id, doctor_id, fields),
                    "created_at": moment, "version": FIRST_VERSION, "updated_at": moment, "updated_by": actor}
        self._insert(PATIENTS, document)
        # Shaped from the fields given rather than read back: unsealing what was just sealed would cost a decryption.
        return {"_id": str(document["_id"]), "doctor_id": doctor_id, **fields, "version": FIRST_VERSION,
                "updated_at": moment, "updated_by": actor}

    def find_patient(self, patient_id: str, doctor_id: str) -> dict[str, Any] | None:
        """Return this doctor's patient with this id, with its version, or None."""
        stored = self._db[PATIENTS].find_one({"_id": object_id(patient_id), "doctor_id": doctor_id},
                                             session=self._session)
        return None if stored is None else checked(PATIENTS, stored, lambda found: patient_record(found, self._values))

    def patient_exists(self, patient_id: str) -> bool:
        """Tell whether a patient with this id exists, whoever's it is (a read across doctors: every shard)."""
        return self._exists(PATIENTS, patient_id)

    def _exists(self, collection: str, record_id: str) -> bool:
        """Tell whether a record with this id exists in the collection, whoever's it is."""
        query = {"_id": object_id(record_id), "$comment": WHOSE_RECORD}
        return self._db[collection].find_one(query, {"_id": 1}, session=self._session) is not None

    def correct_patient(self, patient: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any] | None:
        """Replace the patient's own fields if it is still at the version read, keeping that version in its history.

        Return the patient at its new version, or None when another change came first (nothing is kept then).
        """
        patient_id = object_id(patient["_id"])
        version = patient["version"]
        # The version being replaced goes to the history first: on a rollback without transactions, undo() can
        # delete an insert, not restore an update.
        doctor_id = patient["doctor_id"]
        self._insert(PATIENT_VERSIONS, {
            "_id": ObjectId(), "patient_id": patient_id, "doctor_id": doctor_id, "version": version,
            "at": patient["updated_at"], "actor": patient["updated_by"],
            **self._values.version(patient_id, doctor_id, version, own_fields(patient))})
        moment, actor = now(), self._actor()
        stored = self._values.patient(patient_id, doctor_id, fields)
        # Whatever the old form held that the new one does not: a removed field, or a plain record's values when
        # it is stored sealed from now on.
        removed = {name: "" for name in (*own_fields(patient), *STORAGE_FIELDS, *PLAIN_SEARCH_FIELDS)
                   if name not in stored}
        update = {"$set": {**stored, "version": version + 1, "updated_at": moment, "updated_by": actor}}
        if removed:
            update["$unset"] = removed
        # Setting version + 1 under a filter on the version read, rather than $inc, also moves a patient stored
        # before versions existed (no field, read as the first) on to the second.
        read = version if version != FIRST_VERSION else {"$in": [FIRST_VERSION, None]}
        if not self.writes.update(PATIENTS, {"_id": patient_id, "doctor_id": patient["doctor_id"], "version": read},
                                  update):
            return None
        return {"_id": patient["_id"], "doctor_id": patient["doctor_id"], **fields, "version": version + 1,
                "updated_at": moment, "updated_by": actor}

    def patient_history(self, patient: dict[str, Any], limit: int, before: int | None = None) -> Page:
        """Return one page of the patient's versions, newest first (the current one first), and the next cursor."""
        current = version_entry(patient["_id"], patient["doctor_id"], own_fields(patient), patient["version"],
                                patient["updated_at"], patient["updated_by"])
        entries = [current] if before is None or before > patient["version"] else []
        below = patient["version"] if before is None else min(before, patient["version"])
        # doctor_id in the filter too: a history is never read across doctors, even with a patient id in hand.
        cursor = self._db[PATIENT_VERSIONS].find(
            {"patient_id": object_id(patient["_id"]), "doctor_id": patient["doctor_id"], **versions_below(below)},
            session=self._session)
        kept = list(cursor.sort([("version", -1)]).limit(limit + 1 - len(entries)))
        next_cursor = None
        if len(entries) + len(kept) > limit:
            kept = kept[:limit - len(entries)]
            # From what was read, not what is shown: a version left out still moves the cursor past it.
            next_cursor = encode_version_cursor(kept[-1]["version"] if kept else entries[-1]["version"],
                                                patient["_id"])
        entries.extend(readable(PATIENT_VERSIONS, kept, lambda stored: version_entry(
            stored["patient_id"], stored["doctor_id"], self._values.version_fields(stored), version_of(stored),
            stored["at"], stored["actor"])))
        return entries, next_cursor

    def _patients_query(self, doctor_id: str, name_prefix: str | None, born_on: str | None) -> dict[str, Any]:
        """Return the filter of the doctor's patients with a name starting with name_prefix and born on born_on."""
        return {"doctor_id": doctor_id, **self._values.patient_search(doctor_id, name_prefix, born_on)}

    def list_patients(self, doctor_id: str, limit: int, after: str | None = None, name_prefix: str | None = None,
                      born_on: str | None = None) -> Page:
        """Return one page of the doctor's patients, newest first, each with its version, and the next page's cursor."""
        return self._page(PATIENTS, self._patients_query(doctor_id, name_prefix, born_on), "created_at", limit, after,
                          descending=True, shape=lambda stored: patient_record(stored, self._values))

    def count_patients(self, doctor_id: str, name_prefix: str | None = None, born_on: str | None = None) -> int:
        """Return how many of the doctor's patients list_patients would list with these searches, over every page."""
        # Counted on the index the list reads (doctor_found_by_newest), from its keys; only the patients with no key,
        # which the list takes too, are confirmed on their documents (docs/fhir.md).
        return self._db[PATIENTS].count_documents(self._patients_query(doctor_id, name_prefix, born_on),
                                                  session=self._session)

    def patients_in_order(self, doctor_id: str, name_prefix: str | None = None, born_on: str | None = None,
                          after: str | None = None, batch: int = 100) -> Iterator[tuple[dict[str, Any], str]]:
        """Yield the doctor's patients as list_patients lists them, each with the cursor that resumes after it."""
        query = self._patients_query(doctor_id, name_prefix, born_on)
        if after and is_undated(after):
            return  # every patient's creation time is a date (this service wrote it): nothing follows
        while True:
            stored = self._in_order(PATIENTS, query, "created_at", batch, after, descending=True)
            for document in stored:
                cursor = encode_cursor(document["created_at"], document["_id"])
                # A record it cannot read (failing its integrity check, or at a version it cannot read) is left
                # out, as from a list, and still moves the cursor.
                yield from ((patient, cursor) for patient in readable(
                    PATIENTS, [document], lambda found: patient_record(found, self._values)))
            if len(stored) < batch:
                return
            after = encode_cursor(stored[-1]["created_at"], stored[-1]["_id"])

    def add_appointment(self, doctor_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Store a new appointment of this doctor, without a patient, and return it."""
        appointment_id = ObjectId()
        document = {"_id": appointment_id, "doctor_id": doctor_id, "patient_id": None}
        self._insert(APPOINTMENTS, {**document, **self._values.appointment(appointment_id, doctor_id, fields)})
        # Shaped from the fields given: unsealing what was just sealed would cost a decryption.
        return {**document, "_id": str(document["_id"]), **fields}

    @staticmethod
    def _appointments_query(doctor_id: str, linked: bool | None, patient_id: str | None) -> dict[str, Any]:
        """Return the filter of the doctor's appointments, linked or free, or linked to this patient, if asked."""
        # An id that is not an ObjectId fits no cursor (nor a read by id): such an appointment is not listed.
        query: dict[str, Any] = {"doctor_id": exactly(doctor_id), "_id": {"$type": "objectId"}}
        if linked is not None:
            query["patient_id"] = {"$ne": None} if linked else None
        if patient_id is not None:
            # Either form of the id: the scheduler may have stored it as text.
            query["patient_id"] = {"$in": [object_id(patient_id), patient_id]}
        return query

    @staticmethod
    def _dated_between(starts_from: datetime.datetime | None,
                       starts_before: datetime.datetime | None) -> dict[str, Any]:
        """Return the condition on a date this service stored that is at or after one moment and before another."""
        dated: dict[str, Any] = dict(DATED)
        if starts_from is not None:
            dated["$gte"] = starts_from
        if starts_before is not None:
            dated["$lt"] = starts_before
        return dated

    def count_appointments(self, doctor_id: str, patient_id: str | None = None,
                           starts_from: datetime.datetime | None = None,
                           starts_before: datetime.datetime | None = None) -> int:
        """Return how many of the doctor's appointments list_appointments would list with these filters, in all."""
        query = self._appointments_query(doctor_id, None, patient_id)
        if starts_from is not None or starts_before is not None:
            query["date"] = self._dated_between(starts_from, starts_before)
        # On the one index of appointments (db.INDEXES): a count of index keys, no document opened.
        return self._db[APPOINTMENTS].count_documents(query, session=self._session)

    def list_appointments(self, doctor_id: str, limit: int, after: str | None = None,
                          linked: bool | None = None, patient_id: str | None = None,
                          starts_from: datetime.datetime | None = None,
                          starts_before: datetime.datetime | None = None) -> Page:
        """Return one page of the doctor's appointments, the dated ones first by date, and the next page's cursor.

        With a time range (starts_from, starts_before), only appointments whose date this service can read as one.
        """
        query = self._appointments_query(doctor_id, linked, patient_id)
        in_range = starts_from is not None or starts_before is not None
        dated: list[dict[str, Any]] = []
        if not (after and is_undated(after)):
            dated = self._in_order(APPOINTMENTS, {**query, "date": self._dated_between(starts_from, starts_before)},
                                   "date", limit + 1, after, descending=False)
        undated: list[dict[str, Any]] = []
        if len(dated) <= limit and not in_range:
            query = {**query, "$nor": [{"date": DATED}]}
            if after and is_undated(after):
                query = {"$and": [query, after_undated_clause(after)]}
            # By (doctor_id, _id), which is by _id for one doctor: the `_id` index cannot serve that sort, so the
            # planner keeps to this doctor's keys of an appointments index rather than walk every appointment.
            found = self._db[APPOINTMENTS].find(query, session=self._session)
            undated = list(found.sort([("doctor_id", 1), ("_id", 1)]).limit(limit + 1 - len(dated)))
        stored = (dated + undated)[:limit]
        next_cursor = None
        if len(dated) + len(undated) > limit:
            last = stored[-1]
            next_cursor = (encode_cursor(last["date"], last["_id"]) if len(stored) <= len(dated)
                           else encode_undated_cursor(last["_id"]))
        return readable(APPOINTMENTS, stored, lambda document: public_appointment(document, self._values)), next_cursor

    def _page(self, collection: str, query: dict[str, Any], field: str, limit: int, after: str | None, descending: bool,
              shape: Callable[[dict[str, Any]], dict[str, Any]]) -> Page:
        """Run a keyset-paginated query on (field, _id); a page never skips or repeats an item."""
        if after and is_undated(after):
            return [], None  # this list's field always holds a date (this service wrote it): nothing follows
        stored = self._in_order(collection, query, field, limit + 1, after, descending)
        next_cursor = None
        if len(stored) > limit:
            stored = stored[:limit]
            # From what was read, not what is shown: a record left out still moves the cursor past it.
            next_cursor = encode_cursor(stored[-1][field], stored[-1]["_id"])
        return readable(collection, stored, shape), next_cursor

    def _in_order(self, collection: str, query: dict[str, Any], field: str, count: int, after: str | None,
                  descending: bool) -> list[dict[str, Any]]:
        """Return up to count documents matching query, after the cursor in (field, _id) order."""
        if after:
            query = {"$and": [query, after_clause(field, after, descending)]}
        direction = -1 if descending else 1
        cursor = self._db[collection].find(query, session=self._session)
        return list(cursor.sort([(field, direction), ("_id", direction)]).limit(count))

    def find_appointment(self, appointment_id: str, doctor_id: str) -> dict[str, Any] | None:
        """Return this doctor's appointment with this id, or None."""
        # exactly: an appointment another program stored with a list of doctors holding this one is not theirs.
        stored = self._db[APPOINTMENTS].find_one({"_id": object_id(appointment_id), "doctor_id": exactly(doctor_id)},
                                                 session=self._session)
        return None if stored is None else checked(APPOINTMENTS, stored,
                                                   lambda found: public_appointment(found, self._values))

    def appointment_exists(self, appointment_id: str) -> bool:
        """Tell whether an appointment with this id exists, whoever's it is (a read across doctors: every shard)."""
        return self._exists(APPOINTMENTS, appointment_id)

    def link_patient(self, appointment_id: str, doctor_id: str, patient_id: str) -> bool:
        """Set the appointment's patient if it is still this doctor's and still free; tell whether it was."""
        # An update rather than findAndModify: the matched count is all we need, and
        # findAndModify is far slower on some servers (see the add_and_link issue).
        # None matches an absent patient_id too; exactly: a list of doctors holding this one is not theirs.
        linked = self.writes.update(APPOINTMENTS, {"_id": object_id(appointment_id), "doctor_id": exactly(doctor_id),
                                                   "patient_id": None},
                                    {"$set": {"patient_id": object_id(patient_id)}})
        if linked:
            self.relinked.append((object_id(appointment_id), doctor_id, object_id(patient_id), None))
        return linked

    def unlink_patient(self, appointment_id: str, doctor_id: str, patient_id: Any) -> bool:
        """Free the appointment if it is still this doctor's and still linked to this patient; tell whether it was."""
        was = stored_patient_id(patient_id)
        # Either form of the id: the scheduler may have stored it as text.
        freed = self.writes.update(APPOINTMENTS, {"_id": object_id(appointment_id), "doctor_id": exactly(doctor_id),
                                                  "patient_id": {"$in": [was, patient_id]}},
                                   {"$set": {"patient_id": None}})
        if freed:
            self.relinked.append((object_id(appointment_id), doctor_id, None, was))
        return freed

    def audit(self, *events: AuditEvent) -> None:
        """Record (action, outcome, targets[, changed field names]) events of this unit of work, in one command."""
        if self._audit_context is None or not events:
            return
        entries = [audit_entry(self._audit_context, *event) for event in events]
        if self._audit_id is not None:
            entries[0]["_id"], self._audit_id = self._audit_id, None
        # One insert for all of a request's records: every command is a round trip inside the transaction.
        self.writes.insert(AUDIT, entries)
        self.inserted.extend((AUDIT, entry["_id"], entry["doctor_id"]) for entry in entries)

    def audited(self, audit_id: ObjectId) -> bool:
        """Tell whether the audit record with this id is in the trail, as this unit reads it."""
        assert self._audit_context is not None, "only an audited unit of work has audit records to look for"
        found = self._db[AUDIT].find_one({"_id": audit_id, "doctor_id": self._audit_context.doctor_id}, {"_id": 1},
                                         session=self._session)
        return found is not None

    def _actor(self) -> str | None:
        """Return who acts in this unit of work, or None outside a request."""
        return None if self._audit_context is None else self._audit_context.actor

    def list_audit(self, doctor_id: str, limit: int, after: str | None = None) -> Page:
        """Return one page of this doctor's audit trail, newest first."""
        return self._page(AUDIT, {"doctor_id": doctor_id}, "at", limit, after, descending=True, shape=public_audit)

    def undo(self) -> None:
        """Put back the patients of the appointments this unit of work linked or freed, then delete its inserts."""
        for appointment_id, doctor_id, patient_id, was in reversed(self.relinked):
            # Only while still as we set it: never undo what another request has written since.
            self._db[APPOINTMENTS].update_one({"_id": appointment_id, "doctor_id": doctor_id, "patient_id": patient_id},
                                              {"$set": {"patient_id": was}}, session=self._session)
        self.relinked.clear()
        for collection, document_id, doctor_id in reversed(self.inserted):
            self._db[collection].delete_one({"_id": document_id, "doctor_id": doctor_id}, session=self._session)
        self.inserted.clear()


def now() -> datetime.datetime:
    """Return the current UTC time at millisecond precision, as BSON stores it."""
    moment = datetime.datetime.now(datetime.timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
