"""A commit the server applied but whose answer was lost: the driver runs the transaction again, and the request
still answers what it did, once.

As when the database restarts between writing a commit to its journal and answering it: the driver's retry of the
commit finds no such transaction (NoSuchTransaction, labelled TransientTransactionError) and runs the whole
transaction again, which would then find its own writes (a PATCH's new version: 412; its link: 409).
"""
import pytest
from bson import ObjectId
from pymongo.errors import OperationFailure
from pymongo.synchronous.client_session import ClientSession

from tests.conftest import bearer, jane

NO_SUCH_TRANSACTION = 251
pytestmark = pytest.mark.parametrize("backend", ["replica_set", "replica_set_per_command"], indirect=True)


@pytest.fixture
def lose_the_next_commit_answer(monkeypatch):
    """Arm: the next commit is applied by the server, then answered as a restarted server answers its retry."""
    real_commit, armed = ClientSession.commit_transaction, []

    def commit(session):
        real_commit(session)
        if armed:
            armed.pop()
            error = OperationFailure("Transaction with { txnNumber: 1 } has been aborted.", NO_SUCH_TRANSACTION)
            error._add_error_label("TransientTransactionError")
            raise error

    monkeypatch.setattr(ClientSession, "commit_transaction", commit)
    return lambda: armed.append(True)


def trail(db):
    """The audit records as (action, outcome)."""
    return [(record["action"], record["outcome"]) for record in db.audit.find()]


def test_a_patch_whose_commit_answer_was_lost_answers_200_with_one_new_version(client, db, add_appointment,
                                                                               lose_the_next_commit_answer):
    created = client.post("/patients/add_and_link?uid=doctor_a", json=jane(add_appointment()), headers=bearer())
    patient_id = created.get_json()["data"]["_id"]
    lose_the_next_commit_answer()

    patched = client.patch(f"/patients/{patient_id}?uid=doctor_a", json={"lastName": "Jones"},
                           headers={**bearer(), "If-Match": created.headers["ETag"]})

    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["data"]["lastName"] == "Jones" and patched.headers["ETag"] == '"2"'
    assert db.patients.find_one({"_id": ObjectId(patient_id)})["version"] == 2
    assert db.patient_versions.count_documents({}) == 1
    assert trail(db) == [("patient.create", 201), ("patient.update", 200)]


@pytest.mark.parametrize("key", [None, "visit-1"])
def test_an_add_and_link_whose_commit_answer_was_lost_answers_201_with_one_patient(client, db, add_appointment,
                                                                                   lose_the_next_commit_answer, key):
    appointment_id = add_appointment()
    lose_the_next_commit_answer()

    headers = {**bearer(), **({"Idempotency-Key": key} if key else {})}
    created = client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id), headers=headers)

    assert created.status_code == 201, created.get_json()
    patients = list(db.patients.find())
    assert [str(patient["_id"]) for patient in patients] == [created.get_json()["data"]["_id"]]
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] == patients[0]["_id"]
    assert trail(db) == [("patient.create", 201)]
    if key:
        again = client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id), headers=headers)
        assert (again.status_code, again.get_json()) == (201, created.get_json())


def test_an_appointment_whose_commit_answer_was_lost_is_made_once(client, db, lose_the_next_commit_answer):
    lose_the_next_commit_answer()

    made = client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"}, headers=bearer())

    assert made.status_code == 201, made.get_json()
    assert [str(appointment["_id"]) for appointment in db.appointments.find()] == [made.get_json()["data"]["_id"]]
    assert trail(db) == [("appointment.create", 201)]


def test_a_refused_attempt_whose_commit_answer_was_lost_is_recorded_once(client, db, add_appointment,
                                                                         lose_the_next_commit_answer):
    taken = add_appointment(patient_id=ObjectId())
    lose_the_next_commit_answer()

    refused = client.post("/patients/add_and_link?uid=doctor_a", json=jane(taken), headers=bearer())

    assert refused.status_code == 409
    assert db.patients.count_documents({}) == 0
    assert trail(db) == [("appointment.link", 409)]
