"""Query shapes over the clinic's collections; callers see 24-hex id strings, never ObjectIds."""
import datetime

from bson import ObjectId

PATIENTS = "patients"
APPOINTMENTS = "appointments"


def object_id(hex_id):
    """Convert a validated 24-hex string to an ObjectId."""
    return ObjectId(hex_id)


def public_patient(stored):
    """Shape a stored patient as callers see it: string ids, no internal fields."""
    patient = {"_id": str(stored["_id"]), "doctor_id": stored["doctor_id"]}
    patient.update((k, v) for k, v in stored.items() if k not in ("_id", "doctor_id", "created_at"))
    return patient


def public_appointment(stored):
    """Shape a stored appointment as callers see it: string ids."""
    appointment = dict(stored)
    appointment["_id"] = str(stored["_id"])
    if stored.get("patient_id") is not None:
        appointment["patient_id"] = str(stored["patient_id"])
    return appointment


class Records:
    """The reads and writes of one unit of work, bound to its session and journalling its inserts."""

    def __init__(self, db, session=None):
        self._db = db
        self._session = session
        # What this unit of work inserted, so a rollback without transactions can delete it.
        self.inserted = []

    def _insert(self, collection, document):
        """Insert a document and journal it."""
        self._db[collection].insert_one(document, session=self._session)
        self.inserted.append((collection, document["_id"]))
        return document

    def add_patient(self, doctor_id, fields):
        """Store a new patient of this doctor and return it as callers see it."""
        document = {"_id": ObjectId(), "doctor_id": doctor_id, **fields, "created_at": _now()}
        return public_patient(self._insert(PATIENTS, document))

    def find_appointment(self, appointment_id):
        """Return the appointment with this id, or None."""
        stored = self._db[APPOINTMENTS].find_one({"_id": object_id(appointment_id)}, session=self._session)
        return None if stored is None else public_appointment(stored)

    def link_patient(self, appointment_id, doctor_id, patient_id):
        """Set the appointment's patient if it is still this doctor's and still free; tell whether it was."""
        # update_one rather than find_one_and_update: the matched count is all we need, and
        # findAndModify is far slower on some servers (see the add_and_link issue).
        result = self._db[APPOINTMENTS].update_one(
            {"_id": object_id(appointment_id), "doctor_id": doctor_id, "patient_id": None},
            {"$set": {"patient_id": object_id(patient_id)}},
            session=self._session,
        )
        return result.matched_count == 1

    def undo_inserts(self):
        """Delete what this unit of work inserted, newest first."""
        for collection, document_id in reversed(self.inserted):
            self._db[collection].delete_one({"_id": document_id}, session=self._session)
        self.inserted.clear()


def _now():
    """Return the current UTC time at millisecond precision, as BSON stores it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
