"""Simultaneous corrections of one patient at one version, on real servers: exactly one wins."""
import pytest
from bson import ObjectId

from tests.conftest import at_once, bearer, jane

REQUESTS = 12


@pytest.mark.parametrize("backend", ["replica_set", "standalone"], indirect=True)
def test_a_dozen_simultaneous_patches_at_one_version_have_exactly_one_winner(app, db, add_appointment, unsealed):
    client = app.test_client()
    created = client.post("/patients/add_and_link?uid=doctor_a", json=jane(add_appointment()), headers=bearer())
    patient_id = created.get_json()["data"]["_id"]
    headers = {**bearer(), "If-Match": created.headers["ETag"]}
    responses = at_once(app, REQUESTS, lambda racer, index: racer.patch(
        f"/patients/{patient_id}?uid=doctor_a", headers=headers, json={"lastName": f"Racer{index}"},
        content_type="application/merge-patch+json"))
    statuses = [response.status_code for response in responses]

    assert sorted(statuses) == [200] + [412] * (REQUESTS - 1)
    raw = db.patients.find_one({"_id": ObjectId(patient_id)})
    assert "lastName" not in raw
    patient = unsealed.patient(raw)
    assert patient["version"] == 2
    assert patient["lastName"] == f"Racer{statuses.index(200)}"
    kept = [unsealed.version(v) for v in db.patient_versions.find({"patient_id": ObjectId(patient_id)})]
    assert [(v["version"], v["patient"]["lastName"]) for v in kept] == [(1, "Smith")]
    assert db.audit.count_documents({"action": "patient.update", "outcome": 200}) == 1
