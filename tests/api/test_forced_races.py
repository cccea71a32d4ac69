"""Races forced on every backend: another change committed between a request's read and its conditional write."""
import datetime

import pytest
from bson import ObjectId

from app.store.records import Records
from tests.conftest import bearer, jane

# What decides each race differs by backend, the outcome must not. Without transactions (mongomock, standalone) the
# conditional update's filter alone stops the late write. On the replica set, a change committed after the
# transaction read fails its write with a WriteConflict, and the retry reads the change; where the batched
# add_and_link has read nothing before its bulkWrite, the filter makes the link match nothing and the steps rerun.
RACED = "raced-request"
ALREADY_LINKED = {"success": False, "error": "Appointment already linked to a patient"}
CHANGED = {"success": False, "error": "Patient was changed since that version"}


@pytest.fixture
def add_patient(app, db):
    """Store a patient of doctor_a at its first version, as the service stores one, and return its id."""
    app.extensions["clinic.db"].prepare()
    records = Records(db, app.extensions["clinic.db"].values)

    def add(last="Smith"):
        return records.add_patient("doctor_a", {"firstName": "Jane", "lastName": last})["_id"]

    return add


def commit_before_first(monkeypatch, name, competitor):
    """Make Records.<name> commit competitor() just before its first call goes through; return the calls made."""
    # Only the first: a transaction's retry, or the steps rerun after a batched success path missed, call it again,
    # and by then the competitor's change is simply what the request reads.
    write = getattr(Records, name)
    calls = []

    def after_competitor(self, *args):
        calls.append(name)
        if len(calls) == 1:
            competitor()
        return write(self, *args)

    monkeypatch.setattr(Records, name, after_competitor)
    return calls


def link_in_between(db, appointment_id, patient_id):
    """Return a competitor that links the patient to the still free appointment, outside the request's session."""

    def link():
        result = db.appointments.update_one({"_id": ObjectId(appointment_id), "patient_id": None},
                                            {"$set": {"patient_id": ObjectId(patient_id)}})
        assert result.matched_count == 1, "the appointment must still be free when the competitor links it"

    return link


def linked_patient(db, appointment_id):
    """Return the patient id stored on an appointment, as a string, or None."""
    patient_id = db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"]
    return None if patient_id is None else str(patient_id)


def trail_of(db, request_id):
    """Return one request's audit records as (action, outcome, targets) tuples, oldest first."""
    stored = db.audit.find({"request_id": request_id}).sort([("at", 1), ("_id", 1)])
    return [(record["action"], record["outcome"], record["targets"]) for record in stored]


def raced():
    """Return the headers of the request the race is forced on: a token and a request id to find its audit by."""
    return {**bearer(), "X-Request-ID": RACED}


def test_add_and_link_answers_409_when_another_patient_is_linked_after_it_found_the_appointment_free(
        client, db, add_appointment, add_patient, monkeypatch):
    other = add_patient("Other")
    appointment_id = add_appointment()
    calls = commit_before_first(monkeypatch, "link_patient", link_in_between(db, appointment_id, other))

    response = client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id), headers=raced())

    assert calls, "the link was never attempted, so no race was forced"
    assert (response.status_code, response.get_json()) == (409, ALREADY_LINKED)
    assert linked_patient(db, appointment_id) == other
    # A 409 rolls back: only the 404 keeps the patient it created. What remains is the other patient, and the
    # refused attempt's own audit record, nothing of a creation or a link.
    assert [str(patient["_id"]) for patient in db.patients.find()] == [other]
    assert db.patient_versions.count_documents({}) == 0
    assert trail_of(db, RACED) == [("appointment.link", 409, {"appointment_id": appointment_id})]


def test_put_link_answers_409_when_another_patient_is_linked_after_it_found_the_appointment_free(
        client, db, add_appointment, add_patient, monkeypatch):
    patient_id, other = add_patient(), add_patient("Other")
    appointment_id = add_appointment()
    calls = commit_before_first(monkeypatch, "link_patient", link_in_between(db, appointment_id, other))

    response = client.put(f"/appointments/{appointment_id}/patient?uid=doctor_a", json={"patient_id": patient_id},
                          headers=raced())

    assert calls, "the link was never attempted, so no race was forced"
    assert (response.status_code, response.get_json()) == (409, ALREADY_LINKED)
    assert linked_patient(db, appointment_id) == other
    assert trail_of(db, RACED) == [("appointment.link", 409, {"appointment_id": appointment_id,
                                                              "patient_id": patient_id})]


def test_put_link_answers_200_and_records_nothing_when_the_same_patient_is_linked_after_it_found_the_appointment_free(
        client, db, add_appointment, add_patient, monkeypatch):
    patient_id = add_patient()
    appointment_id = add_appointment()
    calls = commit_before_first(monkeypatch, "link_patient", link_in_between(db, appointment_id, patient_id))

    response = client.put(f"/appointments/{appointment_id}/patient?uid=doctor_a", json={"patient_id": patient_id},
                          headers=raced())

    assert calls, "the link was never attempted, so no race was forced"
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert (data["_id"], data["patient_id"]) == (appointment_id, patient_id)
    assert linked_patient(db, appointment_id) == patient_id
    # Already so when its write came: like a repeated link, this request wrote nothing, not even an audit record
    # (the link is the competitor's, and recorded by it).
    assert trail_of(db, RACED) == []


def test_patch_answers_412_and_keeps_the_other_correction_when_it_came_after_the_read(
        app, client, db, add_patient, monkeypatch, unsealed):
    patient_id = add_patient()
    # The competitor's correction as the service would store it: its fields sealed, at the next version.
    values = app.extensions["clinic.db"].values
    theirs = {**values.patient(ObjectId(patient_id), "doctor_a", {"firstName": "Jane", "lastName": "Smyth"}),
              "version": 2, "updated_at": datetime.datetime.now(datetime.timezone.utc), "updated_by": "doctor_a"}

    def correct():
        result = db.patients.update_one({"_id": ObjectId(patient_id), "version": 1}, {"$set": theirs})
        assert result.matched_count == 1, "the patient must still be at version 1 when the competitor corrects it"

    calls = commit_before_first(monkeypatch, "correct_patient", correct)

    response = client.patch(f"/patients/{patient_id}?uid=doctor_a", json={"lastName": "Jones"},
                            headers={**raced(), "If-Match": '"1"'}, content_type="application/merge-patch+json")

    assert calls, "the correction was never attempted, so no race was forced"
    assert (response.status_code, response.get_json()) == (412, CHANGED)
    stored = unsealed.patient(db.patients.find_one({"_id": ObjectId(patient_id)}))
    assert (stored["version"], stored["lastName"]) == (2, "Smyth")
    # The version this request would have kept in the history went with its rollback.
    assert db.patient_versions.count_documents({}) == 0
    assert trail_of(db, RACED) == [("patient.update", 412, {"patient_id": patient_id})]
