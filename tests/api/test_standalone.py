"""A server without transactions takes no writes unless ALLOW_STANDALONE says so; reads and probes say why."""
import pytest
from bson import ObjectId

from app import create_app
from app.store.exceptions import ReplicaSetRequired
from tests.conftest import bearer, jane, make_config

STANDALONE = pytest.mark.parametrize("backend", ["standalone", "mongomock"], indirect=True)
REFUSED = {"success": False, "error": ReplicaSetRequired.message}


@pytest.fixture
def strict_client(mongo):
    """The service over a server without transactions, as production starts it (ALLOW_STANDALONE unset)."""
    client, name = mongo
    return create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name, ALLOW_STANDALONE=False)).test_client()


@STANDALONE
def test_writes_answer_503_saying_a_replica_set_is_required_and_write_nothing(strict_client, db, add_appointment):
    appointment_id = add_appointment()
    headers = {**bearer(), "Idempotency-Key": "standalone-1"}
    linked = strict_client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id), headers=headers)
    scheduled = strict_client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"}, headers=headers)

    assert (linked.status_code, linked.get_json()) == (503, REFUSED)
    assert (scheduled.status_code, scheduled.get_json()) == (503, REFUSED)
    assert "replication.replSetName" in REFUSED["error"] and "rs.initiate()" in REFUSED["error"]
    assert db.patients.count_documents({}) == 0
    assert db.appointments.count_documents({}) == 1
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is None
    assert db.idempotency_keys.count_documents({}) == 0
    assert db.audit.count_documents({}) == 0


@STANDALONE
def test_readiness_answers_503_with_the_same_reason_while_reads_still_work(strict_client, add_appointment):
    appointment_id = add_appointment()
    ready = strict_client.get("/readyz")
    read = strict_client.get(f"/appointments/{appointment_id}?uid=doctor_a", headers=bearer())

    assert (ready.status_code, ready.get_json()) == (503, REFUSED)
    assert read.status_code == 200 and read.get_json()["data"]["_id"] == appointment_id
    assert strict_client.get("/healthz").status_code == 200


@pytest.mark.parametrize("backend", ["replica_set"], indirect=True)
def test_a_replica_set_takes_writes_without_the_setting(strict_client, db, add_appointment):
    response = strict_client.post("/patients/add_and_link?uid=doctor_a", json=jane(add_appointment()), headers=bearer())

    assert response.status_code == 201
    assert strict_client.get("/readyz").status_code == 200
    assert db.patients.count_documents({}) == 1
