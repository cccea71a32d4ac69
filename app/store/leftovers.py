"""What earlier versions of the service may have left: patients stored plain, values sealed before binding, blind
indexes under an index per search, and the appointments' earlier indexes.

A start looks for each through an index that holds only such records, until one finds none; it then notes that in
the database (STATE) and drops the index, so that no later write pays for keeping it: an index costs the server on
every insert, even one it gives no entry. Nothing the service writes now is such a record, except a patient written
with encryption off, and a start with encryption off takes the note back before it stores any. The blind indexes
kept outside FOUND_BY are moved by the first start that finds the note missing, in one walk of the patients. The
appointments' earlier indexes are dropped by any start that lists them (an earlier instance started since makes
them again).
"""
from collections.abc import Iterable
from typing import Any

import pymongo
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure

from app.store.records import APPOINTMENTS, EVERY_DOCTOR, IDEMPOTENCY, PATIENT_VERSIONS, PATIENTS
from app.store.sealing import EARLIER_BLIND_INDEXES, EVERY_PATIENT, FOUND_BY, PLAIN_PATIENTS, UNBOUND

# One small document per note, by its name; never sharded (see docs/scaling.md).
STATE = "database_state"
NO_PLAIN_PATIENTS = "no plain patients"
EVERY_VALUE_BOUND = "every sealed value bound"
BLIND_INDEXES_UNDER_ONE_INDEX = "blind indexes under one index"
INDEX_NOT_FOUND = 27  # MongoDB's error code for dropping an index that is not there

PLAIN_PATIENTS_INDEX = "plain_patients"
# The indexes of patients stored plain (FIELD_ENCRYPTION=off, or not yet sealed by encrypt-existing).
PLAIN_PATIENT_INDEXES = [
    # Only the patients stored plain (each has its first name in plain; no sealed one does): looked for in one
    # lookup of this index, where a scan for them took 3.4 s at 100,000 patients.
    pymongo.IndexModel([("created_at", 1)], name=PLAIN_PATIENTS_INDEX, partialFilterExpression=PLAIN_PATIENTS),
    # Their searches: a sealed patient would add an entry of nulls to each.
    pymongo.IndexModel([("doctor_id", 1), ("name_keys", 1), ("created_at", -1)], name="doctor_name_prefix"),
    pymongo.IndexModel([("doctor_id", 1), ("dateOfBirth", 1), ("created_at", -1), ("_id", -1)],
                       name="doctor_born_newest"),
]

PATIENTS_FOUND_BY_INDEX = "doctor_found_by_newest"
# The indexes patients were listed and searched through before PATIENTS_FOUND_BY_INDEX: one for the list and one per
# search.
EARLIER_PATIENT_INDEXES = ("doctor_newest", "doctor_sealed_name", "doctor_sealed_birth_newest")

APPOINTMENTS_BY_DATE_INDEX = "doctor_by_date_with_patient"
# The indexes appointments were read through before APPOINTMENTS_BY_DATE_INDEX: by date, and by patient then date.
EARLIER_APPOINTMENT_INDEXES = ("doctor_by_date", "doctor_linked_by_date")

UNBOUND_INDEX = "unbound_sealed"
# The collections holding sealed values, each looked for values sealed before binding (without the mark of being
# bound) through this index of its sealed documents.
SEALED_COLLECTIONS = (PATIENTS, PATIENT_VERSIONS, APPOINTMENTS, IDEMPOTENCY)
UNBOUND_SEALED = pymongo.IndexModel([("bound", 1)], name=UNBOUND_INDEX,
                                    partialFilterExpression={"sealed": {"$exists": True}})


def plain_patients_remain(db: Database[dict[str, Any]]) -> bool:
    """Tell whether patients stored plain remain, keeping their indexes until a start finds none."""
    if _noted(db, NO_PLAIN_PATIENTS):
        return False
    patients = db[PATIENTS]
    patients.create_indexes(PLAIN_PATIENT_INDEXES)
    # Across every doctor, so every shard of a sharded cluster: once per start, one index lookup each.
    query = {**PLAIN_PATIENTS, "$comment": EVERY_DOCTOR}
    if next(patients.find(query, {"_id": 1}).hint(PLAIN_PATIENTS_INDEX).limit(1), None) is not None:
        return True
    _note(db, NO_PLAIN_PATIENTS)
    _drop(patients, _names(PLAIN_PATIENT_INDEXES))
    return False


def plain_patients_to_be_stored(db: Database[dict[str, Any]]) -> None:
    """Take back the note that none remain, then keep their indexes: this start stores patients plain."""
    db[STATE].delete_one({"_id": NO_PLAIN_PATIENTS})
    db[PATIENTS].create_indexes(PLAIN_PATIENT_INDEXES)


def unbound_values_remain(db: Database[dict[str, Any]]) -> list[str]:
    """Return the collections where values sealed before binding remain, looking until a start finds none."""
    if _noted(db, EVERY_VALUE_BOUND):
        return []
    for collection in SEALED_COLLECTIONS:
        db[collection].create_indexes([UNBOUND_SEALED])
    query = {**UNBOUND, "$comment": EVERY_DOCTOR}
    remaining = [collection for collection in SEALED_COLLECTIONS
                 if next(db[collection].find(query, {"_id": 1}).hint(UNBOUND_INDEX).limit(1), None)]
    if not remaining:
        _note(db, EVERY_VALUE_BOUND)
        for collection in SEALED_COLLECTIONS:
            _drop(db[collection], [UNBOUND_INDEX])
    return remaining


def blind_indexes_under_one_index(db: Database[dict[str, Any]]) -> None:
    """Move the blind indexes of patients sealed before FOUND_BY into it, then drop the indexes they had.

    Instances of the earlier version must be stopped first: a patient one of them stores afterwards is neither listed
    nor found by the searches (it is still read by its id).
    """
    if _noted(db, BLIND_INDEXES_UNDER_ONE_INDEX):
        return
    patients = db[PATIENTS]
    # Once in a database's life, across every doctor (every shard): a walk of the patients sealed until then.
    earlier = {"$or": [{name: {"$exists": True}} for name in EARLIER_BLIND_INDEXES], "$comment": EVERY_DOCTOR}
    for stored in patients.find(earlier, {"doctor_id": 1, **dict.fromkeys(EARLIER_BLIND_INDEXES, 1)}):
        names, born = stored.get("name_index"), stored.get("birth_index")
        keys = [EVERY_PATIENT, *(names if isinstance(names, list) else []), *([born] if born else [])]
        # Only while still where they were: another worker starting at the same time may have moved them.
        still = {"_id": stored["_id"], "doctor_id": stored.get("doctor_id"), FOUND_BY: {"$exists": False}}
        patients.update_one(still, {"$set": {FOUND_BY: keys}, "$unset": dict.fromkeys(EARLIER_BLIND_INDEXES, "")})
    _note(db, BLIND_INDEXES_UNDER_ONE_INDEX)
    _drop_those_present(patients, EARLIER_PATIENT_INDEXES)


def drop_earlier_appointment_indexes(db: Database[dict[str, Any]]) -> None:
    """Drop the indexes appointments had before APPOINTMENTS_BY_DATE_INDEX, which serves each of their queries."""
    _drop_those_present(db[APPOINTMENTS], EARLIER_APPOINTMENT_INDEXES)


def _noted(db: Database[dict[str, Any]], note: str) -> bool:
    """Tell whether a start has noted this in the database."""
    return db[STATE].find_one({"_id": note}) is not None


def _note(db: Database[dict[str, Any]], note: str) -> None:
    """Note this in the database, once however many workers start together."""
    db[STATE].update_one({"_id": note}, {"$setOnInsert": {"_id": note}}, upsert=True)


def _drop(collection: Collection[dict[str, Any]], names: Iterable[str]) -> None:
    """Drop the indexes of the collection with these names, those already gone (another worker starting too) aside."""
    for name in names:
        try:
            collection.drop_index(name)
        except OperationFailure as error:
            if error.code != INDEX_NOT_FOUND:
                raise


def _drop_those_present(collection: Collection[dict[str, Any]], names: Iterable[str]) -> None:
    """Drop those of these indexes the collection has, listing its indexes once rather than trying each name."""
    present = collection.index_information()
    _drop(collection, [name for name in names if name in present])


def _names(indexes: list[pymongo.IndexModel]) -> list[str]:
    """Return the names of these indexes."""
    return [index.document["name"] for index in indexes]
