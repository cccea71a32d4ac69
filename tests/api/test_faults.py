"""Faults injected on a real server (failCommand): a failed write leaves nothing behind, and retries work."""
import time

import pymongo
import pytest
from bson import ObjectId

from app import create_app
from tests.conftest import CommandsStarted, bearer, jane, make_config, service_watched_by
from tests.servers import SecantusServer

REAL = pytest.mark.parametrize("backend", ["replica_set", "replica_set_per_command", "standalone"], indirect=True)


def write_command(backend, command):
    """Return the command that carries a write: the one bulkWrite of a batched transaction, else the write's own."""
    return "bulkWrite" if backend == "replica_set" else command


def fail_next(mongo_client, command, **data):
    """Make the server fail the next `command` once, as configured by data."""
    mongo_client.admin.command("configureFailPoint", "failCommand", mode={"times": 1},
                               data={"failCommands": [command], **data})


def link(client, appointment_id):
    """POST add_and_link for doctor_a."""
    return client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id), headers=bearer())


@REAL
def test_a_failed_link_update_leaves_no_patient_and_a_retry_succeeds(backend, client, db, add_appointment, failpoints):
    appointment_id = add_appointment()
    fail_next(failpoints, write_command(backend, "update"), errorCode=2)

    failed = link(client, appointment_id)
    assert failed.status_code == 500
    assert failed.get_json() == {"success": False, "error": "Internal server error"}
    assert db.patients.count_documents({}) == 0
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is None

    retried = link(client, appointment_id)
    assert retried.status_code == 201
    assert db.patients.count_documents({}) == 1


@REAL
def test_a_failed_patient_insert_writes_nothing(backend, client, db, add_appointment, failpoints):
    appointment_id = add_appointment()
    fail_next(failpoints, write_command(backend, "insert"), errorCode=2)

    response = link(client, appointment_id)
    assert response.status_code == 500 and response.get_json()["success"] is False
    assert db.patients.count_documents({}) == 0
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is None


class CommitCounter(CommandsStarted):
    """Count the commitTransaction commands a client sends."""

    commits = 0

    def started(self, event):
        self.commits += event.command_name == "commitTransaction"


@pytest.mark.parametrize("backend", ["replica_set", "replica_set_per_command"], indirect=True)
def test_a_transient_commit_error_is_retried_and_the_request_succeeds_once(
        replica_set_server, mongo, db, add_appointment, failpoints, request):
    counter = CommitCounter()
    client = service_watched_by(counter, replica_set_server.uri, request, mongo[1])[0].test_client()
    appointment_id = add_appointment()
    fail_next(failpoints, "commitTransaction", errorCode=112, errorLabels=["TransientTransactionError"])

    response = link(client, appointment_id)
    assert response.status_code == 201
    assert counter.commits == 2  # the first commit failed with the transient label and was retried
    assert db.patients.count_documents({}) == 1
    patient_id = ObjectId(response.get_json()["data"]["_id"])
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] == patient_id


@pytest.mark.slow
@pytest.mark.realdb
@pytest.mark.parametrize("standalone", [False, True], ids=["replica_set", "standalone"])
def test_a_stopped_database_answers_503_in_time_and_the_same_process_recovers(tmp_path, request, standalone):
    server = SecantusServer(tmp_path / "data", standalone=standalone).start()
    request.addfinalizer(server.stop)
    app = create_app(make_config(MONGODB_URI=server.uri, MONGODB_TIMEOUT_MS=1000))
    request.addfinalizer(app.extensions["clinic.db"].client.close)
    client = app.test_client()
    with pymongo.MongoClient(server.uri) as direct:
        appointments = [direct.clinic.appointments.insert_one(
            {"doctor_id": "doctor_a", "patient_id": None}).inserted_id for _ in range(2)]
    assert link(client, str(appointments[0])).status_code == 201

    server.stop()
    started = time.monotonic()
    down = link(client, str(appointments[1]))
    assert down.status_code == 503
    assert down.get_json() == {"success": False, "error": "Database unavailable"}
    assert time.monotonic() - started < 5  # the 1 s timeout, with room for a slow machine

    server.start()
    assert link(client, str(appointments[1])).status_code == 201
    with pymongo.MongoClient(server.uri) as direct:
        assert direct.clinic.patients.count_documents({}) == 2
