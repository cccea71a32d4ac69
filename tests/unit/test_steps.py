"""add_and_link_patient's business steps over fake records: their order, their refusals and what each carries.

What a refusal leaves in the database is the real unit of work's to keep: tests/unit/test_unit_of_work.py and
the API tests check it on every backend.
"""
import pytest

from app.service import steps
from app.service.refusals import AppointmentAlreadyLinked, AppointmentNotFoundPatientKept, NotAppointmentOwner
from app.store.errors import KeptWork

APPOINTMENT = "65f8a1b2c3d4e5f6789012ef"


class FakeRecords:
    """In-memory records that note every call, and whose link can be made to lose a race."""

    def __init__(self, appointments, link_wins=True):
        self.appointments = appointments
        self.patients = {}
        self.calls = []
        self.link_wins = link_wins
        self.audits = []

    def add_patient(self, doctor_id, fields):
        self.calls.append("add_patient")
        patient = {"_id": f"{len(self.patients) + 1:024x}", "doctor_id": doctor_id, **fields, "version": 1}
        self.patients[patient["_id"]] = patient
        return patient

    def find_appointment(self, appointment_id):
        self.calls.append("find_appointment")
        return self.appointments.get(appointment_id)

    def audit(self, *events):
        self.audits.extend(events)

    def link_patient(self, appointment_id, doctor_id, patient_id):
        self.calls.append("link_patient")
        if self.link_wins:
            self.appointments[appointment_id]["patient_id"] = patient_id
        return self.link_wins


class FakeUnitOfWork:
    """Run the steps on the fake records; keeping or undoing their writes is not faked here."""

    def __init__(self, records):
        self.records = records

    def run(self, steps, success_path=None):
        # The steps are what these tests check: the order of the refusals (a success path has no checks).
        return steps(self.records)


def unit(appointment=None, **kwargs):
    """Return a fake unit of work holding at most one appointment."""
    appointments = {} if appointment is None else {APPOINTMENT: appointment}
    return FakeUnitOfWork(FakeRecords(appointments, **kwargs))


def test_free_appointment_gets_the_new_patient_after_the_steps_in_documented_order():
    uow = unit({"_id": APPOINTMENT, "doctor_id": "doc", "patient_id": None})
    patient = steps.add_and_link_patient(uow, "doc", APPOINTMENT, {"firstName": "Jane", "lastName": "Smith"})

    assert uow.records.calls == ["add_patient", "find_appointment", "link_patient"]
    assert patient["doctor_id"] == "doc" and patient["firstName"] == "Jane"
    assert uow.records.appointments[APPOINTMENT]["patient_id"] == patient["_id"]
    assert uow.records.audits == [
        ("patient.create", 201, {"patient_id": patient["_id"]}),
        ("appointment.link", 201, {"appointment_id": APPOINTMENT, "patient_id": patient["_id"]}),
    ]


def test_missing_appointment_keeps_the_patient_and_carries_it():
    uow = unit()
    with pytest.raises(AppointmentNotFoundPatientKept) as refused:
        steps.add_and_link_patient(uow, "doc", APPOINTMENT, {"firstName": "Jane", "lastName": "Smith"})

    assert refused.value.status == 404
    assert refused.value.data["firstName"] == "Jane"
    # The unit of work keeps the writes of a refusal that is KeptWork, and only those.
    assert isinstance(refused.value, KeptWork)
    assert uow.records.audits == [
        ("patient.create", 404, {"patient_id": refused.value.data["_id"], "appointment_id": APPOINTMENT})]


def test_another_doctors_appointment_is_refused_before_checking_availability():
    uow = unit({"_id": APPOINTMENT, "doctor_id": "other", "patient_id": "p"})
    with pytest.raises(NotAppointmentOwner) as refused:
        steps.add_and_link_patient(uow, "doc", APPOINTMENT, {"firstName": "J", "lastName": "S"})

    assert uow.records.calls == ["add_patient", "find_appointment"]
    assert not isinstance(refused.value, KeptWork)


def test_linked_appointment_is_refused_without_trying_to_link():
    uow = unit({"_id": APPOINTMENT, "doctor_id": "doc", "patient_id": "p"})
    with pytest.raises(AppointmentAlreadyLinked) as refused:
        steps.add_and_link_patient(uow, "doc", APPOINTMENT, {"firstName": "J", "lastName": "S"})

    assert "link_patient" not in uow.records.calls
    assert not isinstance(refused.value, KeptWork)


def test_a_lost_race_at_the_link_is_refused_as_already_linked():
    uow = unit({"_id": APPOINTMENT, "doctor_id": "doc", "patient_id": None}, link_wins=False)
    with pytest.raises(AppointmentAlreadyLinked) as refused:
        steps.add_and_link_patient(uow, "doc", APPOINTMENT, {"firstName": "J", "lastName": "S"})

    assert refused.value.status == 409
    assert uow.records.calls == ["add_patient", "find_appointment", "link_patient"]
    assert not isinstance(refused.value, KeptWork)


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
