"""The audit trail: one record per write and per refused write attempt, ids only, readable per doctor."""
import pytest
from bson import ObjectId

from tests.conftest import CommandsStarted, bearer, jane, service_watched_by


def trail(db):
    """Return the audit records as (action, outcome, doctor_id) tuples, oldest first."""
    return [(r["action"], r["outcome"], r["doctor_id"]) for r in db.audit.find().sort([("at", 1), ("_id", 1)])]


def test_add_and_link_records_the_patient_made_and_its_appointment_in_one_record(client, db, add_appointment):
    appointment_id = add_appointment()
    response = client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id),
                           headers={**bearer(), "X-Request-ID": "req-42"})
    patient_id = response.get_json()["data"]["_id"]

    records = list(db.audit.find())
    assert [(r["action"], r["outcome"]) for r in records] == [("patient.create", 201)]
    assert records[0]["targets"] == {"appointment_id": appointment_id, "patient_id": patient_id}
    assert (records[0]["actor"], records[0]["doctor_id"], records[0]["request_id"]) == ("doctor_a", "doctor_a",
                                                                                        "req-42")


def test_refused_attempts_are_recorded_once_each_with_their_status(client, db, add_appointment):
    foreign = add_appointment(doctor_id="doctor_b")
    linked = add_appointment(patient_id=ObjectId())
    post = lambda body, uid="doctor_a": client.post(f"/patients/add_and_link?uid={uid}", json=body,  # noqa: E731
                                                    headers=bearer())
    post(jane(foreign))                                # 403 not owner
    post(jane(linked))                                 # 409
    post(jane(linked, dateOfBirth="never"))            # 400
    post(jane(linked), uid="doctor_b")                 # 403 not allowed for doctor_b
    post(jane(str(ObjectId())))                        # 404: the kept patient's creation
    client.post("/patients/add_and_link?uid=doctor_a", json=jane(linked))  # 401: no actor, not recorded

    assert sorted(trail(db)) == sorted([
        ("appointment.link", 403, "doctor_a"), ("appointment.link", 409, "doctor_a"),
        ("appointment.link", 400, "doctor_a"), ("appointment.link", 403, "doctor_a"),
        ("patient.create", 404, "doctor_a"),
    ])
    assert [r["outcome"] for r in db.audit.find({"named_doctor": "doctor_b"})] == [403]
    refused_link = db.audit.find_one({"outcome": 409})
    assert refused_link["targets"] == {"appointment_id": linked}


def test_audit_records_hold_no_patient_field_values(client, db, add_appointment):
    client.post("/patients/add_and_link?uid=doctor_a", headers=bearer(),
                json=jane(add_appointment(), firstName="Markerfirst", medicalHistory="Markerhistory"))
    client.post("/patients/add_and_link?uid=doctor_a", headers=bearer(),
                json=jane(add_appointment(doctor_id="x"), firstName="Markerfirst", dateOfBirth="bad"))

    stored = repr(list(db.audit.find()))
    assert db.audit.count_documents({}) == 2  # one per request: the 201 and the refused 400
    for value in ("Markerfirst", "Markerhistory", "1990-03-20", "Boston", "Aetna"):
        assert value not in stored


def test_creating_an_appointment_is_recorded(client, db):
    response = client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"}, headers=bearer())

    record = db.audit.find_one()
    assert (record["action"], record["outcome"]) == ("appointment.create", 201)
    assert record["targets"] == {"appointment_id": response.get_json()["data"]["_id"]}


def test_a_doctor_reads_their_own_trail_newest_first_and_an_admin_any(client, db, add_appointment):
    for _ in range(3):
        client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"}, headers=bearer())
    client.post("/appointments?uid=doctor_b", json={"date": "2026-12-01T09:00:00Z"}, headers=bearer("doctor_b"))

    first = client.get("/audit?uid=doctor_a&limit=2", headers=bearer()).get_json()
    rest = client.get(f"/audit?uid=doctor_a&limit=2&after={first['next']}", headers=bearer()).get_json()
    forbidden = client.get("/audit?uid=doctor_b", headers=bearer("doctor_a"))
    as_admin = client.get("/audit?uid=doctor_b", headers=bearer("ops", roles=["admin"])).get_json()

    ids = [r["_id"] for r in first["data"] + rest["data"]]
    stored = [str(r["_id"]) for r in db.audit.find({"doctor_id": "doctor_a"}).sort([("at", -1), ("_id", -1)])]
    assert ids == stored and len(ids) == 3 and rest["next"] is None
    assert set(first["data"][0]) == {"_id", "at", "actor", "doctor_id", "action", "targets", "outcome", "request_id"}
    assert forbidden.status_code == 403
    assert [r["doctor_id"] for r in as_admin["data"]] == ["doctor_b"]


class AuditWrites(CommandsStarted):
    """Record each command that writes to the audit collection, and whether it ran inside a transaction."""

    def __init__(self):
        self.seen = []

    def started(self, event):
        command = event.command
        namespaces = [entry.get("ns", "") for entry in command.get("nsInfo", [])]  # a client bulkWrite's
        if command.get(event.command_name) == "audit" or any(ns.endswith(".audit") for ns in namespaces):
            self.seen.append((event.command_name, command.get("autocommit") is False))


@pytest.mark.realdb
def test_a_refused_attempt_is_recorded_through_a_unit_of_work_in_a_transaction(replica_set_server, request):
    listener = AuditWrites()
    app, database = service_watched_by(listener, replica_set_server.uri, request)
    client = app.test_client()
    linked = str(database.appointments.insert_one({"doctor_id": "doctor_a", "patient_id": ObjectId()}).inserted_id)
    listener.seen.clear()

    refused = client.post("/patients/add_and_link?uid=doctor_a", json=jane(linked), headers=bearer())

    assert refused.status_code == 409
    # Like every write of the service: in a transaction, under the unit of work's write concern, deadline and retries.
    assert listener.seen and all(in_transaction for _, in_transaction in listener.seen), listener.seen
    assert [(r["action"], r["outcome"]) for r in database.audit.find()] == [("appointment.link", 409)]


def audit_of(client, uid, headers):
    """Return the records GET /audit lists for this uid, newest first."""
    response = client.get(f"/audit?uid={uid}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def test_a_refused_attempt_is_in_the_trail_of_the_doctor_its_caller_may_act_for(client, db, add_appointment):
    theirs = add_appointment(doctor_id="doctor_b", patient_id=ObjectId())
    admin = bearer("ops_1", roles=["admin"])
    intruding = client.post("/patients/add_and_link?uid=doctor_b", json=jane(theirs),
                            headers={**bearer("doctor_a"), "X-Request-ID": "req-intruder"})
    for_them = client.post("/patients/add_and_link?uid=doctor_b", json=jane(theirs),
                           headers={**admin, "X-Request-ID": "req-ops"})
    unnamed = client.post("/patients/add_and_link", json=jane(theirs), headers=bearer("doctor_a"))
    scheduled = client.post("/appointments?uid=doctor_b", json={"date": "2026-12-01T09:00:00Z"}, headers=admin)

    assert [r.status_code for r in (intruding, for_them, unnamed, scheduled)] == [403, 409, 400, 201]
    # B's trail holds only what was done for B by someone allowed to: here the admin, refused and accepted.
    theirs_listed = audit_of(client, "doctor_b", bearer("doctor_b"))
    assert [(r["actor"], r["doctor_id"], r["action"], r["outcome"]) for r in theirs_listed] == [
        ("ops_1", "doctor_b", "appointment.create", 201), ("ops_1", "doctor_b", "appointment.link", 409)]
    assert theirs_listed[1]["request_id"] == "req-ops"
    assert not any("named_doctor" in r for r in theirs_listed)
    # A sees what A tried, naming B, and the attempt that named no one.
    mine = audit_of(client, "doctor_a", bearer("doctor_a"))
    assert [{key: r.get(key) for key in ("actor", "doctor_id", "named_doctor", "outcome", "targets", "request_id")}
            for r in reversed(mine)][0] == {
        "actor": "doctor_a", "doctor_id": "doctor_a", "named_doctor": "doctor_b", "outcome": 403,
        "targets": {"appointment_id": theirs}, "request_id": "req-intruder"}
    assert [(r["doctor_id"], r["outcome"], "named_doctor" in r) for r in mine] == [("doctor_a", 400, False),
                                                                                  ("doctor_a", 403, True)]
    assert db.audit.count_documents({}) == 4
    assert audit_of(client, "ops_1", admin) == []


def counts(db):
    """Return how many documents each collection holds, leaving out the empty ones."""
    held = {name: db[name].count_documents({}) for name in db.list_collection_names()}
    return {name: count for name, count in held.items() if count}


@pytest.mark.parametrize("uid", ["doctor_b\nFAKE", "doctor_b\x00", "d" * 200, "doctor b"],
                         ids=["newline", "nul", "200-characters", "space"])
def test_a_uid_no_token_could_carry_is_refused_and_leaves_nothing_anywhere(client, db, add_appointment, uid):
    free, patient_id = add_appointment(), ObjectId()
    before = counts(db)
    keyed = {**bearer("doctor_a"), "Idempotency-Key": "key-1"}
    responses = [
        client.post("/patients/add_and_link", query_string={"uid": uid}, json=jane(free), headers=keyed),
        client.post("/patients/add_and_link", query_string={"uid": uid}, json={"firstName": "Jane"}, headers=keyed),
        client.post("/appointments", query_string={"uid": uid}, json={"date": "2026-12-01T09:00:00Z"},
                    headers=keyed),
        client.put(f"/appointments/{free}/patient", query_string={"uid": uid}, json={"patient_id": str(patient_id)},
                   headers=bearer("doctor_a")),
        client.delete(f"/appointments/{free}/patient", query_string={"uid": uid}, headers=bearer("doctor_a")),
        client.patch(f"/patients/{patient_id}", query_string={"uid": uid}, json={"firstName": "Eve"},
                     headers={**bearer("doctor_a"), "If-Match": '"1"'}),
    ]

    # The uid step of the documented order answers, or a check before it (a missing appointment_id).
    assert [(r.status_code, r.get_json()["error"]) for r in responses] == [
        (400, "Invalid fields: uid"), (400, "Missing appointment_id"), (400, "Invalid fields: uid"),
        (400, "Invalid fields: uid"), (400, "Invalid fields: uid"), (400, "Invalid fields: uid")]
    assert counts(db) == before
