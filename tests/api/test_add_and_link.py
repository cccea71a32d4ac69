"""POST /patients/add_and_link over HTTP, on mongomock and on real servers (replica set and standalone)."""
import pytest
from bson import ObjectId

from tests.conftest import bearer, jane, make_token

URL = "/patients/add_and_link?uid=doctor_a"


def post(client, body, uid="doctor_a", headers=None, **kwargs):
    """POST to add_and_link as doctor_a unless told otherwise."""
    url = "/patients/add_and_link" if uid is None else f"/patients/add_and_link?uid={uid}"
    return client.post(url, json=body, headers=bearer() if headers is None else headers, **kwargs)


def test_documented_example_creates_the_patient_and_links_the_appointment(client, db, add_appointment, unsealed):
    appointment_id = add_appointment()
    response = post(client, jane(appointment_id))

    assert response.status_code == 201
    body = response.get_json()
    assert body["success"] is True
    data = body["data"]
    expected = jane(appointment_id)
    del expected["appointment_id"]
    assert data == {"_id": data["_id"], "doctor_id": "doctor_a", **expected}
    assert list(data)[:3] == ["_id", "doctor_id", "firstName"]
    raw = db.patients.find_one({"_id": ObjectId(data["_id"])})
    assert "lastName" not in raw and "firstName" not in raw and "name_keys" not in raw
    stored = unsealed.patient(raw)
    assert stored == {"_id": ObjectId(data["_id"]), "doctor_id": "doctor_a", "created_at": raw["created_at"],
                      "version": raw["version"], "updated_at": raw["updated_at"], "updated_by": raw["updated_by"],
                      **expected}
    assert stored["doctor_id"] == "doctor_a" and stored["lastName"] == "Smith"
    assert "created_at" in stored and "created_at" not in data
    appointment = db.appointments.find_one({"_id": ObjectId(appointment_id)})
    assert appointment["patient_id"] == ObjectId(data["_id"])


def test_names_are_trimmed_and_only_sent_fields_are_returned(client, db, add_appointment, unsealed):
    response = post(client, {"appointment_id": add_appointment(), "firstName": "  Ana ", "lastName": "Li"})

    assert response.status_code == 201
    data = response.get_json()["data"]
    assert set(data) == {"_id", "doctor_id", "firstName", "lastName"}
    assert data["firstName"] == "Ana"
    raw = db.patients.find_one({"_id": ObjectId(data["_id"])})
    assert "firstName" not in raw
    assert unsealed.patient(raw)["firstName"] == "Ana"


def test_missing_appointment_id_is_refused_with_the_documented_message(client, db):
    for body in ({"firstName": "Jane", "lastName": "Smith"}, {"appointment_id": "", "firstName": "J", "lastName": "S"},
                 {"appointment_id": None, "firstName": "J", "lastName": "S"}):
        response = post(client, body)
        assert response.status_code == 400
        assert response.get_json() == {"success": False, "error": "Missing appointment_id"}
    assert db.patients.count_documents({}) == 0


@pytest.mark.parametrize("uid", [None, ""])
def test_missing_uid_is_refused_with_the_documented_message(client, db, add_appointment, uid):
    response = post(client, jane(add_appointment()), uid=uid)

    assert response.status_code == 400
    assert response.get_json() == {"success": False, "error": "Missing doctor_id (uid)"}
    assert db.patients.count_documents({}) == 0


@pytest.mark.parametrize("names", [{}, {"firstName": "Jane"}, {"lastName": "Smith"},
                                   {"firstName": None, "lastName": "Smith"}, {"firstName": "Jane", "lastName": ""},
                                   {"firstName": "   ", "lastName": "Smith"}])
def test_missing_names_are_refused_with_the_documented_message(client, db, add_appointment, names):
    body = {key: value for key, value in jane(add_appointment()).items() if key not in ("firstName", "lastName")}
    response = post(client, {**body, **names})

    assert response.status_code == 400
    assert response.get_json() == {"success": False, "error": "Missing required patient fields (firstName, lastName)"}
    assert db.patients.count_documents({}) == 0


def test_unknown_appointment_keeps_the_patient_and_returns_it_as_documented(client, db, unsealed):
    response = post(client, jane(str(ObjectId())))

    assert response.status_code == 404
    body = response.get_json()
    assert body["success"] is False
    assert body["error"] == "Appointment not found (patient created but not linked)"
    assert body["data"]["firstName"] == "Jane" and body["data"]["doctor_id"] == "doctor_a"
    assert db.patients.count_documents({}) == 1
    raw = db.patients.find_one({"_id": ObjectId(body["data"]["_id"])})
    assert "lastName" not in raw
    assert unsealed.patient(raw)["lastName"] == "Smith"


def test_another_doctors_appointment_is_refused_and_leaves_no_patient(client, db, add_appointment):
    appointment_id = add_appointment(doctor_id="doctor_b")
    response = post(client, jane(appointment_id))

    assert response.status_code == 403
    assert response.get_json() == {"success": False, "error": "Doctor does not own this appointment"}
    assert db.patients.count_documents({}) == 0
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is None


def test_linked_appointment_is_refused_and_leaves_no_second_patient(client, db, add_appointment):
    first = ObjectId()
    appointment_id = add_appointment(patient_id=first)
    response = post(client, jane(appointment_id))

    assert response.status_code == 409
    assert response.get_json() == {"success": False, "error": "Appointment already linked to a patient"}
    assert db.patients.count_documents({}) == 0
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] == first


def test_second_link_to_the_same_appointment_is_refused(client, db, add_appointment, unsealed):
    appointment_id = add_appointment()
    assert post(client, jane(appointment_id)).status_code == 201
    response = post(client, jane(appointment_id, firstName="John"))

    assert response.status_code == 409
    assert db.patients.count_documents({}) == 1
    raw = db.patients.find_one()
    assert "firstName" not in raw
    assert unsealed.patient(raw)["firstName"] == "Jane"


def test_uid_of_another_doctor_is_forbidden_and_writes_nothing(client, db, add_appointment):
    appointment_id = add_appointment(doctor_id="doctor_b")
    response = post(client, jane(appointment_id), uid="doctor_b")

    assert response.status_code == 403
    assert response.get_json()["success"] is False
    assert response.get_json()["error"] == "Token does not allow acting for this doctor"
    assert db.patients.count_documents({}) == 0


def test_admin_may_act_for_any_doctor(client, db, add_appointment):
    appointment_id = add_appointment(doctor_id="doctor_b")
    response = post(client, jane(appointment_id), uid="doctor_b", headers=bearer("ops_1", roles=["admin"]))

    assert response.status_code == 201
    assert response.get_json()["data"]["doctor_id"] == "doctor_b"
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is not None


def test_a_role_other_than_admin_does_not_widen_access(client, db, add_appointment):
    response = post(client, jane(add_appointment(doctor_id="doctor_b")), uid="doctor_b",
                    headers=bearer("ops_1", roles=["nurse"]))

    assert response.status_code == 403
    assert db.patients.count_documents({}) == 0


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer not.a.jwt"},
    {"Authorization": "Bearer " + make_token(secret="another-secret-" + "x" * 60)},
    {"Authorization": "Bearer " + make_token(ttl=-120)},
    {"Authorization": "Bearer " + make_token(sub=None)},
    {"Authorization": "Bearer " + make_token(algorithm="HS512")},
], ids=["missing", "basic", "empty", "malformed", "bad-signature", "expired", "no-sub", "other-alg"])
def test_bad_tokens_are_refused_with_401_and_write_nothing(client, db, add_appointment, headers):
    response = post(client, jane(add_appointment()), headers=headers)

    assert response.status_code == 401
    body = response.get_json()
    assert body["success"] is False and body["error"]
    assert db.patients.count_documents({}) == 0


def test_token_is_checked_before_anything_else(client, db):
    response = client.post("/patients/add_and_link", data="not json", content_type="text/plain")

    assert response.status_code == 401


@pytest.mark.parametrize("kwargs", [
    {"data": "{not json", "content_type": "application/json"},
    {"data": "[1, 2]", "content_type": "application/json"},
    {"data": '"a string"', "content_type": "application/json"},
    {"data": "null", "content_type": "application/json"},
    {"data": "", "content_type": "application/json"},
    {"data": '{"appointment_id": "x"}', "content_type": "text/plain"},
], ids=["malformed", "array", "string", "null", "empty", "wrong-content-type"])
def test_a_body_that_is_not_a_json_object_is_refused(client, db, kwargs):
    response = client.post(URL, headers=bearer(), **kwargs)

    assert response.status_code == 400
    body = response.get_json()
    assert body["success"] is False
    assert "JSON" in body["error"] or "Content-Type" in body["error"]
    assert db.patients.count_documents({}) == 0


def test_checks_answer_in_the_documented_order(client, db, add_appointment):
    # appointment_id before uid, uid before the ownership of uid, ownership of uid before names.
    assert post(client, {}, uid=None).get_json()["error"] == "Missing appointment_id"
    assert post(client, {"appointment_id": "x"}, uid=None).get_json()["error"] == "Missing doctor_id (uid)"
    assert post(client, {"appointment_id": "x"}, uid="doctor_b").status_code == 403
    assert post(client, {"appointment_id": "x"}).get_json()["error"] == (
        "Missing required patient fields (firstName, lastName)")
    response = post(client, {"appointment_id": "x", "firstName": "J", "lastName": "S"})
    assert response.status_code == 400
    assert response.get_json()["details"] == {"appointment_id": ["Must be a 24-character hexadecimal id."]}


@pytest.mark.parametrize("change,field", [
    ({"appointment_id": "65f8a1b2c3d4e5f6789012eZ"}, "appointment_id"),
    ({"appointment_id": {"$ne": None}}, "appointment_id"),
    ({"firstName": {"$ne": None}}, "firstName"),
    ({"lastName": "x" * 101}, "lastName"),
    ({"dateOfBirth": "1990-02-30"}, "dateOfBirth"),
    ({"dateOfBirth": "20-03-1990"}, "dateOfBirth"),
    ({"dateOfBirth": "2999-01-01"}, "dateOfBirth"),
    ({"address": "456 Oak St"}, "address"),
    ({"address": {"street": 456}}, "address"),
    ({"insurance": {"provider": "Aetna", "group": "X"}}, "insurance"),
    ({"contact": {"email": "not-an-email"}}, "contact"),
    ({"contact": {"phone": "555-1234"}}, "contact"),
    ({"medicalHistory": "x" * 10_001}, "medicalHistory"),
    ({"currentMedications": ["aspirin"]}, "currentMedications"),
    ({"_id": "65f8a1b2c3d4e5f6789012cd"}, "_id"),
    ({"doctor_id": "doctor_b"}, "doctor_id"),
    ({"patient_id": "65f8a1b2c3d4e5f6789012cd"}, "patient_id"),
])
def test_invalid_fields_are_refused_by_name_and_write_nothing(client, db, add_appointment, change, field):
    appointment_id = add_appointment()
    response = post(client, {**jane(appointment_id), **change})

    assert response.status_code == 400
    body = response.get_json()
    assert body["success"] is False
    assert field in body["details"] and field in body["error"]
    assert db.patients.count_documents({}) == 0
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is None


def test_a_body_over_64_kib_is_refused_with_413(client, db, add_appointment):
    response = post(client, jane(add_appointment(), medicalHistory="x" * (70 * 1024)))

    assert response.status_code == 413
    assert response.get_json() == {"success": False, "error": "Request body too large (limit 64 KiB)"}
    assert db.patients.count_documents({}) == 0


def test_unknown_routes_and_wrong_methods_answer_in_the_envelope(client):
    missing = client.get("/no/such/route")
    wrong_method = client.delete(URL, headers=bearer())

    assert missing.status_code == 404 and missing.get_json() == {"success": False, "error": "Not found"}
    assert wrong_method.status_code == 405
    assert wrong_method.get_json() == {"success": False, "error": "Method not allowed"}
    assert "POST" in wrong_method.headers["Allow"]


def test_unexpected_errors_answer_500_without_internals(client, db, add_appointment, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals: Jane Smith")

    monkeypatch.setattr("app.service.steps.add_and_link_patient", explode)
    response = post(client, jane(add_appointment()))

    assert response.status_code == 500
    assert response.get_json() == {"success": False, "error": "Internal server error"}
    assert "Jane" not in caplog.text and "RuntimeError" in caplog.text


def test_request_id_is_echoed_or_generated(client):
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    forged = client.get("/healthz", headers={"X-Request-ID": "bad id; INFO forged"})

    assert given.headers["X-Request-ID"] == "abc-123"
    assert forged.headers["X-Request-ID"] != "bad id; INFO forged"
    assert len(forged.headers["X-Request-ID"]) == 32
