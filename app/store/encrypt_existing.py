"""Seal in place the patient values written before field encryption, and bind those sealed before values were bound
to their records: idempotent, resumable, safe beside traffic.

Its scans and counts read every doctor's records (on a sharded cluster, every shard); each document it changes is
changed by a write naming its doctor, routed to that doctor's shard."""
from typing import Any

from pymongo.database import Database

from app.store.records import (
    APPOINTMENTS,
    EVERY_DOCTOR,
    IDEMPOTENCY,
    INTERNAL_PATIENT_FIELDS,
    PATIENT_VERSIONS,
    PATIENTS,
)
from app.store.sealing import PLAIN_SEARCH_FIELDS, PlainValues, SealedValues
from app.store.sealing import UNBOUND as UNBOUND_VALUES

PLAIN = PlainValues()
# What is still plain in each collection: documents without a sealed value (answers: a plain body or digest).
NOT_SEALED = {"sealed": {"$exists": False}, "$comment": EVERY_DOCTOR}
PLAIN_ANSWERS = {"$or": [{"body": {"$exists": True}}, {"fingerprint": {"$exists": True}}], "$comment": EVERY_DOCTOR}
# Appointments written before encryption with a reason for the visit in plain.
PLAIN_REASONS = {"reason": {"$exists": True}, **NOT_SEALED}
UNBOUND = {**UNBOUND_VALUES, "$comment": EVERY_DOCTOR}
# The kind of sealed value each collection holds (app.store.sealing.RECORD_FIELDS says what binds it).
SEALED_KINDS = {PATIENTS: "patient", PATIENT_VERSIONS: "version", IDEMPOTENCY: "answer", APPOINTMENTS: "appointment"}


def encrypt_existing(db: Database[dict[str, Any]], values: SealedValues) -> dict[str, int]:
    """Seal every plain patient, version and stored answer; return how many of each were sealed."""
    # Each document is sealed by one conditional update, so a run stopped anywhere resumes where it stopped, and
    # a document changed meanwhile (by the service, which stores it sealed) is left to the change.
    return {
        PATIENTS: sum(_seal_patient(db, values, stored) for stored in db[PATIENTS].find(NOT_SEALED)),
        PATIENT_VERSIONS: sum(_seal_version(db, values, stored) for stored in db[PATIENT_VERSIONS].find(NOT_SEALED)),
        IDEMPOTENCY: sum(_seal_answer(db, values, stored) for stored in db[IDEMPOTENCY].find(PLAIN_ANSWERS)),
        APPOINTMENTS: sum(_seal_appointment(db, values, stored) for stored in db[APPOINTMENTS].find(PLAIN_REASONS)),
    }


def bind_existing(db: Database[dict[str, Any]], values: SealedValues) -> dict[str, int]:
    """Bind every sealed value not marked bound to the record it is in; return how many of each were bound."""
    # A value sealed before binding says nothing of where it belongs: it is bound to the record it is found in.
    return {collection: sum(_bind(db, values, collection, stored) for stored in db[collection].find(UNBOUND))
            for collection in SEALED_KINDS}


def still_unbound(db: Database[dict[str, Any]]) -> dict[str, int]:
    """Return how many documents of each collection hold a sealed value not marked bound."""
    return {collection: db[collection].count_documents(UNBOUND) for collection in SEALED_KINDS}


def _bind(db: Database[dict[str, Any]], values: SealedValues, collection: str, stored: dict[str, Any]) -> int:
    """Bind one sealed value to its record unless its record changed since it was read; tell whether it was bound."""
    update = values.rebound(SEALED_KINDS[collection], stored)
    # The very value read: any change since (the service's, which binds it) re-sealed it, and is left as it is.
    result = db[collection].update_one(
        {"_id": stored["_id"], "doctor_id": stored.get("doctor_id"), "sealed": stored["sealed"]}, {"$set": update})
    return result.modified_count if "sealed" in update else 0


def still_plain(db: Database[dict[str, Any]]) -> dict[str, int]:
    """Return how many documents of each collection still hold plain patient values."""
    return {
        PATIENTS: db[PATIENTS].count_documents(NOT_SEALED),
        PATIENT_VERSIONS: db[PATIENT_VERSIONS].count_documents(NOT_SEALED),
        IDEMPOTENCY: db[IDEMPOTENCY].count_documents(PLAIN_ANSWERS),
        APPOINTMENTS: db[APPOINTMENTS].count_documents(PLAIN_REASONS),
    }


def _seal_patient(db: Database[dict[str, Any]], values: SealedValues, stored: dict[str, Any]) -> int:
    """Seal one plain patient unless it changed since it was read; tell whether it was sealed."""
    fields = PLAIN.patient_fields(stored, INTERNAL_PATIENT_FIELDS)
    plain_names = dict.fromkeys((*fields, *PLAIN_SEARCH_FIELDS), "")
    # Every change moves the version on: matching the version read means nothing was changed since.
    result = db[PATIENTS].update_one(
        {"_id": stored["_id"], "doctor_id": stored["doctor_id"], "sealed": {"$exists": False},
         "version": stored.get("version")},
        {"$set": values.patient(stored["_id"], stored["doctor_id"], fields), "$unset": plain_names})
    return result.modified_count


def _seal_version(db: Database[dict[str, Any]], values: SealedValues, stored: dict[str, Any]) -> int:
    """Seal one plain earlier version (versions never change)."""
    result = db[PATIENT_VERSIONS].update_one(
        {"_id": stored["_id"], "doctor_id": stored["doctor_id"], "sealed": {"$exists": False}},
        {"$set": values.version(stored["patient_id"], stored["doctor_id"], stored["version"],
                                PLAIN.version_fields(stored)),
         "$unset": {"patient": ""}})
    return result.modified_count


def _seal_appointment(db: Database[dict[str, Any]], values: SealedValues, stored: dict[str, Any]) -> int:
    """Seal one appointment's reason for the visit (a link changes only its patient, never its reason)."""
    private = {name: stored[name] for name in ("reason",) if name in stored}
    result = db[APPOINTMENTS].update_one(
        {"_id": stored["_id"], "doctor_id": stored["doctor_id"], "sealed": {"$exists": False}, **private},
        {"$set": values.appointment(stored["_id"], stored["doctor_id"], private), "$unset": dict.fromkeys(private, "")})
    return result.modified_count


def _seal_answer(db: Database[dict[str, Any]], values: SealedValues, stored: dict[str, Any]) -> int:
    """Seal one stored answer and key its request digest, unless its request settled it since it was read."""
    update: dict[str, dict[str, Any]] = {"$set": {}, "$unset": {}}
    if "body" in stored:
        update["$set"].update(values.answer(stored["_id"], stored["doctor_id"], stored["body"]))
        update["$unset"]["body"] = ""
    if "fingerprint" in stored:
        update["$set"].update(values.request_fingerprint(stored["fingerprint"]))
        update["$unset"]["fingerprint"] = ""
    result = db[IDEMPOTENCY].update_one(
        {"_id": stored["_id"], "doctor_id": stored["doctor_id"], "state": stored["state"],
         "claimed_at": stored["claimed_at"]}, update)
    return result.modified_count
