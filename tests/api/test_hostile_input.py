"""Hostile clients over HTTP: odd tokens, repeated parameters and keys, control characters, caches; every backend."""
import datetime
import re
import time

import jwt
import pytest
from bson import ObjectId

from tests.conftest import SECRET, bearer, jane, make_token

ADMIN = bearer("ops_1", roles=["admin"])


def link(client, body, query="uid=doctor_a", headers=None, **kwargs):
    """POST to add_and_link as doctor_a unless told otherwise."""
    return client.post(f"/patients/add_and_link?{query}", json=body,
                       headers=bearer() if headers is None else headers, **kwargs)


def assert_nothing_written(db, appointment_id=None):
    """Assert that no patient or appointment was created and the appointment is still free."""
    assert db.patients.count_documents({}) == 0
    if appointment_id is None:
        assert db.appointments.count_documents({}) == 0
    else:
        assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is None


def test_a_request_without_a_token_is_challenged_with_plain_bearer(client, db, add_appointment):
    appointment_id = add_appointment()
    response = link(client, jane(appointment_id), headers={})

    assert response.status_code == 401
    assert response.get_json() == {"success": False, "error": "Missing bearer token"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert_nothing_written(db, appointment_id)


@pytest.mark.parametrize("token,error", [
    ("a.b.c", "Invalid token"),
    (make_token(ttl=-120), "Token expired"),
    (make_token(secret="another-secret-" + "x" * 40), "Invalid token"),
], ids=["garbage", "expired", "wrong-key"])
def test_a_refused_token_is_challenged_with_invalid_token(client, db, add_appointment, token, error):
    appointment_id = add_appointment()
    response = link(client, jane(appointment_id), headers={"Authorization": "Bearer " + token})

    assert response.status_code == 401
    assert response.get_json() == {"success": False, "error": error}
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert_nothing_written(db, appointment_id)


@pytest.mark.parametrize("sub", ["d" * 129, "doctor a", "doctor_a\n", "médecin"], ids=["129", "space", "lf", "accent"])
def test_a_subject_that_could_never_be_a_uid_is_refused_at_the_token(client, db, sub):
    response = client.post("/appointments", query_string={"uid": sub}, json={"date": "2026-12-01T09:00:00Z"},
                           headers=bearer(sub))

    assert response.status_code == 401
    assert response.get_json() == {"success": False, "error": "Invalid token"}
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert_nothing_written(db)


def test_a_subject_of_128_characters_creates_and_lists_its_appointment(client, db):
    sub = "d" * 128
    created = client.post(f"/appointments?uid={sub}", json={"date": "2026-12-01T09:00:00Z"}, headers=bearer(sub))
    listed = client.get(f"/appointments?uid={sub}", headers=bearer(sub))

    assert created.status_code == 201
    assert listed.status_code == 200
    assert [item["_id"] for item in listed.get_json()["data"]] == [created.get_json()["data"]["_id"]]
    assert db.appointments.count_documents({"doctor_id": sub}) == 1


def signed(**claims):
    """Return a bearer header for doctor_a's token with exactly these time claims."""
    return {"Authorization": "Bearer " + jwt.encode({"sub": "doctor_a", **claims}, SECRET, algorithm="HS256")}


@pytest.mark.parametrize("claims", [
    lambda now: {"iat": now, "exp": now + 86401},
    lambda now: {"exp": now + 2 * 86400},
    lambda now: {"iat": now, "exp": now + 600, "auth_time": now + 120},
    lambda now: {"iat": now, "exp": now + 600, "auth_time": "soon"},
    lambda now: {"iat": str(now), "exp": now + 600},
], ids=["a-day-and-a-second", "no-iat-two-days", "future-sign-in", "auth-time-not-a-number", "iat-a-string"])
def test_a_token_that_lives_too_long_or_signs_in_later_is_refused(client, db, add_appointment, claims):
    appointment_id = add_appointment()
    response = link(client, jane(appointment_id), headers=signed(**claims(int(time.time()))))

    assert response.status_code == 401
    assert response.get_json() == {"success": False, "error": "Invalid token"}
    assert_nothing_written(db, appointment_id)


def test_a_token_of_exactly_a_day_signed_in_within_the_leeway_is_accepted(client, db, add_appointment):
    now = int(time.time())
    appointment_id = add_appointment()
    response = link(client, jane(appointment_id), headers=signed(iat=now, exp=now + 86400, auth_time=now + 30))

    assert response.status_code == 201
    assert db.patients.count_documents({"doctor_id": "doctor_a"}) == 1


def test_a_uid_given_twice_is_refused_naming_it_and_nothing_is_written(client, db, add_appointment):
    appointment_id = add_appointment()
    response = link(client, jane(appointment_id), query="uid=doctor_a&uid=doctor_b", headers=ADMIN)

    assert response.status_code == 400
    assert response.get_json() == {"success": False, "error": "Invalid fields: uid",
                                   "details": {"uid": ["Given more than once."]}}
    assert_nothing_written(db, appointment_id)


@pytest.mark.parametrize("url", [
    "/appointments?uid=doctor_a&limit=1&limit=2",
    "/patients?uid=doctor_a&q=a&q=b",
    "/audit?uid=doctor_a&after=1&after=2",
    "/healthz?probe=1&probe=2",
    "/openapi.json?v=1&v=2",
])
def test_any_query_parameter_given_twice_is_refused_on_every_route(client, url):
    name = url.rsplit("&", 1)[1].split("=")[0]
    response = client.get(url, headers=bearer())

    assert response.status_code == 400
    assert response.get_json() == {"success": False, "error": f"Invalid fields: {name}",
                                   "details": {name: ["Given more than once."]}}


@pytest.mark.parametrize("raw", [
    '{"appointment_id": "%s", "firstName": "Jane", "lastName": "Smith", "firstName": "Eve"}',
    '{"appointment_id": "%s", "firstName": "Jane", "lastName": "Smith", "address": {"city": "A", "city": "B"}}',
    '{"appointment_id": "%s", "firstName": "Jane", "lastName": "Smith", "first\\u004eame": "Eve"}',
], ids=["top-level", "nested", "escaped"])
def test_a_body_giving_a_key_twice_is_refused_as_malformed_and_nothing_is_written(client, db, add_appointment, raw):
    appointment_id = add_appointment()
    response = client.post("/patients/add_and_link?uid=doctor_a", data=raw % appointment_id,
                           content_type="application/json", headers=bearer())

    assert response.status_code == 400
    assert response.get_json() == {"success": False,
                                   "error": "Request body must be a JSON object (malformed JSON or null)"}
    assert_nothing_written(db, appointment_id)


@pytest.mark.parametrize("field,value", [
    ("firstName", "Ja\x00ne"), ("firstName", "Jane\r\nX-Injected: 1"), ("lastName", "\x1b[31mSmith"),
    ("lastName", "Smith\x7f"), ("firstName", "Jane\x85"), ("firstName", "Jane\x1f"), ("firstName", "Ja\tne"),
    ("address", {"city": "Bos\nton"}), ("insurance", {"provider": "Aetna\x00"}),
    ("medicalHistory", "none\x00"), ("currentMedications", "\x1b]0;x\x07"),
])
def test_control_characters_are_refused_by_field_and_nothing_is_written(client, db, add_appointment, field, value):
    appointment_id = add_appointment()
    response = link(client, jane(appointment_id, **{field: value}))

    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == f"Invalid fields: {field}" and field in body["details"]
    assert_nothing_written(db, appointment_id)


def test_free_text_keeps_its_tabs_and_line_breaks(client, db, add_appointment, unsealed):
    notes = "Asthma\n\tsince 2001\r\nPenicillin allergy"
    response = link(client, jane(add_appointment(), medicalHistory=notes))

    assert response.status_code == 201
    assert response.get_json()["data"]["medicalHistory"] == notes
    raw = db.patients.find_one({})
    assert "medicalHistory" not in raw
    assert unsealed.patient(raw)["medicalHistory"] == notes


def test_an_appointment_reason_with_an_escape_sequence_is_refused(client, db):
    response = client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z", "reason": "\x1b[2J"},
                           headers=bearer())

    assert response.status_code == 400
    assert response.get_json()["error"] == "Invalid fields: reason"
    assert_nothing_written(db)


@pytest.mark.parametrize("uid", ["doctor a", "médecin", "d" * 129, "doctor_a\x00", "\x1bdoc"])
def test_a_uid_outside_the_documented_pattern_is_refused_naming_it(client, db, add_appointment, uid):
    appointment_id = add_appointment()
    linked = client.post("/patients/add_and_link", query_string={"uid": uid}, json=jane(appointment_id),
                         headers=ADMIN)
    listed = client.get("/appointments", query_string={"uid": uid}, headers=ADMIN)

    for response in (linked, listed):
        assert response.status_code == 400
        assert response.get_json()["error"] == "Invalid fields: uid"
        assert response.get_json()["details"]["uid"] == ["Must be 1 to 128 printable ASCII characters without spaces."]
    assert_nothing_written(db, appointment_id)


@pytest.mark.parametrize("uid", ["\xa0", "\x1c", "  "])
def test_a_uid_of_only_whitespace_is_missing_as_documented(client, db, add_appointment, uid):
    appointment_id = add_appointment()
    response = client.post("/patients/add_and_link", query_string={"uid": uid}, json=jane(appointment_id),
                           headers=ADMIN)

    assert response.status_code == 400
    assert response.get_json() == {"success": False, "error": "Missing doctor_id (uid)"}
    assert_nothing_written(db, appointment_id)


def test_an_admin_acts_for_a_firebase_style_uid(client, db, add_appointment):
    uid = "Xy7aB3cD9eF1gH2iJ4kL5mN6oP7q"
    response = link(client, jane(add_appointment(uid)), query=f"uid={uid}", headers=ADMIN)

    assert response.status_code == 201
    assert db.patients.count_documents({"doctor_id": uid}) == 1


def test_every_api_response_forbids_storing(client, db, add_appointment):
    created = link(client, jane(add_appointment()))
    patient_id = created.get_json()["data"]["_id"]
    kept = link(client, jane(str(ObjectId())))
    responses = [
        created, kept,
        client.get(f"/patients/{patient_id}?uid=doctor_a", headers=bearer()),
        client.get("/patients?uid=doctor_a", headers=bearer()),
        client.get("/appointments?uid=doctor_a", headers=bearer()),
        client.get("/audit?uid=doctor_a", headers=bearer()),
        client.get("/patients?uid=doctor_b", headers=bearer()),
        client.get("/patients?uid=doctor_a"),
        client.get("/no/such/route"),
        client.get("/healthz"),
    ]

    assert [response.status_code for response in responses] == [201, 404, 200, 200, 200, 200, 403, 401, 404, 200]
    assert kept.get_json()["data"]["firstName"] == "Jane"
    assert [response.headers.get("Cache-Control") for response in responses] == ["no-store"] * len(responses)
    assert db.patients.count_documents({}) == 2


def test_any_cursor_of_the_documented_shape_is_accepted(client, db, add_appointment):
    for day in (1, 2, 3):
        add_appointment(date=datetime.datetime(2026, 12, day, 9, tzinfo=datetime.timezone.utc))
    pattern = next(parameter["schema"]["pattern"] for parameter in
                   client.get("/openapi.json").get_json()["paths"]["/appointments"]["get"]["parameters"]
                   if parameter["name"] == "after")
    issued = client.get("/appointments?uid=doctor_a&limit=1", headers=bearer()).get_json()["next"]
    beyond = client.get("/appointments?uid=doctor_a&after=999999999999999_ffffffffffffffffffffffff", headers=bearer())
    malformed = client.get("/appointments?uid=doctor_a&after=not-a-cursor", headers=bearer())

    assert re.fullmatch(pattern.rstrip("$"), issued)
    assert beyond.status_code == 200 and beyond.get_json() == {"success": True, "data": [], "next": None}
    assert malformed.status_code == 400 and malformed.get_json()["error"] == "Invalid fields: after"


def test_add_and_link_answers_only_post_and_is_never_read_as_a_patient_id(client, db):
    read = client.get("/patients/add_and_link?uid=doctor_a", headers=bearer())
    options = client.options("/patients/add_and_link?uid=doctor_a")
    other = client.get("/patients/add_and_linked?uid=doctor_a", headers=bearer())

    assert read.status_code == 405 and read.get_json() == {"success": False, "error": "Method not allowed"}
    assert set(read.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert set(options.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert other.status_code == 400 and other.get_json()["error"] == "Invalid fields: patient_id"
    assert db.patients.count_documents({}) == 0
