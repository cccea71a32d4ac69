"""Acknowledged means durable: every write waits for a majority's journal, and a 201 survives kill -9 of the server."""
import os
import signal

import pymongo
import pytest
from bson import ObjectId

from app import create_app
from tests.conftest import CommandsStarted, bearer, jane, make_config, service_watched_by
from tests.servers import SecantusServer

WRITES = {"insert", "update", "delete", "findAndModify", "commitTransaction"}
BURST = 60


class WriteConcerns(CommandsStarted):
    """Record the write concern of every write command a client sends, and whether it ran in a transaction."""

    def __init__(self):
        self.seen = []

    def started(self, event):
        if event.command_name in WRITES:
            # Statements of a transaction carry autocommit: false and take the write concern of its commit.
            in_transaction = "autocommit" in event.command and event.command_name != "commitTransaction"
            self.seen.append((event.command_name, in_transaction, event.command.get("writeConcern")))


@pytest.mark.realdb
@pytest.mark.parametrize("standalone", [False, True], ids=["replica_set", "standalone"])
def test_every_write_asks_for_a_majority_and_the_journal(replica_set_server, standalone_server, request, standalone):
    server = standalone_server if standalone else replica_set_server
    listener = WriteConcerns()
    app, database = service_watched_by(listener, server.uri, request)
    client = app.test_client()
    appointment_id = str(database.appointments.insert_one({"doctor_id": "doctor_a", "patient_id": None}).inserted_id)
    listener.seen.clear()

    keyed = {**bearer(), "Idempotency-Key": "durable-1"}
    link = "/patients/add_and_link?uid=doctor_a"
    scheduled = client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"}, headers=keyed)
    assert scheduled.status_code == 201
    assert client.post(link, json=jane(appointment_id), headers=bearer()).status_code == 201
    assert client.post(link, json=jane(appointment_id), headers=bearer()).status_code == 409

    outside = [(name, concern) for name, in_transaction, concern in listener.seen if not in_transaction]
    assert {name for name, _ in outside} >= ({"insert", "update"} if standalone else {"insert", "commitTransaction"})
    assert all(concern == {"w": "majority", "j": True} for _, concern in outside), outside


@pytest.mark.slow
@pytest.mark.realdb
def test_answered_201s_survive_kill_9_of_the_database(tmp_path, request):
    # The standalone server journals non-transactional writes when asked (j: true) and skips it otherwise, so a
    # burst answered before the journal reached the disk loses its tail. Transactions (the replica set make run
    # starts) are journalled before their commit is answered only with --sync-on-commit: test_make_run.py.
    server = SecantusServer(tmp_path / "data", standalone=True).start()
    request.addfinalizer(server.stop)
    app = create_app(make_config(MONGODB_URI=server.uri, MONGODB_TIMEOUT_MS=5000, ALLOW_STANDALONE=True))
    request.addfinalizer(app.extensions["clinic.db"].client.close)
    client = app.test_client()
    with pymongo.MongoClient(server.uri) as direct:
        appointments = direct.clinic.appointments.insert_many(
            [{"doctor_id": "doctor_a", "patient_id": None} for _ in range(BURST)]).inserted_ids
    answered = []
    for appointment_id in appointments:
        response = client.post("/patients/add_and_link?uid=doctor_a", json=jane(str(appointment_id)), headers=bearer())
        assert response.status_code == 201
        answered.append(ObjectId(response.get_json()["data"]["_id"]))

    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    server.start()

    with pymongo.MongoClient(server.uri) as direct:
        kept = {patient["_id"] for patient in direct.clinic.patients.find({}, {"_id": 1})}
        linked = {appointment["patient_id"] for appointment in direct.clinic.appointments.find()}
    assert set(answered) <= kept
    assert set(answered) <= linked
