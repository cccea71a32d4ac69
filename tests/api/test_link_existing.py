"""PUT and DELETE /appointments/<id>/patient: link an existing patient, unlink, on every backend."""
import datetime
import logging

import pytest
from bson import ObjectId

from app.store.records import Records
from tests.conftest import bearer, jane


@pytest.fixture
def add_patient(app, db):
    """Insert a patient straight into the database, stored as the service stores one, and return its id."""
    app.extensions["clinic.db"].prepare()
    values = app.extensions["clinic.db"].values

    def add(doctor_id="doctor_a", first="Jane", last="Smith", **fields):
        patient_id = ObjectId()
        own = {"firstName": first, "lastName": last, **fields}
        db.patients.insert_one({"_id": patient_id, "doctor_id": doctor_id, **values.patient(patient_id, doctor_id, own),
                                "created_at": datetime.datetime.now(datetime.timezone.utc)})
        return str(patient_id)

    return add


def link_url(appointment_id, uid="doctor_a"):
    """Return the URL of an appointment's patient link, for a doctor (no uid when None)."""
    return f"/appointments/{appointment_id}/patient" + ("" if uid is None else f"?uid={uid}")


def put(client, appointment_id, patient_id, uid="doctor_a", headers=None):
    """PUT a patient onto an appointment as doctor_a unless told otherwise."""
    return client.put(link_url(appointment_id, uid), json={"patient_id": patient_id},
                      headers=bearer() if headers is None else headers)


def delete(client, appointment_id, uid="doctor_a", headers=None):
    """DELETE an appointment's patient link as doctor_a unless told otherwise."""
    return client.delete(link_url(appointment_id, uid), headers=bearer() if headers is None else headers)


def linked_patient(db, appointment_id):
    """Return the patient id stored on an appointment, as a string, or None."""
    patient_id = db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"]
    return None if patient_id is None else str(patient_id)


def trail(db):
    """Return the audit records as (action, outcome, targets) tuples, oldest first."""
    return [(r["action"], r["outcome"], r["targets"]) for r in db.audit.find().sort([("at", 1), ("_id", 1)])]


def refused(response, status, error):
    """Tell whether a response is the error envelope with this status and message."""
    return (response.status_code, response.get_json()) == (status, {"success": False, "error": error})


# PUT: link an existing patient


def test_linking_an_existing_patient_answers_the_appointment_and_stores_the_link(client, db, add_appointment,
                                                                                add_patient):
    patient_id = add_patient()
    appointment_id = add_appointment(date=datetime.datetime(2026, 12, 1, 9, tzinfo=datetime.timezone.utc),
                                     reason="Follow-up")
    response = put(client, appointment_id, patient_id)

    assert response.status_code == 200
    assert response.get_json() == {"success": True, "data": {
        "_id": appointment_id, "doctor_id": "doctor_a", "patient_id": patient_id,
        "date": "2026-12-01T09:00:00Z", "reason": "Follow-up"}}
    assert linked_patient(db, appointment_id) == patient_id
    assert db.patients.count_documents({}) == 1
    assert trail(db) == [("appointment.link", 200, {"appointment_id": appointment_id, "patient_id": patient_id})]


def test_the_patient_kept_by_add_and_links_404_can_be_linked_afterwards(client, db, add_appointment):
    kept = client.post("/patients/add_and_link?uid=doctor_a", json=jane(str(ObjectId())), headers=bearer())
    patient_id = kept.get_json()["data"]["_id"]
    appointment_id = add_appointment()
    response = put(client, appointment_id, patient_id)

    assert kept.status_code == 404 and response.status_code == 200
    assert response.get_json()["data"]["patient_id"] == patient_id
    assert linked_patient(db, appointment_id) == patient_id


def test_linking_the_same_patient_again_answers_200_and_writes_nothing(client, db, add_appointment, add_patient):
    patient_id = add_patient()
    appointment_id = add_appointment()
    first = put(client, appointment_id, patient_id)
    again = put(client, appointment_id, patient_id.upper())

    assert first.status_code == 200 and again.status_code == 200
    assert again.get_json() == first.get_json()
    assert linked_patient(db, appointment_id) == patient_id
    assert [action for action, _, _ in trail(db)] == ["appointment.link"]


def test_an_appointment_linked_to_another_patient_is_refused_and_keeps_its_patient(client, db, add_appointment,
                                                                                   add_patient):
    first = ObjectId(add_patient(first="First"))
    appointment_id = add_appointment(patient_id=first)
    response = put(client, appointment_id, add_patient(first="Second"))

    assert refused(response, 409, "Appointment already linked to a patient")
    assert linked_patient(db, appointment_id) == str(first)


def test_an_unknown_patient_is_refused_with_404(client, db, add_appointment):
    appointment_id = add_appointment()
    response = put(client, appointment_id, str(ObjectId()))

    assert refused(response, 404, "Patient not found")
    assert linked_patient(db, appointment_id) is None


def test_another_doctors_patient_is_refused_with_403(client, db, add_appointment, add_patient):
    appointment_id = add_appointment()
    response = put(client, appointment_id, add_patient(doctor_id="doctor_b"))

    assert refused(response, 403, "Doctor does not own this patient")
    assert linked_patient(db, appointment_id) is None


def test_an_unknown_appointment_is_refused_with_404(client, db, add_patient):
    response = put(client, str(ObjectId()), add_patient())

    assert refused(response, 404, "Appointment not found")
    assert db.appointments.count_documents({}) == 0 and db.patients.count_documents({}) == 1


def test_another_doctors_appointment_is_refused_with_403(client, db, add_appointment, add_patient):
    appointment_id = add_appointment(doctor_id="doctor_b")
    response = put(client, appointment_id, add_patient())

    assert refused(response, 403, "Doctor does not own this appointment")
    assert linked_patient(db, appointment_id) is None


@pytest.mark.parametrize("kwargs,field", [
    ({"data": "{not json", "content_type": "application/json"}, None),
    ({"data": "[1, 2]", "content_type": "application/json"}, None),
    ({"data": "null", "content_type": "application/json"}, None),
    ({"data": '{"patient_id": "65f8a1b2c3d4e5f6789012cd"}', "content_type": "text/plain"}, None),
    ({"json": {}}, "patient_id"),
    ({"json": {"patient_id": None}}, "patient_id"),
    ({"json": {"patient_id": "65f8a1b2c3d4e5f6789012cZ"}}, "patient_id"),
    ({"json": {"patient_id": {"$ne": None}}}, "patient_id"),
    ({"json": {"patient_id": "65f8a1b2c3d4e5f6789012cd", "firstName": "Jane"}}, "firstName"),
], ids=["malformed", "array", "null", "wrong-content-type", "missing", "none", "not-hex", "operator", "unknown"])
def test_a_body_that_is_not_one_valid_patient_id_is_refused_with_400(client, db, add_appointment, kwargs, field):
    appointment_id = add_appointment()
    response = client.put(link_url(appointment_id), headers=bearer(), **kwargs)

    assert response.status_code == 400
    body = response.get_json()
    assert body["success"] is False
    if field is None:
        assert "JSON" in body["error"] or "Content-Type" in body["error"]
    else:
        assert body["error"] == f"Invalid fields: {field}" and field in body["details"]
    assert linked_patient(db, appointment_id) is None


@pytest.mark.parametrize("send", [
    lambda client, patient_id: put(client, "123", patient_id),
    lambda client, patient_id: delete(client, "123"),
], ids=["put", "delete"])
def test_an_invalid_path_id_is_refused_with_400(client, db, add_patient, send):
    response = send(client, add_patient())

    assert response.status_code == 400
    assert response.get_json()["error"] == "Invalid fields: appointment_id"
    assert db.appointments.count_documents({}) == 0 and db.audit.count_documents({"outcome": 200}) == 0


@pytest.mark.parametrize("method", ["put", "delete"])
@pytest.mark.parametrize("uid,status,error", [
    (None, 400, "Missing doctor_id (uid)"),
    ("", 400, "Missing doctor_id (uid)"),
    ("doc tor", 400, "Invalid fields: uid"),
    ("doctor_b", 403, "Token does not allow acting for this doctor"),
])
def test_a_missing_invalid_or_foreign_uid_is_refused_and_changes_nothing(client, db, add_appointment, add_patient,
                                                                        method, uid, status, error):
    patient_id = add_patient()
    linked = ObjectId(patient_id) if method == "delete" else None
    appointment_id = add_appointment(doctor_id="doctor_b", patient_id=linked)
    response = (put(client, appointment_id, patient_id, uid=uid) if method == "put"
                else delete(client, appointment_id, uid=uid))

    assert response.status_code == status and response.get_json()["error"] == error
    assert linked_patient(db, appointment_id) == (patient_id if method == "delete" else None)


@pytest.mark.parametrize("method", ["put", "delete"])
def test_no_token_is_refused_with_401_before_anything_else(client, db, add_appointment, method):
    appointment_id = add_appointment()
    response = getattr(client, method)(link_url("123", uid=None), data="not json", content_type="text/plain")

    assert refused(response, 401, "Missing bearer token")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert linked_patient(db, appointment_id) is None and db.audit.count_documents({}) == 0


def test_put_checks_answer_in_the_documented_order(client, db, add_appointment, add_patient):
    own, foreign = add_patient(), add_patient(doctor_id="doctor_b")
    free, foreign_linked = add_appointment(), add_appointment(doctor_id="doctor_b", patient_id=ObjectId(foreign))
    unknown = str(ObjectId())

    # body, then path id, then uid, then the uid's ownership, then the patient, then the appointment.
    assert put(client, "123", "x", uid=None).get_json()["details"] == {
        "patient_id": ["Must be a 24-character hexadecimal id."]}
    assert put(client, "123", own, uid=None).get_json()["error"] == "Invalid fields: appointment_id"
    assert put(client, free, own, uid=None).get_json()["error"] == "Missing doctor_id (uid)"
    assert refused(put(client, free, unknown, uid="doctor_b"), 403, "Token does not allow acting for this doctor")
    assert refused(put(client, unknown, unknown), 404, "Patient not found")
    assert refused(put(client, unknown, foreign), 403, "Doctor does not own this patient")
    assert refused(put(client, unknown, own), 404, "Appointment not found")
    assert refused(put(client, foreign_linked, own), 403, "Doctor does not own this appointment")
    assert linked_patient(db, free) is None and linked_patient(db, foreign_linked) == foreign


def test_an_admin_may_link_for_any_doctor(client, db, add_appointment, add_patient):
    patient_id = add_patient(doctor_id="doctor_b")
    appointment_id = add_appointment(doctor_id="doctor_b")
    response = put(client, appointment_id, patient_id, uid="doctor_b", headers=bearer("ops_1", roles=["admin"]))

    assert response.status_code == 200 and response.get_json()["data"]["patient_id"] == patient_id
    assert linked_patient(db, appointment_id) == patient_id
    record = db.audit.find_one()
    assert (record["actor"], record["doctor_id"], record["action"]) == ("ops_1", "doctor_b", "appointment.link")


# DELETE: unlink


def test_unlinking_answers_the_free_appointment_and_keeps_the_patient(client, db, add_appointment, add_patient,
                                                                      unsealed):
    patient_id = add_patient()
    appointment_id = add_appointment(patient_id=ObjectId(patient_id), reason="Check-up")
    response = delete(client, appointment_id)

    assert response.status_code == 200
    assert response.get_json() == {"success": True, "data": {
        "_id": appointment_id, "doctor_id": "doctor_a", "patient_id": None, "reason": "Check-up"}}
    assert linked_patient(db, appointment_id) is None
    assert unsealed.patient(db.patients.find_one({"_id": ObjectId(patient_id)}))["firstName"] == "Jane"
    assert trail(db) == [("appointment.unlink", 200, {"appointment_id": appointment_id, "patient_id": patient_id})]


def test_an_unlinked_appointment_can_be_linked_again(client, db, add_appointment, add_patient):
    first, second = add_patient(first="First"), add_patient(first="Second")
    appointment_id = add_appointment(patient_id=ObjectId(first))

    assert delete(client, appointment_id).status_code == 200
    assert put(client, appointment_id, second).status_code == 200
    assert linked_patient(db, appointment_id) == second


def test_unlinking_a_free_appointment_is_refused_with_409(client, db, add_appointment):
    appointment_id = add_appointment()
    response = delete(client, appointment_id)

    assert refused(response, 409, "Appointment is not linked to a patient")
    assert linked_patient(db, appointment_id) is None


def test_unlinking_an_unknown_appointment_is_refused_with_404(client, db):
    response = delete(client, str(ObjectId()))

    assert refused(response, 404, "Appointment not found")
    assert db.appointments.count_documents({}) == 0


def test_unlinking_another_doctors_appointment_is_refused_and_keeps_its_link(client, db, add_appointment):
    patient_id = ObjectId()
    appointment_id = add_appointment(doctor_id="doctor_b", patient_id=patient_id)
    response = delete(client, appointment_id)

    assert refused(response, 403, "Doctor does not own this appointment")
    assert linked_patient(db, appointment_id) == str(patient_id)


def test_delete_checks_answer_in_the_documented_order(client, db, add_appointment):
    foreign_free = add_appointment(doctor_id="doctor_b")

    # path id, then uid, then the uid's ownership, then the appointment, then whether it is linked.
    assert delete(client, "123", uid=None).get_json()["error"] == "Invalid fields: appointment_id"
    assert delete(client, foreign_free, uid=None).get_json()["error"] == "Missing doctor_id (uid)"
    assert refused(delete(client, str(ObjectId()), uid="doctor_b"), 403, "Token does not allow acting for this doctor")
    assert refused(delete(client, str(ObjectId())), 404, "Appointment not found")
    assert refused(delete(client, foreign_free), 403, "Doctor does not own this appointment")
    assert linked_patient(db, foreign_free) is None


# A failure after the write undoes it, with transactions or without (ALLOW_STANDALONE)


def fail_the_audit(monkeypatch):
    """Make the unit of work fail at its audit record, the step after the link or unlink."""

    def explode(self, *events):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(Records, "audit", explode)


def test_a_failure_after_the_link_leaves_the_appointment_free(client, db, add_appointment, add_patient, monkeypatch):
    patient_id = add_patient()
    appointment_id = add_appointment()
    fail_the_audit(monkeypatch)
    response = put(client, appointment_id, patient_id)

    assert refused(response, 500, "Internal server error")
    assert linked_patient(db, appointment_id) is None


def test_a_failure_after_the_unlink_leaves_the_appointment_linked(client, db, add_appointment, add_patient,
                                                                  monkeypatch):
    patient_id = add_patient()
    appointment_id = add_appointment(patient_id=ObjectId(patient_id))
    fail_the_audit(monkeypatch)
    response = delete(client, appointment_id)

    assert refused(response, 500, "Internal server error")
    assert linked_patient(db, appointment_id) == patient_id


# Audit and privacy


def test_refused_links_and_unlinks_are_recorded_with_their_ids_and_status(client, db, add_appointment, add_patient):
    own, foreign = add_patient(), add_patient(doctor_id="doctor_b")
    free = add_appointment()
    taken = add_appointment(patient_id=ObjectId(foreign))
    put(client, free, foreign)                                      # 403 not the patient's doctor
    put(client, taken, own)                                         # 409 linked to another
    client.put(link_url(free), json={"patient_id": own, "x": 1}, headers=bearer())  # 400
    delete(client, free)                                            # 409 not linked
    delete(client, free, uid="doctor_b")                            # 403 not allowed for doctor_b
    delete(client, free, headers={})                                # 401: no actor, not recorded

    assert sorted(trail(db), key=repr) == sorted([
        ("appointment.link", 403, {"appointment_id": free, "patient_id": foreign}),
        ("appointment.link", 409, {"appointment_id": taken, "patient_id": own}),
        ("appointment.link", 400, {"appointment_id": free, "patient_id": own}),
        ("appointment.unlink", 409, {"appointment_id": free}),
        ("appointment.unlink", 403, {"appointment_id": free}),
    ], key=repr)
    # The attempt on doctor_b is in doctor_a's own trail, naming doctor_b.
    assert db.audit.count_documents({"doctor_id": "doctor_b"}) == 0
    assert [r["action"] for r in db.audit.find({"doctor_id": "doctor_a", "named_doctor": "doctor_b"})] == [
        "appointment.unlink"]
    assert linked_patient(db, free) is None and linked_patient(db, taken) == foreign


def test_no_patient_value_reaches_the_audit_trail_or_the_logs(client, db, add_appointment, caplog, capfd, unsealed):
    caplog.set_level(logging.DEBUG)
    marker = "Zqxlinkname5521"
    created = client.post("/patients/add_and_link?uid=doctor_a", headers=bearer(),
                          json=jane(add_appointment(), firstName=marker, medicalHistory=marker + "history"))
    patient_id = created.get_json()["data"]["_id"]
    other = add_appointment()
    statuses = [
        put(client, other, patient_id).status_code,
        put(client, other, patient_id).status_code,
        client.put(link_url(other), json={"patient_id": patient_id, "firstName": marker}, headers=bearer()).status_code,
        delete(client, other).status_code,
        delete(client, other).status_code,
    ]

    assert statuses == [200, 200, 400, 200, 409]
    stored = repr(list(db.audit.find()))
    captured = caplog.text + "".join(capfd.readouterr())
    assert "/patient" in captured  # the request lines were captured
    for value in (marker, "1990-03-20", "Boston", "Aetna", "AET789012", "+1234567892"):
        assert value not in stored and value not in captured
    raw = db.patients.find_one({"_id": ObjectId(patient_id)})
    assert "firstName" not in raw and marker not in repr(raw)
    assert unsealed.patient(raw)["firstName"] == marker


# GET /patients?dateOfBirth=


def test_date_of_birth_finds_exactly_the_patients_born_that_day_newest_first(client, db, add_patient, unsealed):
    older = add_patient(first="Jane", dateOfBirth="1990-03-20")
    add_patient(first="Jane", dateOfBirth="1990-03-21")
    add_patient(first="Joan")
    add_patient(doctor_id="doctor_b", dateOfBirth="1990-03-20")
    newer = add_patient(first="Anna", dateOfBirth="1990-03-20")
    response = client.get("/patients?uid=doctor_a&dateOfBirth=1990-03-20", headers=bearer())

    assert response.status_code == 200
    body = response.get_json()
    assert [p["_id"] for p in body["data"]] == [newer, older] and body["next"] is None
    stored = {str(p["_id"]) for p in db.patients.find({"doctor_id": "doctor_a"})
              if unsealed.patient(p).get("dateOfBirth") == "1990-03-20"}
    assert stored == {newer, older}


def test_date_of_birth_combines_with_a_name_prefix(client, db, add_patient):
    jane_smith = add_patient(first="Jane", last="Smith", dateOfBirth="1990-03-20")
    add_patient(first="Jane", last="Smith", dateOfBirth="1985-01-01")
    add_patient(first="Anna", last="Jones", dateOfBirth="1990-03-20")
    response = client.get("/patients?uid=doctor_a&q=smi&dateOfBirth=1990-03-20", headers=bearer())
    none_born = client.get("/patients?uid=doctor_a&q=smi&dateOfBirth=2000-01-01", headers=bearer())

    assert response.status_code == 200 and [p["_id"] for p in response.get_json()["data"]] == [jane_smith]
    assert none_born.status_code == 200 and none_born.get_json()["data"] == []
    assert db.patients.count_documents({"doctor_id": "doctor_a"}) == 3


def test_date_of_birth_pages_like_the_rest_of_the_list(client, db, add_patient):
    born = [add_patient(first=f"P{i}", dateOfBirth="1990-03-20") for i in range(3)]
    first = client.get("/patients?uid=doctor_a&dateOfBirth=1990-03-20&limit=2", headers=bearer()).get_json()
    rest = client.get(f"/patients?uid=doctor_a&dateOfBirth=1990-03-20&limit=2&after={first['next']}",
                      headers=bearer()).get_json()

    assert [p["_id"] for p in first["data"] + rest["data"]] == list(reversed(born))
    assert rest["next"] is None and db.patients.count_documents({}) == 3


@pytest.mark.parametrize("date", ["1990-02-30", "20-03-1990", "1990-3-20", "2999-01-01", "", "1990-03-20T00:00"])
def test_an_invalid_date_of_birth_is_refused_with_400(client, db, add_patient, date):
    add_patient(dateOfBirth="1990-03-20")
    response = client.get("/patients", query_string={"uid": "doctor_a", "dateOfBirth": date}, headers=bearer())

    assert response.status_code == 400
    assert response.get_json()["error"] == "Invalid fields: dateOfBirth"
    assert db.patients.count_documents({}) == 1


def test_the_list_and_both_searches_share_one_index_of_the_keys_a_patient_is_found_by(client, db, add_appointment):
    client.post("/patients/add_and_link?uid=doctor_a", json=jane(add_appointment()), headers=bearer())

    index = db.patients.index_information()["doctor_found_by_newest"]
    assert [field for field, _ in index["key"]] == ["doctor_id", "found_by", "created_at", "_id"]
    assert set(db.patients.index_information()) == {"_id_", "doctor_found_by_newest"}
    # The key every sealed patient holds, then one blind key per name prefix (jan, jane, smi, smit, smith) and one
    # for the date of birth, none in plain.
    keys = db.patients.find_one()["found_by"]
    assert keys[0] == "all" and len(set(keys[1:])) == 6
    assert all(isinstance(key, bytes) and len(key) == 16 for key in keys[1:])


# Location on every 201


def test_add_and_links_201_says_where_the_patient_is_read(client, db, add_appointment):
    response = client.post("/patients/add_and_link?uid=doctor_a", json=jane(add_appointment()), headers=bearer())
    patient_id = response.get_json()["data"]["_id"]
    read = client.get(response.headers["Location"] + "?uid=doctor_a", headers=bearer())

    assert response.status_code == 201
    assert response.headers["Location"] == f"/patients/{patient_id}"
    assert read.status_code == 200 and read.get_json()["data"] == response.get_json()["data"]
    assert db.patients.count_documents({"_id": ObjectId(patient_id)}) == 1


def test_creating_an_appointment_says_where_it_is_read(client, db):
    response = client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"}, headers=bearer())
    appointment_id = response.get_json()["data"]["_id"]
    read = client.get(response.headers["Location"] + "?uid=doctor_a", headers=bearer())

    assert response.status_code == 201
    assert response.headers["Location"] == f"/appointments/{appointment_id}"
    assert read.status_code == 200 and read.get_json()["data"]["_id"] == appointment_id
    assert db.appointments.count_documents({}) == 1


@pytest.mark.parametrize("path,body", [
    ("/patients/add_and_link", None),
    ("/appointments", {"date": "2026-12-01T09:00:00Z"}),
], ids=["add_and_link", "appointment"])
def test_a_replayed_201_carries_the_same_location(client, db, add_appointment, path, body):
    body = jane(add_appointment()) if body is None else body
    headers = {**bearer(), "Idempotency-Key": "location-1"}
    first = client.post(f"{path}?uid=doctor_a", json=body, headers=headers)
    again = client.post(f"{path}?uid=doctor_a", json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert first.headers["Location"].endswith("/" + first.get_json()["data"]["_id"])
    collection = "patients" if path.startswith("/patients") else "appointments"
    assert db[collection].count_documents({"doctor_id": "doctor_a"}) == 1


def test_refusals_carry_no_location(client, db, add_appointment):
    response = client.post("/patients/add_and_link?uid=doctor_a", json=jane(str(ObjectId())), headers=bearer())

    assert response.status_code == 404 and "Location" not in response.headers
    assert db.patients.count_documents({}) == 1
