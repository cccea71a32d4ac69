"""add_and_link_patient's business steps over fake records: their order, their refusals and what each carries.

What a refusal leaves in the database is the real unit of work's to keep: tests/unit/test_unit_of_work.py and
the API tests check it on every backend.
"""
import pytest

from app.service import steps
from app.service.refusals import AppointmentAlreadyLinked, AppointmentNotFoundPatientKept, NotAppointmentOwner

APPOINTMENT = "65f8a1b2c3d4e5f6789012ef"


class FakeRecords:
    """In-memory records that note every call, and whose link can be made to lose a race."""

    def __init__(self, appointments, link_wins=True):
        self.appointments = appointments
        self.patients = {}
        self.calls = []
        self.link_wins = link_wins
        self.audits = []
        # Writes sent one command at a time, as on mongomock: the steps read before they write.
        self.writes_deferred = False

    def add_patient(self, doctor_id, fields):
        self.calls.append("add_patient")
        patient = {"_id": f"{len(self.patients) + 1:024x}", "doctor_id": doctor_id, **fields, "version": 1}
        self.patients[patient["_id"]] = patient
        return patient

    def find_appointment(self, appointment_id, doctor_id):
        self.calls.append("find_appointment")
        appointment = self.appointments.get(appointment_id)
        return appointment if appointment is not None and appointment["doctor_id"] == doctor_id else None

    def appointment_exists(self, appointment_id):
        self.calls.append("appointment_exists")
        return appointment_id in self.appointments

    def audit(self, *events):
        self.audits.extend(events)

    def link_patient(self, appointment_id, doctor_id, patient_id):
        self.calls.append("link_patient")
        if self.link_wins:
            self.appointments[appointment_id]["patient_id"] = patient_id
        return self.link_wins


def records_holding(appointment=None, **kwargs):
    """Return fake records holding at most one appointment."""
    appointments = {} if appointment is None else {APPOINTMENT: appointment}
    return FakeRecords(appointments, **kwargs)


def test_free_appointment_gets_the_new_patient_after_the_steps_in_documented_order():
    records = records_holding({"_id": APPOINTMENT, "doctor_id": "doc", "patient_id": None})
    patient = steps.add_and_link_patient(records, "doc", APPOINTMENT, {"firstName": "Jane", "lastName": "Smith"})

    assert records.calls == ["add_patient", "find_appointment", "link_patient"]
    assert patient["doctor_id"] == "doc" and patient["firstName"] == "Jane"
    assert records.appointments[APPOINTMENT]["patient_id"] == patient["_id"]
    assert records.audits == [
        ("patient.create", steps.CREATED, {"patient_id": patient["_id"], "appointment_id": APPOINTMENT}),
    ]


def test_with_writes_deferred_the_conditional_link_stands_for_the_checks_and_nothing_is_read():
    records = records_holding({"_id": APPOINTMENT, "doctor_id": "doc", "patient_id": None})
    records.writes_deferred = True
    patient = steps.add_and_link_patient(records, "doc", APPOINTMENT, {"firstName": "Jane", "lastName": "Smith"})

    assert records.calls == ["add_patient", "link_patient"]
    assert records.appointments[APPOINTMENT]["patient_id"] == patient["_id"]
    assert [event[:2] for event in records.audits] == [("patient.create", steps.CREATED)]


def test_with_writes_deferred_a_link_that_matches_nothing_is_refused_as_already_linked():
    # The unit of work then runs the steps again with their reads, to say which refusal it was.
    records = records_holding({"_id": APPOINTMENT, "doctor_id": "other", "patient_id": None}, link_wins=False)
    records.writes_deferred = True
    with pytest.raises(AppointmentAlreadyLinked):
        steps.add_and_link_patient(records, "doc", APPOINTMENT, {"firstName": "J", "lastName": "S"})

    assert records.calls == ["add_patient", "link_patient"] and records.audits == []


def test_missing_appointment_keeps_the_patient_and_carries_it():
    records = records_holding()
    with pytest.raises(AppointmentNotFoundPatientKept) as refused:
        steps.add_and_link_patient(records, "doc", APPOINTMENT, {"firstName": "Jane", "lastName": "Smith"})

    assert refused.value.patient["firstName"] == "Jane"
    assert refused.value.patient == records.patients[refused.value.patient["_id"]]
    assert records.audits == [
        ("patient.create", steps.PATIENT_KEPT, {"patient_id": refused.value.patient["_id"],
                                                "appointment_id": APPOINTMENT})]


def test_another_doctors_appointment_is_refused_before_checking_availability():
    records = records_holding({"_id": APPOINTMENT, "doctor_id": "other", "patient_id": "p"})
    with pytest.raises(NotAppointmentOwner):
        steps.add_and_link_patient(records, "doc", APPOINTMENT, {"firstName": "J", "lastName": "S"})

    # Only then, its own appointment not found, is the appointment looked for across doctors.
    assert records.calls == ["add_patient", "find_appointment", "appointment_exists"]
    assert records.audits == []


def test_linked_appointment_is_refused_without_trying_to_link():
    records = records_holding({"_id": APPOINTMENT, "doctor_id": "doc", "patient_id": "p"})
    with pytest.raises(AppointmentAlreadyLinked):
        steps.add_and_link_patient(records, "doc", APPOINTMENT, {"firstName": "J", "lastName": "S"})

    assert "link_patient" not in records.calls


def test_a_lost_race_at_the_link_is_refused_as_already_linked():
    records = records_holding({"_id": APPOINTMENT, "doctor_id": "doc", "patient_id": None}, link_wins=False)
    with pytest.raises(AppointmentAlreadyLinked):
        steps.add_and_link_patient(records, "doc", APPOINTMENT, {"firstName": "J", "lastName": "S"})

    assert records.calls == ["add_patient", "find_appointment", "link_patient"]
    assert records.audits == []


def test_a_merge_patch_merges_objects_removes_nulls_and_replaces_the_rest():
    stored = {"firstName": "Jane", "address": {"city": "Boston", "state": "MA"}, "medicalHistory": "none"}
    patch = {"address": {"city": None, "zipCode": "02101"}, "medicalHistory": None, "lastName": "Smyth"}

    assert steps.merge_patch(stored, patch) == {
        "firstName": "Jane", "address": {"state": "MA", "zipCode": "02101"}, "lastName": "Smyth"}
    assert stored["address"] == {"city": "Boston", "state": "MA"}  # the stored record is left as it was


def test_changed_fields_names_nested_fields_and_never_values():
    before = {"firstName": "Jane", "contact": {"phone": "+1", "email": "a@b.c"}, "medicalHistory": "x"}
    after = {"firstName": "Jane", "contact": {"phone": "+2", "email": "a@b.c"}, "lastName": "S"}

    assert steps.changed_fields(before, after) == ["contact.phone", "lastName", "medicalHistory"]
    assert steps.changed_fields(before, before) == []
