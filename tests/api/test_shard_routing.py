"""On a cluster sharded on doctor_id, every command the service sends reaches one doctor's shard.

Every API test already fails if the service sent a command that would be broadcast (tests/api/conftest.py, judged by
tests/shard_routing.py, which also says what is not judged and why). Here: the judgement itself, on commands as
pymongo sends them; then every route and outcome once, request by request, on the real server with and without the
client bulkWrite, and the operator commands: each request's commands named one doctor, and only a refused request
(403 or 404) or an operator command read across doctors.
"""
import pytest
from bson import ObjectId

from app.store.records import EVERY_DOCTOR, WHOSE_RECORD, exactly
from app.store.writes import CommandWrites
from tests.api.test_encryption_commands import load_written_before, new_key
from tests.conftest import bearer, jane
from tests.shard_routing import judge

DOCTOR = "doctor_a"
ID = ObjectId()


def broadcasts(command_name, command):
    """Return what judge names as broadcast in a command."""
    return judge(command_name, command).broadcasts


@pytest.mark.parametrize("query", [
    {"_id": ID, "doctor_id": DOCTOR},
    {"_id": ID, "doctor_id": {"$eq": DOCTOR}},
    {"_id": ID, "doctor_id": exactly(DOCTOR)},
    {"$and": [{"doctor_id": DOCTOR, "created_at": {"$gt": 1}}, {"name_index": b"x"}]},
], ids=["equal", "$eq", "exactly", "in a top-level $and"])
def test_a_filter_with_an_equality_on_doctor_id_is_sent_to_one_shard(query):
    assert broadcasts("find", {"find": "patients", "filter": query}) == []


@pytest.mark.parametrize("query", [
    {"_id": ID},
    {"doctor_id": {"$in": [DOCTOR, "doctor_b"]}},
    {"doctor_id": {"$ne": DOCTOR}},
    {"$or": [{"doctor_id": DOCTOR}, {"doctor_id": "doctor_b"}]},
    {"doctor_id": [DOCTOR]},
    {"$comment": "anything else", "_id": ID},
], ids=["by _id alone", "$in", "$ne", "$or", "a list", "an unknown mark"])
def test_a_filter_naming_no_one_doctor_is_named_as_a_broadcast(query):
    assert broadcasts("find", {"find": "patient_versions", "filter": query}) == [
        f"find on patient_versions: filter {query!r} names no one doctor"]


def test_every_statement_of_a_write_is_judged_and_each_broadcast_named():
    update = {"update": "idempotency_keys", "updates": [{"q": {"_id": ID, "doctor_id": DOCTOR}, "u": {}},
                                                        {"q": {"_id": ID, "state": "running"}, "u": {}}]}
    delete = {"delete": "audit", "deletes": [{"q": {"_id": ID}, "limit": 1}]}
    insert = {"insert": "patients", "documents": [{"_id": ID, "doctor_id": DOCTOR}, {"_id": ID}]}
    find_and_modify = {"findAndModify": "appointments", "query": {"_id": ID}, "update": {}}

    assert broadcasts("update", update) == [
        f"update on idempotency_keys: filter {{'_id': {ID!r}, 'state': 'running'}} names no one doctor"]
    assert broadcasts("delete", delete) == [f"delete on audit: filter {{'_id': {ID!r}}} names no one doctor"]
    assert broadcasts("insert", insert) == [f"insert on patients: inserts {{'_id': {ID!r}}} without a doctor_id"]
    assert len(broadcasts("findAndModify", find_and_modify)) == 1
    assert judge("update", update).judged == 2


def test_each_op_of_a_client_bulk_write_on_a_sharded_collection_is_judged():
    command = {"bulkWrite": 1, "nsInfo": [{"ns": "clinic.appointments"}, {"ns": "clinic.idempotency_keys"},
                                          {"ns": "clinic.rate_limit_windows"}],
               "ops": [{"update": 0, "filter": {"_id": ID, "doctor_id": exactly(DOCTOR)}, "updateMods": {}},
                       {"insert": 1, "document": {"_id": ID, "doctor_id": DOCTOR}},
                       {"update": 1, "filter": {"_id": ID, "state": "running"}, "updateMods": {}},
                       {"update": 2, "filter": {"_id": "subject/doctor_a"}, "updateMods": {}}]}

    judgement = judge("bulkWrite", command)

    assert judgement.broadcasts == [f"bulkWrite update on idempotency_keys: filter {{'_id': {ID!r}, 'state': "
                                    "'running'} names no one doctor"]
    assert judgement.judged == 3  # not the op on the rate-limit windows: that collection stays unsharded


def test_an_aggregate_is_sent_to_one_shard_only_when_its_first_stage_matches_one_doctor():
    first = {"aggregate": "audit", "pipeline": [{"$match": {"doctor_id": DOCTOR}}, {"$sort": {"at": -1}}]}
    later = {"aggregate": "audit", "pipeline": [{"$sort": {"at": -1}}, {"$match": {"doctor_id": DOCTOR}}]}

    assert broadcasts("aggregate", first) == []
    assert broadcasts("aggregate", later) == ["aggregate on audit: first stage's $match None names no one doctor"]


def test_a_read_marked_as_across_doctors_is_let_through_and_counted_but_a_marked_write_is_not():
    read = judge("find", {"find": "patients", "filter": {"_id": ID, "$comment": WHOSE_RECORD}})
    count = judge("aggregate", {"aggregate": "patients", "pipeline": [{"$match": {"$comment": EVERY_DOCTOR}}]})
    write = judge("update", {"update": "patients", "updates": [{"q": {"_id": ID, "$comment": EVERY_DOCTOR}}]})

    assert (read.broadcasts, read.across) == ([], [f"find on patients ({WHOSE_RECORD})"])
    assert (count.broadcasts, count.across) == ([], [f"aggregate on patients ({EVERY_DOCTOR})"])
    assert len(write.broadcasts) == 1 and write.across == []


def test_unsharded_collections_and_index_creation_are_not_judged_and_an_unknown_command_is_named():
    assert judge("find", {"find": "key_vault", "filter": {}}).judged == 0
    assert judge("update", {"update": "rate_limit_windows", "updates": [{"q": {"_id": "k"}}]}).judged == 0
    assert judge("createIndexes", {"createIndexes": "patients", "indexes": []}).judged == 0
    assert judge("getMore", {"getMore": 1, "collection": "patients"}).judged == 0
    assert broadcasts("mapReduce", {"mapReduce": "patients"}) == [
        "mapReduce on patients: a command this check does not know; judge it in tests/shard_routing.py"]


@pytest.mark.parametrize("backend", ["replica_set"], indirect=True)
def test_the_watch_judges_the_services_commands_and_not_the_tests_own(app, db, shard_routing):
    app.extensions["clinic.db"].prepare()
    shard_routing.clear()

    db.patients.find_one({"_id": ID})  # the test's own: not judged
    assert (shard_routing.judged, shard_routing.broadcasts) == (0, [])
    CommandWrites(db).update("patients", {"_id": ID}, {"$set": {"version": 2}})  # sent by the service's code
    assert shard_routing.broadcasts == [f"update on patients: filter {{'_id': {ID!r}}} names no one doctor"]
    shard_routing.clear()  # caught: this test's teardown would fail on it


class Requests:
    """Send requests as doctor_a, noting what each one's commands would do on a cluster sharded on doctor_id."""

    def __init__(self, api, seen):
        self.api = api
        self.seen = seen
        self.by_label = {}

    def send(self, label, status, method, path, body=None, uid=DOCTOR, headers=None, token=DOCTOR):
        """Send one request, check its status, and keep its commands' judgement under label; return it."""
        self.seen.clear()
        response = self.api.open(f"{path}{'&' if '?' in path else '?'}uid={uid}", method=method, json=body,
                                 headers={**bearer(token), **(headers or {})})
        assert response.status_code == status, (label, response.get_json())
        self.by_label[label] = (list(self.seen.broadcasts), list(self.seen.across), self.seen.judged)
        return response


def every_route_and_outcome(requests):
    """Send every route once per outcome, as the API tests do; the ids each needs are made on the way."""
    send = requests.send

    def schedule(label="schedule an appointment", uid=DOCTOR):
        body = send(label, 201, "POST", "/appointments", {"date": "2026-12-01T09:00:00Z", "reason": "Check-up"},
                    uid=uid, token=uid).get_json()
        return body["data"]["_id"]

    theirs = schedule("schedule another doctor's appointment", uid="doctor_b")
    patient = send("add_and_link", 201, "POST", "/patients/add_and_link", jane(schedule())).get_json()["data"]["_id"]
    keyed = {"Idempotency-Key": "routing-1"}
    keyed_body = jane(schedule(), firstName="Keyed")
    send("add_and_link with a key", 201, "POST", "/patients/add_and_link", keyed_body, headers=keyed)
    send("add_and_link replayed", 201, "POST", "/patients/add_and_link", keyed_body, headers=keyed)
    send("add_and_link, a key used for another request", 422, "POST", "/patients/add_and_link",
         jane(schedule()), headers=keyed)
    send("add_and_link, no such appointment: the patient kept", 404, "POST", "/patients/add_and_link",
         jane(str(ObjectId())))
    send("add_and_link, another doctor's appointment", 403, "POST", "/patients/add_and_link", jane(theirs))
    send("add_and_link with a key, another doctor's appointment", 403, "POST", "/patients/add_and_link",
         jane(theirs), headers={"Idempotency-Key": "routing-2"})
    linked = schedule()
    send("PUT link", 200, "PUT", f"/appointments/{linked}/patient", {"patient_id": patient})
    send("add_and_link, appointment already linked", 409, "POST", "/patients/add_and_link", jane(linked))
    send("add_and_link, invalid fields", 400, "POST", "/patients/add_and_link", jane(schedule(), firstName=""))
    send("add_and_link for a doctor the token may not act for", 403, "POST", "/patients/add_and_link",
         jane(schedule()), uid="doctor_b")

    send("read a patient", 200, "GET", f"/patients/{patient}")
    theirs_patient = send("add_and_link as another doctor", 201, "POST", "/patients/add_and_link",
                          jane(schedule(uid="doctor_b")), uid="doctor_b", token="doctor_b").get_json()["data"]["_id"]
    send("read another doctor's patient", 403, "GET", f"/patients/{theirs_patient}")
    send("read a missing patient", 404, "GET", f"/patients/{ObjectId()}")
    send("read a patient as an admin", 200, "GET", f"/patients/{theirs_patient}", uid="doctor_b",
         headers=bearer("ops", roles=["admin"]))
    first_page = send("list patients", 200, "GET", "/patients?limit=1").get_json()
    send("list patients, next page", 200, "GET", f"/patients?limit=1&after={first_page['next']}")
    send("search patients by name prefix", 200, "GET", "/patients?q=ja")
    send("search patients by date of birth", 200, "GET", "/patients?dateOfBirth=1990-03-20")
    send("search patients by both", 200, "GET", "/patients?q=smi&dateOfBirth=1990-03-20")

    send("PATCH a patient", 200, "PATCH", f"/patients/{patient}", {"lastName": "Smyth"}, headers={"If-Match": '"1"'})
    send("PATCH at a version since changed", 412, "PATCH", f"/patients/{patient}", {"lastName": "Smith"},
         headers={"If-Match": '"1"'})
    send("PATCH another doctor's patient", 403, "PATCH", f"/patients/{theirs_patient}", {"lastName": "X"},
         headers={"If-Match": '"1"'})
    history = send("history", 200, "GET", f"/patients/{patient}/history?limit=1").get_json()
    send("history, next page", 200, "GET", f"/patients/{patient}/history?limit=1&after={history['next']}")
    send("history of another doctor's patient", 403, "GET", f"/patients/{theirs_patient}/history")

    free = schedule()
    send("PUT link, again: nothing to change", 200, "PUT", f"/appointments/{linked}/patient", {"patient_id": patient})
    send("PUT link of another doctor's patient", 403, "PUT", f"/appointments/{free}/patient",
         {"patient_id": theirs_patient})
    send("PUT link of a missing patient", 404, "PUT", f"/appointments/{free}/patient", {"patient_id": str(ObjectId())})
    send("PUT link to another doctor's appointment", 403, "PUT", f"/appointments/{theirs}/patient",
         {"patient_id": patient})
    send("PUT link to a missing appointment", 404, "PUT", f"/appointments/{ObjectId()}/patient",
         {"patient_id": patient})
    send("DELETE link", 200, "DELETE", f"/appointments/{linked}/patient")
    send("DELETE link of a free appointment", 409, "DELETE", f"/appointments/{linked}/patient")
    send("DELETE link of another doctor's appointment", 403, "DELETE", f"/appointments/{theirs}/patient")

    send("read an appointment", 200, "GET", f"/appointments/{free}")
    send("read another doctor's appointment", 403, "GET", f"/appointments/{theirs}")
    send("read a missing appointment", 404, "GET", f"/appointments/{ObjectId()}")
    page = send("list appointments", 200, "GET", "/appointments?limit=2").get_json()
    send("list appointments, next page", 200, "GET", f"/appointments?limit=2&after={page['next']}")
    send("list linked appointments", 200, "GET", "/appointments?linked=true")
    send("list free appointments", 200, "GET", "/appointments?linked=false")
    trail = send("audit trail", 200, "GET", "/audit?limit=2").get_json()
    send("audit trail, next page", 200, "GET", f"/audit?limit=2&after={trail['next']}")


# The refusals that must tell another doctor's record (403) from none at all (404): the only requests that read
# across doctors.
WHOSE = {
    "add_and_link, no such appointment: the patient kept",
    "add_and_link, another doctor's appointment",
    "add_and_link with a key, another doctor's appointment",
    "read another doctor's patient",
    "read a missing patient",
    "PATCH another doctor's patient",
    "history of another doctor's patient",
    "PUT link of another doctor's patient",
    "PUT link of a missing patient",
    "PUT link to another doctor's appointment",
    "PUT link to a missing appointment",
    "DELETE link of another doctor's appointment",
    "read another doctor's appointment",
    "read a missing appointment",
}


@pytest.mark.parametrize("backend", ["replica_set", "replica_set_per_command"], indirect=True)
def test_every_route_and_outcome_sends_each_command_to_one_doctors_shard(app, shard_routing):
    app.extensions["clinic.db"].prepare()
    requests = Requests(app.test_client(), shard_routing)

    every_route_and_outcome(requests)

    judged = requests.by_label
    assert {label: sent[0] for label, sent in judged.items() if sent[0]} == {}
    # The watch saw every request's commands (a refused write's too: its audit record).
    assert [label for label, sent in judged.items() if not sent[2]] == []
    across = {label: set(sent[1]) for label, sent in judged.items() if sent[1]}
    assert set(across) == WHOSE
    assert set().union(*across.values()) <= {f"find on appointments ({WHOSE_RECORD})",
                                             f"find on patients ({WHOSE_RECORD})"}


@pytest.mark.parametrize("backend", ["replica_set"], indirect=True)
def test_the_start_and_the_operator_commands_read_across_doctors_only_where_marked_and_write_to_one(
        app, db, shard_routing, monkeypatch):
    load_written_before(db)  # plain records, so that encrypt-existing has some to seal and bind

    app.extensions["clinic.db"].prepare()
    started = (list(shard_routing.broadcasts), set(shard_routing.across))
    shard_routing.clear()
    encrypted = app.test_cli_runner().invoke(args=["encrypt-existing"])
    assert encrypted.exit_code == 0, encrypted.output
    # What it judged besides its marked reads are its writes.
    sealing = (list(shard_routing.broadcasts), set(shard_routing.across),
               shard_routing.judged - len(shard_routing.across))
    shard_routing.clear()
    monkeypatch.setenv("NEW_FIELD_ENCRYPTION_KEY", new_key()[0])
    rotated = app.test_cli_runner().invoke(args=["rotate-master-key"])
    assert rotated.exit_code == 0, rotated.output

    assert started == ([], {f"find on {name} ({EVERY_DOCTOR})"
                            for name in ("patients", "patient_versions", "appointments", "idempotency_keys")})
    assert sealing[0] == []
    assert sealing[1] == {f"{command} on {name} ({EVERY_DOCTOR})" for command in ("find", "aggregate")
                          for name in ("patients", "patient_versions", "appointments", "idempotency_keys")}
    # Besides its scans and counts, one update per document sealed, each naming its doctor.
    assert "encrypted 3 patients, 1 patient_versions, 2 idempotency_keys, 1 appointments" in encrypted.output
    assert sealing[2] == 7
    # The rotation rewraps the data key in the key vault, which stays unsharded: nothing on the sharded collections.
    assert (shard_routing.broadcasts, shard_routing.across, shard_routing.judged) == ([], [], 0)
