"""Simultaneous PUTs and DELETEs of one appointment's patient, on real servers: exactly one wins."""
import datetime
import threading

import pytest
from bson import ObjectId

from app.store.records import Records
from tests.conftest import at_once, bearer

REQUESTS = 12


def add_patients(db, count):
    """Insert count patients of doctor_a straight into the database and return their ids."""
    now = datetime.datetime.now(datetime.timezone.utc)
    patients = [{"_id": ObjectId(), "doctor_id": "doctor_a", "firstName": f"Patient{i}", "lastName": "Smith",
                 "created_at": now, "name_keys": [f"patient{i}", "smith"]} for i in range(count)]
    db.patients.insert_many(patients)
    return [str(patient["_id"]) for patient in patients]


@pytest.mark.parametrize("backend", ["replica_set", "standalone"], indirect=True)
def test_a_dozen_simultaneous_links_of_different_patients_leave_the_appointment_with_the_one_winner(
        app, db, add_appointment):
    appointment_id = add_appointment()
    patients = add_patients(db, REQUESTS)
    headers = bearer()
    url = f"/appointments/{appointment_id}/patient?uid=doctor_a"
    responses = at_once(app, REQUESTS,
                        lambda client, i: client.put(url, json={"patient_id": patients[i]}, headers=headers))

    statuses = [response.status_code for response in responses]
    assert sorted(statuses) == [200] + [409] * (REQUESTS - 1)
    winner = statuses.index(200)
    assert responses[winner].get_json()["data"]["patient_id"] == patients[winner]
    assert all(response.get_json()["error"] == "Appointment already linked to a patient"
               for response in responses if response.status_code == 409)
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] == ObjectId(patients[winner])
    assert db.audit.count_documents({"action": "appointment.link", "outcome": 200}) == 1
    assert db.audit.count_documents({"action": "appointment.link", "outcome": 409}) == REQUESTS - 1


@pytest.mark.parametrize("backend", ["replica_set", "standalone"], indirect=True)
def test_a_dozen_simultaneous_unlinks_free_the_appointment_exactly_once(app, db, add_appointment):
    [patient_id] = add_patients(db, 1)
    appointment_id = add_appointment(patient_id=ObjectId(patient_id))
    headers = bearer()
    url = f"/appointments/{appointment_id}/patient?uid=doctor_a"
    responses = at_once(app, REQUESTS, lambda client, i: client.delete(url, headers=headers))

    statuses = [response.status_code for response in responses]
    assert sorted(statuses) == [200] + [409] * (REQUESTS - 1)
    assert all(response.get_json()["error"] == "Appointment is not linked to a patient"
               for response in responses if response.status_code == 409)
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is None
    assert db.patients.count_documents({"_id": ObjectId(patient_id)}) == 1
    assert db.audit.count_documents({"action": "appointment.unlink", "outcome": 200}) == 1


@pytest.mark.parametrize("backend", ["standalone"], indirect=True)
@pytest.mark.parametrize("method", ["put", "delete"])
def test_when_both_read_before_either_writes_the_conditional_update_lets_only_one_through(
        app, db, add_appointment, monkeypatch, method):
    # Without transactions nothing else stops the second writer: hold both requests between their read and
    # their write, so each has seen the appointment as the first did, and only the update's condition decides.
    patients = add_patients(db, 2)
    appointment_id = add_appointment(patient_id=ObjectId(patients[0]) if method == "delete" else None)
    both_read = threading.Barrier(2, timeout=10)
    name = "link_patient" if method == "put" else "unlink_patient"
    write = getattr(Records, name)

    def after_both_read(self, *args):
        both_read.wait()
        return write(self, *args)

    monkeypatch.setattr(Records, name, after_both_read)
    url = f"/appointments/{appointment_id}/patient?uid=doctor_a"

    def send(client, index):
        return (client.put(url, json={"patient_id": patients[index]}, headers=bearer())
                if method == "put" else client.delete(url, headers=bearer()))

    responses = at_once(app, 2, send)
    statuses = [response.status_code for response in responses]
    assert sorted(statuses) == [200, 409]
    stored = db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"]
    assert stored == (ObjectId(patients[statuses.index(200)]) if method == "put" else None)
