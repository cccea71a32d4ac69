"""Simultaneous corrections of one patient at one version, on real servers: exactly one wins."""
import threading

import pytest
from bson import ObjectId

from tests.conftest import bearer, jane

REQUESTS = 12


@pytest.mark.parametrize("backend", ["replica_set", "standalone"], indirect=True)
def test_a_dozen_simultaneous_patches_at_one_version_have_exactly_one_winner(app, db, add_appointment):
    client = app.test_client()
    created = client.post("/patients/add_and_link?uid=doctor_a", json=jane(add_appointment()), headers=bearer())
    patient_id = created.get_json()["data"]["_id"]
    start = threading.Barrier(REQUESTS)
    statuses = [None] * REQUESTS
    headers = {**bearer(), "If-Match": created.headers["ETag"]}

    def correct(index):
        racer = app.test_client()
        start.wait()
        response = racer.patch(f"/patients/{patient_id}?uid=doctor_a", headers=headers,
                               json={"lastName": f"Racer{index}"}, content_type="application/merge-patch+json")
        statuses[index] = response.status_code

    threads = [threading.Thread(target=correct, args=(i,)) for i in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [200] + [412] * (REQUESTS - 1)
    patient = db.patients.find_one({"_id": ObjectId(patient_id)})
    assert patient["version"] == 2
    assert patient["lastName"] == f"Racer{statuses.index(200)}"
    kept = list(db.patient_versions.find({"patient_id": ObjectId(patient_id)}))
    assert [(v["version"], v["patient"]["lastName"]) for v in kept] == [(1, "Smith")]
    assert db.audit.count_documents({"action": "patient.update", "outcome": 200}) == 1
