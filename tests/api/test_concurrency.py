"""Simultaneous add_and_link requests for one appointment, on real servers: exactly one wins."""
import pytest
from bson import ObjectId

from tests.conftest import at_once, bearer, jane

REQUESTS = 12


@pytest.mark.parametrize("backend", ["replica_set", "standalone"], indirect=True)
def test_a_dozen_simultaneous_links_to_one_appointment_leave_exactly_one_patient(app, db, add_appointment):
    appointment_id = add_appointment()
    headers = bearer()
    responses = at_once(app, REQUESTS, lambda client, index: client.post(
        "/patients/add_and_link?uid=doctor_a", headers=headers, json=jane(appointment_id, firstName=f"Patient{index}")))
    statuses = [response.status_code for response in responses]

    assert sorted(statuses) == [201] + [409] * (REQUESTS - 1)
    patients = list(db.patients.find())
    assert len(patients) == 1
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] == patients[0]["_id"]
