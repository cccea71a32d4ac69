"""The commands each write sends: one bulkWrite and the commit where the server takes it, one per write before."""
import pytest

from tests.conftest import CommandsStarted, bearer, jane, service_watched_by


class Commands(CommandsStarted):
    """Remember the names of the commands a client sends to the test's database (not the server's own)."""

    def __init__(self):
        self.names = []

    def started(self, event):
        if event.command_name not in ("hello", "isMaster", "ping", "endSessions", "createIndexes"):
            self.names.append(event.command_name)


@pytest.fixture
def watched(backend, replica_set_server, mongo, request):
    """The service over the test's database, through a client whose commands are recorded; and the record."""
    commands = Commands()
    app, _ = service_watched_by(commands, replica_set_server.uri, request, mongo[1])
    app.extensions["clinic.db"].prepare()
    return app.test_client(), commands


def sent(commands, call):
    """Return the commands one call sent."""
    commands.names.clear()
    response = call()
    assert response.status_code in (200, 201), response.get_json()
    return list(commands.names), response


BATCHED = {
    "add_and_link": ["bulkWrite", "commitTransaction"],
    "add_and_link with a key": ["insert", "bulkWrite", "commitTransaction"],
    "schedule": ["bulkWrite", "commitTransaction"],
    "link existing": ["find", "find", "bulkWrite", "commitTransaction"],
    "correct": ["find", "bulkWrite", "commitTransaction"],
}
PER_COMMAND = {
    "add_and_link": ["insert", "find", "update", "insert", "commitTransaction"],
    "add_and_link with a key": ["insert", "insert", "find", "update", "insert", "update", "commitTransaction"],
    "schedule": ["insert", "insert", "commitTransaction"],
    "link existing": ["find", "find", "update", "insert", "commitTransaction"],
    "correct": ["find", "insert", "update", "insert", "commitTransaction"],
}


@pytest.mark.parametrize("backend, expected", [("replica_set", BATCHED), ("replica_set_per_command", PER_COMMAND)],
                         indirect=["backend"], ids=["batched", "per-command"])
def test_each_write_sends_the_commands_of_its_path(watched, expected):
    api, commands = watched
    headers = bearer()
    seen = {}

    def schedule():
        return api.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"}, headers=headers)

    seen["schedule"], response = sent(commands, schedule)
    first = response.get_json()["data"]["_id"]
    seen["add_and_link"], response = sent(commands, lambda: api.post(
        "/patients/add_and_link?uid=doctor_a", json=jane(first), headers=headers))
    patient_id = response.get_json()["data"]["_id"]
    second = schedule().get_json()["data"]["_id"]
    seen["add_and_link with a key"], _ = sent(commands, lambda: api.post(
        "/patients/add_and_link?uid=doctor_a", json=jane(second), headers={**headers, "Idempotency-Key": "rt-1"}))
    third = schedule().get_json()["data"]["_id"]
    seen["link existing"], _ = sent(commands, lambda: api.put(
        f"/appointments/{third}/patient?uid=doctor_a", json={"patient_id": patient_id}, headers=headers))
    seen["correct"], _ = sent(commands, lambda: api.patch(
        f"/patients/{patient_id}?uid=doctor_a", json={"lastName": "Smyth"}, headers={**headers, "If-Match": '"1"'}))

    assert seen == expected
