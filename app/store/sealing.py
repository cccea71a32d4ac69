"""How patient values are kept in the database: sealed by field encryption, or plain (development, and old records)."""
import hmac
import re
from typing import Any

from bson import ObjectId

from app.store.exceptions import NotSealedForThisRecord
from app.store.field_encryption import FieldEncryption

# The keys a sealed patient is listed and searched by, in one field under one index (db.INDEXES): the key every sealed
# patient holds, and the blind indexes of its name prefixes and of its date of birth. One index rather than one for
# the list and one per search: every index is a table of its own that each insert of a patient writes to.
FOUND_BY = "found_by"
EVERY_PATIENT = "all"  # text: never equal to a blind index, which is binary
# The list: the sealed patients by their key, and those with no keys (stored plain, by this service or another
# program) by the null that a missing field is indexed as.
EVERY_PATIENT_KEY = {FOUND_BY: {"$in": [EVERY_PATIENT, None]}}
# Where a sealed patient kept its blind indexes before they moved to FOUND_BY (app.store.leftovers moves them).
EARLIER_BLIND_INDEXES = ("name_index", "birth_index")
# What a stored patient may carry besides its ids, times and version, in either form: its own fields when plain
# (with lower-cased names for the search), or one sealed value and its mark of being bound; and its keys.
STORAGE_FIELDS = ("sealed", "bound", FOUND_BY, *EARLIER_BLIND_INDEXES)
PLAIN_SEARCH_FIELDS = ("name_keys",)
# A name search matches the start of a first or last name from this many characters; a shorter one matches a whole
# name that short (Li, Wu). Each sealed name keeps one blind index entry per prefix it can be found by, so prefixes of
# one or two letters, which would each stand for a large share of the patients, cost an entry and tell frequencies.
SHORTEST_NAME_PREFIX = 3
# A patient stored plain (written before encryption, or with it off): its names are required, so always there.
PLAIN_PATIENTS = {"firstName": {"$exists": True}}
# An appointment's own fields that stay plain: its time, which lists sort by. The reason for a visit is sealed.
PLAIN_APPOINTMENT_FIELDS = ("date",)
# A sealed value is bound to its record: sealed together with the fields of its document that say which record it
# is and whose, and refused when opened in a document whose fields differ (copied into another record). Explicit
# encryption takes no associated data, so the binding goes inside the sealed plaintext, beside the value.
RECORD_FIELDS = {
    "patient": ("_id", "doctor_id"),
    "version": ("patient_id", "version", "doctor_id"),
    "appointment": ("_id", "doctor_id"),
    "answer": ("_id", "doctor_id"),  # the idempotency key's own record: another key's answer is not this one's
}
BOUND_TO = "bound_to"
# Documents holding a sealed value without the mark that it is bound: sealed before values were bound.
UNBOUND = {"sealed": {"$exists": True}, "bound": None}


def bound_to(kind: str, document: dict[str, Any]) -> dict[str, Any]:
    """Return what a sealed value of this kind is bound to: the kind, and its document's fields naming its record."""
    return {"kind": kind, **{name: document.get(name) for name in RECORD_FIELDS[kind]}}


class SealedWithoutKey(RuntimeError):
    """A sealed record was read by a service running with FIELD_ENCRYPTION=off."""


def _refuse_sealed(stored: dict[str, Any], what: str) -> None:
    """Refuse to read a sealed document without the key, rather than show it as an empty record."""
    if "sealed" in stored:
        raise SealedWithoutKey(f"{what} is encrypted, but FIELD_ENCRYPTION=off: configure its master key")


class PlainValues:
    """Patient values stored as given: FIELD_ENCRYPTION=off, and every record written before encryption."""

    def patient(self, patient_id: ObjectId, doctor_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Return what is stored of a patient's own fields."""
        return {**fields, "name_keys": [fields["firstName"].lower(), fields["lastName"].lower()]}

    def patient_fields(self, stored: dict[str, Any], internal: tuple[str, ...]) -> dict[str, Any]:
        """Return a stored patient's own fields (everything but the internal names)."""
        _refuse_sealed(stored, "a patient record")
        return {name: value for name, value in stored.items()
                if name not in internal and name not in STORAGE_FIELDS and name not in PLAIN_SEARCH_FIELDS}

    def version(self, patient_id: ObjectId, doctor_id: str, version: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Return what is stored of the fields of a patient's earlier version."""
        return {"patient": fields}

    def appointment(self, appointment_id: ObjectId, doctor_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Return what is stored of an appointment's own fields."""
        return fields

    def appointment_fields(self, stored: dict[str, Any]) -> dict[str, Any]:
        """Return a stored appointment as it was given (ids included)."""
        _refuse_sealed(stored, "an appointment")
        return dict(stored)

    def version_fields(self, stored: dict[str, Any]) -> dict[str, Any]:
        """Return the fields of a stored earlier version."""
        _refuse_sealed(stored, "a patient version")
        return stored["patient"]

    def patient_search(self, doctor_id: str, name_prefix: str | None, born_on: str | None) -> dict[str, Any]:
        """Return the filter of patients with a name starting with name_prefix (any case) and born on born_on."""
        search: dict[str, Any] = {}
        if name_prefix and len(name_prefix) < SHORTEST_NAME_PREFIX:
            search["name_keys"] = name_prefix.lower()
        elif name_prefix:
            # An anchored prefix on lower-cased keys: served by the index.
            search["name_keys"] = {"$regex": "^" + re.escape(name_prefix.lower())}
        if born_on:
            search["dateOfBirth"] = born_on
        return search or dict(EVERY_PATIENT_KEY)

    def close(self) -> None:
        """Release what these values hold (nothing, stored plain)."""

    def answer(self, record_id: ObjectId, doctor_id: str, body: Any) -> dict[str, Any]:
        """Return what is stored of an idempotent request's answer body."""
        return {"body": body}

    def answer_body(self, stored: dict[str, Any]) -> Any:
        """Return the answer body of a stored idempotency record."""
        _refuse_sealed(stored, "a stored answer")
        return stored["body"]

    def request_fingerprint(self, digest: str) -> dict[str, Any]:
        """Return what is stored to recognise a repeated request by its digest."""
        return {"fingerprint": digest}

    def same_request(self, stored: dict[str, Any], digest: str) -> bool:
        """Tell whether a stored idempotency record was made for the request with this digest."""
        return hmac.compare_digest(stored.get("fingerprint", ""), digest)


class SealedValues(PlainValues):
    """Patient values sealed by field encryption: the database only sees ciphertexts and keyed blind indexes.

    Each sealed value is bound to its record (RECORD_FIELDS), and refused (NotSealedForThisRecord) when found in
    another. Records written in plain before encryption are still read until `flask encrypt-existing` seals them
    (a change to one stores it sealed), and found by the searches if there were any when the service started.
    """

    def __init__(self, encryption: FieldEncryption, plain_patients: bool, unbound_values: bool = False) -> None:
        self._encryption = encryption
        # Searching both forms takes an $or, which some servers answer by scanning: only while plain ones remain.
        self._plain_patients = plain_patients
        # Values sealed before they were bound carry nothing to check, so they are read wherever they are found:
        # only while the database held some when the service started (encrypt-existing binds them in place).
        # The binding protects a value from the moment it is bound.
        self._unbound_values = unbound_values

    def _seal(self, kind: str, record: dict[str, Any], value: Any) -> dict[str, Any]:
        """Seal a value together with the record it belongs to (one encryption), marked as bound."""
        return {"sealed": self._encryption.seal({BOUND_TO: bound_to(kind, record), "value": value}), "bound": True}

    def _open(self, kind: str, stored: dict[str, Any]) -> Any:
        """Unseal a stored document's value, refusing one sealed for another record."""
        opened = self._encryption.unseal(stored["sealed"])
        if isinstance(opened, dict) and BOUND_TO in opened:
            if opened[BOUND_TO] != bound_to(kind, stored):
                raise NotSealedForThisRecord()
            return opened["value"]
        # No value of ours ever had this key (patient fields, a reason, an answer envelope): sealed before binding.
        if not self._unbound_values:
            raise NotSealedForThisRecord()
        return opened

    def rebound(self, kind: str, stored: dict[str, Any]) -> dict[str, Any]:
        """Return what to set on a document whose value is not marked bound: its value bound to it, or the mark."""
        opened = self._encryption.unseal(stored["sealed"])
        if isinstance(opened, dict) and BOUND_TO in opened:
            # Bound already (to this record, or copied from another, which every read refuses): only the mark.
            return {"bound": True}
        return self._seal(kind, stored, opened)

    def patient(self, patient_id: ObjectId, doctor_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Return a patient's own fields as one sealed value, with the keys it is listed and searched by."""
        found_by: list[Any] = [EVERY_PATIENT, *self._name_index(doctor_id, fields)]
        if "dateOfBirth" in fields:
            found_by.append(self._encryption.blind("birth", doctor_id, fields["dateOfBirth"]))
        return {**self._seal("patient", {"_id": patient_id, "doctor_id": doctor_id}, fields), FOUND_BY: found_by}

    def _name_index(self, doctor_id: str, fields: dict[str, Any]) -> list[bytes]:
        """Return the blind index of the lower-cased first and last names' prefixes that `q` matches."""
        prefixes = {name[:length] for name in (fields["firstName"].lower(), fields["lastName"].lower())
                    for length in range(min(SHORTEST_NAME_PREFIX, len(name)), len(name) + 1)}
        return sorted(self._encryption.blind_all("name", doctor_id, prefixes))

    def patient_fields(self, stored: dict[str, Any], internal: tuple[str, ...]) -> dict[str, Any]:
        """Return a stored patient's own fields, unsealing them (or reading a plain record as it is)."""
        if "sealed" in stored:
            fields: dict[str, Any] = self._open("patient", stored)
            return fields
        return super().patient_fields(stored, internal)

    def version(self, patient_id: ObjectId, doctor_id: str, version: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Return an earlier version's fields as one sealed value, bound to its patient and version."""
        return self._seal("version", {"patient_id": patient_id, "version": version, "doctor_id": doctor_id}, fields)

    def appointment(self, appointment_id: ObjectId, doctor_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Return an appointment's time as it is and the rest (the reason for the visit) as one sealed value."""
        stored = {name: value for name, value in fields.items() if name in PLAIN_APPOINTMENT_FIELDS}
        private = {name: value for name, value in fields.items() if name not in PLAIN_APPOINTMENT_FIELDS}
        if private:
            stored.update(self._seal("appointment", {"_id": appointment_id, "doctor_id": doctor_id}, private))
        return stored

    def appointment_fields(self, stored: dict[str, Any]) -> dict[str, Any]:
        """Return a stored appointment with its sealed fields opened (or a plain one as it is)."""
        if "sealed" not in stored:
            return super().appointment_fields(stored)
        opened = {name: value for name, value in stored.items() if name not in ("sealed", "bound")}
        return {**opened, **self._open("appointment", stored)}

    def version_fields(self, stored: dict[str, Any]) -> dict[str, Any]:
        """Return the fields of a stored earlier version, sealed or plain."""
        if "sealed" in stored:
            fields: dict[str, Any] = self._open("version", stored)
            return fields
        return super().version_fields(stored)

    def patient_search(self, doctor_id: str, name_prefix: str | None, born_on: str | None) -> dict[str, Any]:
        """Match the blind indexes of the name prefix and the date, or a plain record's own values."""
        keys = [self._encryption.blind("name", doctor_id, name_prefix.lower())] if name_prefix else []
        if born_on:
            keys.append(self._encryption.blind("birth", doctor_id, born_on))
        if not keys:
            return dict(EVERY_PATIENT_KEY)
        # Both searches on the one index: MongoDB reads it at one key and checks the other on each patient found.
        sealed = {FOUND_BY: keys[0] if len(keys) == 1 else {"$all": keys}}
        if not self._plain_patients:
            return sealed
        return {"$or": [sealed, super().patient_search(doctor_id, name_prefix, born_on)]}

    def close(self) -> None:
        """Release the data key's libmongocrypt handle."""
        self._encryption.close()

    def answer(self, record_id: ObjectId, doctor_id: str, body: Any) -> dict[str, Any]:
        """Seal an answer body, bound to its key's record: it may hold a whole patient (a 201, the documented 404)."""
        return self._seal("answer", {"_id": record_id, "doctor_id": doctor_id}, body)

    def answer_body(self, stored: dict[str, Any]) -> Any:
        """Return a stored answer body, sealed or plain."""
        return self._open("answer", stored) if "sealed" in stored else super().answer_body(stored)

    def request_fingerprint(self, digest: str) -> dict[str, Any]:
        """Key the request digest: a bare hash of a body would let anyone confirm a guessed patient record."""
        return {"request_mac": self._request_mac(digest)}

    def same_request(self, stored: dict[str, Any], digest: str) -> bool:
        """Compare with the keyed digest, or with the bare one of a record stored before encryption."""
        if "request_mac" in stored:
            return hmac.compare_digest(bytes(stored["request_mac"]), bytes(self._request_mac(digest)))
        return super().same_request(stored, digest)

    def _request_mac(self, digest: str) -> bytes:
        """Return the keyed digest of a request."""
        return self._encryption.blind("request", "", digest)


# How a service stores patient values, whichever it is: what every reader and writer of records is handed.
ValueStorage = PlainValues | SealedValues
