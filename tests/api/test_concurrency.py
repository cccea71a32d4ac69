"""Simultaneous add_and_link requests for one appointment, on real servers: exactly one wins."""
import threading

import pytest
from bson import ObjectId

from tests.conftest import bearer, jane

REQUESTS = 12


@pytest.mark.parametrize("backend", ["replica_set", "standalone"], indirect=True)
def test_a_dozen_simultaneous_links_to_one_appointment_leave_exactly_one_patient(app, db, add_appointment):
    appointment_id = add_appointment()
    start = threading.Barrier(REQUESTS)
    statuses = [None] * REQUESTS
    headers = bearer()

    def link(index):
        client = app.test_client()
        start.wait()
        response = client.post("/patients/add_and_link?uid=doctor_a", headers=headers,
                               json=jane(appointment_id, firstName=f"Patient{index}"))
        statuses[index] = response.status_code

    threads = [threading.Thread(target=link, args=(i,)) for i in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [201] + [409] * (REQUESTS - 1)
    patients = list(db.patients.find())
    assert len(patients) == 1
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] == patients[0]["_id"]
