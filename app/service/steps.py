"""The clinic's business steps in their documented order: validated data in, records or refusals out, no request."""
import datetime
from collections.abc import Iterator
from itertools import islice
from typing import Any

from app.service.refusals import (
    AppointmentAlreadyLinked,
    AppointmentNotFound,
    AppointmentNotFoundPatientKept,
    AppointmentNotLinked,
    NotAppointmentOwner,
    NotPatientOwner,
    PatientChanged,
    PatientNotFound,
    PatientVersionNotFound,
)
from app.service.schemas import patient_fields
from app.store.records import Page, Records, own_fields
from app.store.sealing import SHORTEST_NAME_PREFIX
from app.store.versions import FIRST_VERSION

# The outcomes a step records in the audit trail (app/http gives each its status).
CREATED, DONE = "created", "done"
PATIENT_KEPT = "patient kept"
READ = "read"


def add_and_link_patient(records: Records, doctor_id: str, appointment_id: str,
                         patient_fields: dict[str, Any]) -> dict[str, Any]:
    """Create a patient for this doctor and link it to their free appointment, in the documented order."""
    # 1. Create Patient.
    patient = records.add_patient(doctor_id, patient_fields)
    # Where writes wait for one batch at the commit, steps 2-4 are not read: the conditional link (5) matches only
    # the doctor's free appointment, so it stands for them. If it matched nothing, the unit of work runs these steps
    # again one command at a time, and the checks below say which refusal it was, in the documented order.
    if not records.writes_deferred:
        appointment = records.find_appointment(appointment_id, doctor_id)
        if appointment is None:
            # 2. Find Appointment; if there is none, the patient is kept and handed back, so the caller can link it
            # later.
            if not records.appointment_exists(appointment_id):
                records.audit(("patient.create", PATIENT_KEPT, {"patient_id": patient["_id"],
                                                                "appointment_id": appointment_id}))
                raise AppointmentNotFoundPatientKept(patient)
            # 3. Verify Ownership: it exists, and it is not this doctor's.
            raise NotAppointmentOwner()
        # 4. Check Availability.
        if appointment.get("patient_id") is not None:
            raise AppointmentAlreadyLinked()
    # 5. Link Patient, if the appointment is still free: another request may have taken it since it was read.
    if not records.link_patient(appointment_id, doctor_id, patient["_id"]):
        raise AppointmentAlreadyLinked()
    # One record for both writes, as for the documented 404: the patient made, and the appointment it went to.
    records.audit(("patient.create", CREATED, {"patient_id": patient["_id"], "appointment_id": appointment_id}))
    return patient


def link_existing_patient(records: Records, doctor_id: str, appointment_id: str, patient_id: str) -> dict[str, Any]:
    """Link the doctor's existing patient to their free appointment, in the documented order; again, change nothing."""
    # Documented order: the patient first, then the appointment.
    patient_of(records, doctor_id, patient_id)
    appointment = appointment_of(records, doctor_id, appointment_id)
    if appointment.get("patient_id") == patient_id:
        return appointment  # already so: a repeated link writes nothing, not even an audit record
    if appointment.get("patient_id") is not None:
        raise AppointmentAlreadyLinked()
    if not records.link_patient(appointment_id, doctor_id, patient_id):
        # Free when read, taken before our update: unless by this same link, another request won the race.
        appointment = appointment_of(records, doctor_id, appointment_id)
        if appointment.get("patient_id") == patient_id:
            return appointment
        raise AppointmentAlreadyLinked()
    records.audit(("appointment.link", DONE, {"appointment_id": appointment_id, "patient_id": patient_id}))
    return {**appointment, "patient_id": patient_id}


def unlink_patient(records: Records, doctor_id: str, appointment_id: str) -> dict[str, Any]:
    """Free the doctor's appointment from its patient, keeping the patient."""
    appointment = appointment_of(records, doctor_id, appointment_id)
    patient_id = appointment.get("patient_id")
    if patient_id is None:
        raise AppointmentNotLinked()
    if not records.unlink_patient(appointment_id, doctor_id, patient_id):
        # Linked when read, changed before our update: another request freed it first.
        raise AppointmentNotLinked()
    records.audit(("appointment.unlink", DONE, {"appointment_id": appointment_id, "patient_id": patient_id}))
    return {**appointment, "patient_id": None}


def schedule_appointment(records: Records, doctor_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Create an appointment for this doctor, without a patient."""
    appointment = records.add_appointment(doctor_id, fields)
    records.audit(("appointment.create", CREATED, {"appointment_id": appointment["_id"]}))
    return appointment


def correct_patient_record(records: Records, doctor_id: str, patient_id: str, expected_version: int,
                           patch: dict[str, Any]) -> dict[str, Any]:
    """Apply a merge patch to the doctor's patient if still at the version the caller read; return it as it stands."""
    # A patch that changes nothing writes nothing and keeps the version.
    patient = patient_of(records, doctor_id, patient_id)
    if patient["version"] != expected_version:
        raise PatientChanged()
    before = own_fields(patient)
    # The corrected record is checked whole, by the rules add_and_link applies, so the two cannot drift apart.
    after = patient_fields.load(merge_patch(before, patch))
    changed = changed_fields(before, after)
    if not changed:
        return patient
    corrected = records.correct_patient(patient, after)
    if corrected is None:
        # At this version when read, changed before our update: another correction won the race.
        raise PatientChanged()
    records.audit(("patient.update", DONE, {"patient_id": patient_id}, changed))
    return corrected


def patient_history(records: Records, doctor_id: str, patient_id: str, limit: int, before: int | None = None) -> Page:
    """Return one page of the doctor's patient's versions, newest first, and the cursor of the next page."""
    patient = patient_of(records, doctor_id, patient_id)
    return records.patient_history(patient, limit, before)


def list_patients(records: Records, doctor_id: str, query: dict[str, Any]) -> Page:
    """Return one page of the doctor's patients, newest first, by name prefix and date of birth if asked."""
    return records.list_patients(doctor_id, query["limit"], after=query.get("after"), name_prefix=query.get("q"),
                                 born_on=query.get("dateOfBirth"))


def list_appointments(records: Records, doctor_id: str, query: dict[str, Any]) -> Page:
    """Return one page of the doctor's appointments, by date; linked or free only if asked."""
    return records.list_appointments(doctor_id, query["limit"], after=query.get("after"), linked=query.get("linked"))


def record_read(records: Records, action: str, targets: dict[str, Any]) -> None:
    """Record in the doctor's audit trail that these records were read: their ids, never their values."""
    records.audit((action, READ, targets))


def patient_at_version(records: Records, doctor_id: str, patient_id: str, version: int) -> dict[str, Any]:
    """Return the doctor's patient as it was at this version, refusing a version it never had."""
    patient = patient_of(records, doctor_id, patient_id)
    # A patient is read at most at app.store.versions.LAST_VERSION: version + 1 below is a number the database holds.
    if not FIRST_VERSION <= version <= patient["version"]:
        raise PatientVersionNotFound()
    # The history's own read: the newest version below version + 1 is this one, if it is kept.
    entries, _ = records.patient_history(patient, 1, version + 1)
    if not entries or entries[0]["version"] != version:
        raise PatientVersionNotFound()
    return entries[0]


def search_patients(records: Records, doctor_id: str, query: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                                    str | None, int]:
    """Return one page of the doctor's patients, newest first, matching every name search and the birth date asked,
    the cursor of the next page, and how many match over every page.

    `name` matches the start of a first or last name, `family` of the last name, `given` of the first name.
    """
    name, family, given = query.get("name"), query.get("family"), query.get("given")
    born_on, limit, after = query.get("dateOfBirth"), query["limit"], query.get("after")
    if family is None and given is None:
        total = records.count_patients(doctor_id, name_prefix=name, born_on=born_on)
        if limit == 0:
            return [], None, total  # the total alone (FHIR's _count=0)
        items, next_cursor = records.list_patients(doctor_id, limit, after=after, name_prefix=name, born_on=born_on)
        return items, next_cursor, total
    # The blind index finds the start of a name, not which of the two names it starts: the candidates it finds
    # are opened and kept when the right name starts so. The total opens every candidate.
    indexed = family if family is not None else given
    assert indexed is not None

    def matching(after: str | None) -> Iterator[tuple[dict[str, Any], str]]:
        for patient, cursor in records.patients_in_order(doctor_id, indexed, born_on, after):
            if (_starts(patient.get("lastName"), family) and _starts(patient.get("firstName"), given)
                    and (_starts(patient.get("firstName"), name) or _starts(patient.get("lastName"), name))):
                yield patient, cursor

    total = sum(1 for _ in matching(None))
    if limit == 0:
        return [], None, total
    found = list(islice(matching(after), limit + 1))
    next_cursor = found[limit - 1][1] if len(found) > limit else None
    return [patient for patient, _ in found[:limit]], next_cursor, total


def _starts(name: Any, search: str | None) -> bool:
    """Tell whether a name matches a name search as the blind index does: its start from 3 characters, else whole."""
    if search is None:
        return True
    if not isinstance(name, str):
        return False
    name, search = name.lower(), search.lower()
    return name.startswith(search) if len(search) >= SHORTEST_NAME_PREFIX else name == search


def find_appointments(records: Records, doctor_id: str, query: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                                       str | None, int]:
    """Return one page of the doctor's appointments by date, of one patient and in a time range if asked, the
    cursor of the next page, and how many match over every page."""
    patient_id = query.get("patient_id")
    starts_from: datetime.datetime | None = query.get("starts_from")
    starts_before: datetime.datetime | None = query.get("starts_before")
    total = records.count_appointments(doctor_id, patient_id=patient_id, starts_from=starts_from,
                                       starts_before=starts_before)
    if query["limit"] == 0:
        return [], None, total  # the total alone (FHIR's _count=0)
    items, next_cursor = records.list_appointments(doctor_id, query["limit"], after=query.get("after"),
                                                   patient_id=patient_id, starts_from=starts_from,
                                                   starts_before=starts_before)
    return items, next_cursor, total


def list_audit_trail(records: Records, doctor_id: str, query: dict[str, Any]) -> Page:
    """Return one page of the doctor's audit trail, newest first."""
    return records.list_audit(doctor_id, query["limit"], after=query.get("after"))


def merge_patch(target: Any, patch: Any) -> Any:
    """Return target with a JSON Merge Patch applied (RFC 7396): objects merge, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = merge_patch(merged.get(name), value)
    return merged


def changed_fields(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    """Return the names (`lastName`, `contact.phone`) of the fields whose values differ, sorted; never the values."""
    changed = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if isinstance(old, dict) and isinstance(new, dict):
            changed.extend(changed_fields(old, new, f"{prefix}{name}."))
        elif old != new or (name in before) != (name in after):
            changed.append(prefix + name)
    return changed


# The doctor's record is read on the doctor's own shard. Only when it is not there is the record looked for across
# every doctor (on a sharded cluster, every shard), to tell another doctor's (403) from none at all (404).


def appointment_of(records: Records, doctor_id: str, appointment_id: str) -> dict[str, Any]:
    """Return the doctor's appointment, refusing one that does not exist or is another doctor's."""
    appointment = records.find_appointment(appointment_id, doctor_id)
    if appointment is None:
        raise NotAppointmentOwner() if records.appointment_exists(appointment_id) else AppointmentNotFound()
    return appointment


def patient_of(records: Records, doctor_id: str, patient_id: str) -> dict[str, Any]:
    """Return the doctor's patient, refusing one that does not exist or is another doctor's."""
    patient = records.find_patient(patient_id, doctor_id)
    if patient is None:
        raise NotPatientOwner() if records.patient_exists(patient_id) else PatientNotFound()
    return patient
