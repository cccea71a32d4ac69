"""A keyed add_and_link survives the database failing at any one of its commands: the retry gets the success."""
import datetime

import pytest
from bson import ObjectId

from tests.conftest import bearer, jane

# The commands of a keyed add_and_link on a replica set, in order, as (command, matches of it to let through).
# One command per write: claim the key, insert the patient, find the appointment, link it, audit, store the
# answer, commit. Batched (MongoDB 8.0+): claim the key, one bulkWrite with all the writes, commit.
PER_COMMAND = [("insert", 0), ("insert", 1), ("find", 0), ("update", 0), ("insert", 2), ("update", 1),
               ("commitTransaction", 0)]
BATCHED = [("insert", 0), ("bulkWrite", 0), ("commitTransaction", 0)]
COMMANDS = [("replica_set_per_command", *command) for command in PER_COMMAND] + [
    ("replica_set", *command) for command in BATCHED]
# HostUnreachable: retryable, and not a state change that would leave the driver waiting for its next heartbeat.
FAULTS = {"error": {"errorCode": 6}, "dropped connection": {"closeConnection": True}}


def link(client, appointment_id):
    """POST add_and_link for doctor_a with the same Idempotency-Key every time."""
    return client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id),
                       headers={**bearer(), "Idempotency-Key": "visit-1"})


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("backend,command,skip", COMMANDS, indirect=["backend"],
                         ids=[f"{backend}-{name}{skip}" for backend, name, skip in COMMANDS])
def test_a_retry_after_a_fault_at_any_command_gets_the_one_success(client, db, add_appointment, failpoints,
                                                                    command, skip, fault):
    appointment_id = add_appointment()
    # The command fails, and so does the driver's own retry of it (times: 2).
    failpoints.admin.command("configureFailPoint", "failCommand", mode={"skip": skip, "times": 2},
                             data={"failCommands": [command], **FAULTS[fault]})
    first = link(client, appointment_id)
    failpoints.admin.command("configureFailPoint", "failCommand", mode="off")
    retried = link(client, appointment_id)
    again = link(client, appointment_id)

    assert first.status_code in (201, 500, 503), first.get_json()
    assert retried.status_code == 201, retried.get_json()
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == retried.get_json()
    patients = list(db.patients.find())
    assert [str(patient["_id"]) for patient in patients] == [retried.get_json()["data"]["_id"]]
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] == patients[0]["_id"]
    keys = list(db.idempotency_keys.find())
    assert [(key["state"], key["status"]) for key in keys] == [("done", 201)]
    assert db.audit.count_documents({"action": "patient.create", "outcome": 201}) == 1


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("backend", ["replica_set", "replica_set_per_command"], indirect=True)
def test_a_refusal_whose_answer_could_not_be_kept_is_not_given(client, db, add_appointment, failpoints, fault):
    appointment_id = add_appointment(patient_id=ObjectId())  # taken: add_and_link is refused with 409
    # Keeping the refusal's answer fails: its update, and the driver's retry of it.
    failpoints.admin.command("configureFailPoint", "failCommand", mode={"times": 2},
                             data={"failCommands": ["update"], **FAULTS[fault]})
    first = link(client, appointment_id)
    failpoints.admin.command("configureFailPoint", "failCommand", mode="off")
    db.appointments.update_one({"_id": ObjectId(appointment_id)}, {"$set": {"patient_id": None}})  # freed since
    # The first run is long over: a retry takes its key over.
    db.idempotency_keys.update_many({}, {"$set": {"claimed_at": datetime.datetime(2000, 1, 1)}})
    retried = link(client, appointment_id)

    # Had the 409 gone out, the retry would have answered 201: two answers to one key.
    assert first.status_code == 503, first.get_json()
    assert retried.status_code == 201, retried.get_json()
    assert db.patients.count_documents({}) == 1
