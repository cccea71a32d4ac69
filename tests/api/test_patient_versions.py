"""A patient's record over time: versions and ETags, PATCH with If-Match (JSON Merge Patch), and the history."""
import datetime
import logging

import pytest
from bson import ObjectId

from tests.conftest import bearer, jane

MERGE_PATCH = "application/merge-patch+json"


def create(client, add_appointment, uid="doctor_a", **changes):
    """Add a patient through add_and_link and return its id."""
    response = client.post(f"/patients/add_and_link?uid={uid}", json=jane(add_appointment(doctor_id=uid), **changes),
                           headers=bearer(uid))
    assert response.status_code == 201
    return response.get_json()["data"]["_id"]


def patch(client, patient_id, body, if_match='"1"', uid="doctor_a", headers=None, content_type=MERGE_PATCH):
    """PATCH a patient as doctor_a unless told otherwise."""
    sent = {**(bearer() if headers is None else headers)}
    if if_match is not None:
        sent["If-Match"] = if_match
    return client.patch(f"/patients/{patient_id}?uid={uid}", json=body, headers=sent, content_type=content_type)


def stored(db, patient_id):
    """Return the stored patient document."""
    return db.patients.find_one({"_id": ObjectId(patient_id)})


def history(client, patient_id, uid="doctor_a", headers=None, **query):
    """GET the patient's history."""
    params = "".join(f"&{name}={value}" for name, value in query.items())
    return client.get(f"/patients/{patient_id}/history?uid={uid}{params}", headers=headers or bearer())


def test_add_and_link_answers_the_first_version_as_etag_and_keeps_it_out_of_the_body(client, db, add_appointment):
    response = client.post("/patients/add_and_link?uid=doctor_a", json=jane(add_appointment()), headers=bearer())

    assert response.status_code == 201
    assert response.headers["ETag"] == '"1"'
    data = response.get_json()["data"]
    expected = jane("x")
    del expected["appointment_id"]
    assert data == {"_id": data["_id"], "doctor_id": "doctor_a", **expected}
    document = stored(db, data["_id"])
    assert (document["version"], document["updated_by"]) == (1, "doctor_a")
    assert document["updated_at"] == document["created_at"]
    assert db.patient_versions.count_documents({}) == 0


def test_the_404_that_keeps_the_patient_carries_its_etag_and_no_internal_field(client, db):
    response = client.post("/patients/add_and_link?uid=doctor_a", json=jane(str(ObjectId())), headers=bearer())

    assert response.status_code == 404
    assert response.headers["ETag"] == '"1"'
    data = response.get_json()["data"]
    assert not {"version", "updated_at", "updated_by", "created_at", "name_keys"} & set(data)
    assert stored(db, data["_id"])["version"] == 1


def test_an_idempotent_replay_carries_the_same_etag(client, db, add_appointment):
    appointment_id = add_appointment()
    headers = {**bearer(), "Idempotency-Key": "etag-replay"}
    first = client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id), headers=headers)
    patient_id = first.get_json()["data"]["_id"]
    assert patch(client, patient_id, {"lastName": "Smyth"}).status_code == 200  # the patient moves on to version 2
    again = client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id), headers=headers)

    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["ETag"] == first.headers["ETag"] == '"1"'
    assert again.get_json() == first.get_json()
    assert db.patients.count_documents({}) == 1


def test_reading_a_patient_answers_its_version_as_etag(client, db, add_appointment):
    patient_id = create(client, add_appointment)
    before = client.get(f"/patients/{patient_id}?uid=doctor_a", headers=bearer())
    patch(client, patient_id, {"firstName": "Janet"})
    after = client.get(f"/patients/{patient_id}?uid=doctor_a", headers=bearer())

    assert before.headers["ETag"] == '"1"' and after.headers["ETag"] == '"2"'
    assert after.get_json()["data"]["firstName"] == "Janet"
    assert "version" not in after.get_json()["data"]


@pytest.mark.parametrize("content_type", [MERGE_PATCH, "application/json"])
def test_a_patch_merges_nested_objects_removes_nulls_and_answers_the_new_version(app, client, db, add_appointment,
                                                                                 content_type, unsealed):
    patient_id = create(client, add_appointment)
    response = patch(client, patient_id, {"contact": {"phone": "+1999"}, "address": {"city": None},
                                          "medicalHistory": None, "lastName": "  Smyth "}, content_type=content_type)

    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'
    data = response.get_json()["data"]
    assert data["contact"] == {"phone": "+1999", "email": "jane.smith@example.com"}
    assert data["address"] == {"street": "456 Oak St", "state": "MA", "zipCode": "02101"}
    assert "medicalHistory" not in data and data["lastName"] == "Smyth"
    assert data == client.get(f"/patients/{patient_id}?uid=doctor_a", headers=bearer()).get_json()["data"]
    raw = stored(db, patient_id)
    assert not {"firstName", "lastName", "contact", "address", "name_keys"} & set(raw)
    # The name search's blind indexes were remade for the new last name (those of "jane" and "smyth" only).
    renamed = app.extensions["clinic.db"].values.patient(ObjectId(patient_id), "doctor_a", {
        "firstName": "Jane", "lastName": "Smyth", "dateOfBirth": data["dateOfBirth"]})
    assert raw["found_by"] == renamed["found_by"]
    document = unsealed.patient(raw)
    assert document["version"] == 2 and document["updated_by"] == "doctor_a"
    assert "medicalHistory" not in document and document["lastName"] == "Smyth"
    assert document["contact"]["phone"] == "+1999" and "city" not in document["address"]
    raw_kept = db.patient_versions.find_one({"patient_id": ObjectId(patient_id)})
    assert "patient" not in raw_kept
    kept = unsealed.version(raw_kept)
    assert kept["version"] == 1 and kept["patient"]["lastName"] == "Smith"
    assert kept["patient"]["medicalHistory"] == "No significant medical history"


def test_a_renamed_patient_is_found_by_its_new_name_only(client, db, add_appointment):
    patient_id = create(client, add_appointment)
    patch(client, patient_id, {"lastName": "Okafor"})

    found = client.get("/patients?uid=doctor_a&q=oka", headers=bearer()).get_json()["data"]
    gone = client.get("/patients?uid=doctor_a&q=smi", headers=bearer()).get_json()["data"]
    assert [p["_id"] for p in found] == [patient_id] and gone == []


def test_a_patch_that_changes_nothing_keeps_the_version_and_writes_nothing(client, db, add_appointment):
    patient_id = create(client, add_appointment)
    audit_before = db.audit.count_documents({})
    response = patch(client, patient_id, {"firstName": "Jane", "contact": {"phone": "+1234567892"}})

    assert response.status_code == 200 and response.headers["ETag"] == '"1"'
    assert stored(db, patient_id)["version"] == 1
    assert db.patient_versions.count_documents({}) == 0
    assert db.audit.count_documents({}) == audit_before


@pytest.mark.parametrize("body,field", [
    ({"firstName": None}, "firstName"),
    ({"lastName": None}, "lastName"),
    ({"firstName": "   "}, "firstName"),
    ({"lastName": ""}, "lastName"),
    ({"_id": "65f8a1b2c3d4e5f6789012cd"}, "_id"),
    ({"doctor_id": "doctor_b"}, "doctor_id"),
    ({"appointment_id": "65f8a1b2c3d4e5f6789012ef"}, "appointment_id"),
    ({"nickname": "JJ"}, "nickname"),
    ({"address": {"country": "US"}}, "address"),
    ({"address": {"country": None}}, "address"),
    ({"address": "456 Oak St"}, "address"),
    ({"contact": {"email": "not-an-email"}}, "contact"),
    ({"dateOfBirth": "2999-01-01"}, "dateOfBirth"),
    ({"medicalHistory": "x" * 10_001}, "medicalHistory"),
    ({"lastName": "Smith\x1b[2J"}, "lastName"),
])
def test_invalid_patches_are_refused_by_name_and_change_nothing(client, db, add_appointment, body, field):
    patient_id = create(client, add_appointment)
    before = stored(db, patient_id)
    response = patch(client, patient_id, body)

    assert response.status_code == 400
    answer = response.get_json()
    assert answer["success"] is False and field in answer["details"] and field in answer["error"]
    assert answer["error"].startswith("Invalid fields: ")
    assert stored(db, patient_id) == before
    assert db.patient_versions.count_documents({}) == 0


@pytest.mark.parametrize("kwargs", [
    {"data": "[1]", "content_type": MERGE_PATCH},
    {"data": "null", "content_type": MERGE_PATCH},
    {"data": "{not json", "content_type": "application/json"},
])
def test_a_patch_body_that_is_not_a_json_object_is_refused(client, db, add_appointment, kwargs):
    patient_id = create(client, add_appointment)
    response = client.patch(f"/patients/{patient_id}?uid=doctor_a", headers={**bearer(), "If-Match": '"1"'}, **kwargs)

    assert response.status_code == 400
    assert "JSON object" in response.get_json()["error"]
    assert stored(db, patient_id)["version"] == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/json-patch+json", "application/problem+json"])
def test_a_patch_in_another_media_type_is_refused_with_415(client, db, add_appointment, content_type, unsealed):
    patient_id = create(client, add_appointment)
    response = patch(client, patient_id, {"lastName": "Smyth"}, content_type=content_type)

    assert response.status_code == 415
    assert response.get_json() == {"success": False, "error":
                                   "Content-Type must be application/merge-patch+json or application/json"}
    assert unsealed.patient(stored(db, patient_id))["lastName"] == "Smith"


def test_a_patch_without_if_match_is_refused_with_428(client, db, add_appointment, unsealed):
    patient_id = create(client, add_appointment)
    response = patch(client, patient_id, {"lastName": "Smyth"}, if_match=None)

    assert response.status_code == 428
    assert response.get_json() == {"success": False, "error": "If-Match is required"}
    assert unsealed.patient(stored(db, patient_id))["lastName"] == "Smith"


@pytest.mark.parametrize("if_match", ["*", "1", 'W/"1"', '"1", "2"', '"0"', '"abc"', ""])
def test_if_match_that_is_not_one_etag_of_ours_is_refused_with_400(client, db, add_appointment, if_match):
    patient_id = create(client, add_appointment)
    response = patch(client, patient_id, {"lastName": "Smyth"}, if_match=if_match)

    assert response.status_code == 400
    assert response.get_json()["error"].startswith("If-Match must be one ETag of this patient")
    assert stored(db, patient_id)["version"] == 1


def test_a_stale_if_match_is_refused_with_412_and_leaves_record_and_history_unchanged(client, db, add_appointment):
    patient_id = create(client, add_appointment)
    assert patch(client, patient_id, {"lastName": "Smyth"}).status_code == 200
    before, kept = stored(db, patient_id), list(db.patient_versions.find())
    response = patch(client, patient_id, {"lastName": "Jones"}, if_match='"1"')

    assert response.status_code == 412
    assert response.get_json() == {"success": False, "error": "Patient was changed since that version"}
    assert stored(db, patient_id) == before
    assert list(db.patient_versions.find()) == kept and len(kept) == 1
    ahead = patch(client, patient_id, {"lastName": "Jones"}, if_match='"7"')
    assert ahead.status_code == 412 and stored(db, patient_id) == before


def test_patch_refusals_answer_in_the_documented_order(client, db, add_appointment, unsealed):
    patient_id = create(client, add_appointment)
    theirs = create(client, add_appointment, uid="doctor_b")
    unknown = str(ObjectId())

    assert client.patch(f"/patients/{patient_id}?uid=doctor_a", json={}).status_code == 401
    assert patch(client, "nope", {}, uid="").get_json()["error"] == "Missing doctor_id (uid)"
    refused = patch(client, "nope", {}, uid="doctor_b")
    assert refused.get_json()["error"] == "Token does not allow acting for this doctor"
    assert patch(client, "nope", {}, if_match=None).get_json()["error"] == "Invalid fields: patient_id"
    assert patch(client, unknown, {"x": 1}, if_match=None).status_code == 428
    assert patch(client, unknown, {"x": 1}).get_json()["error"] == "Invalid fields: x"
    assert patch(client, unknown, {}).get_json()["error"] == "Patient not found"
    foreign = patch(client, theirs, {"lastName": "Hacked"})
    assert foreign.status_code == 403 and foreign.get_json()["error"] == "Doctor does not own this patient"
    assert patch(client, patient_id, {}, if_match='"2"').status_code == 412
    assert unsealed.patient(stored(db, theirs))["lastName"] == "Smith" and stored(db, theirs)["version"] == 1


def test_an_admin_may_correct_any_doctors_patient_and_is_recorded_as_the_actor(client, db, add_appointment):
    patient_id = create(client, add_appointment, uid="doctor_b")
    response = patch(client, patient_id, {"firstName": "Janet"}, uid="doctor_b",
                     headers=bearer("ops_1", roles=["admin"]))

    assert response.status_code == 200
    assert stored(db, patient_id)["updated_by"] == "ops_1"
    newest = history(client, patient_id, uid="doctor_b", headers=bearer("doctor_b")).get_json()["data"][0]
    assert newest["actor"] == "ops_1"


def test_history_lists_every_version_newest_first_as_whole_records(client, db, add_appointment):
    patient_id = create(client, add_appointment)
    patch(client, patient_id, {"lastName": "Smyth"}, if_match='"1"')
    patch(client, patient_id, {"contact": None}, if_match='"2"', uid="doctor_a",
          headers=bearer("ops_1", roles=["admin"]))
    response = history(client, patient_id)

    assert response.status_code == 200
    body = response.get_json()
    assert body["next"] is None
    versions = body["data"]
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["actor"] for v in versions] == ["ops_1", "doctor_a", "doctor_a"]
    assert [v["lastName"] for v in versions] == ["Smyth", "Smyth", "Smith"]
    assert "contact" not in versions[0] and versions[1]["contact"]["phone"] == "+1234567892"
    assert versions[0]["at"] >= versions[1]["at"] >= versions[2]["at"]
    first = {k: v for k, v in versions[2].items() if k not in ("version", "at", "actor")}
    expected = jane("x")
    del expected["appointment_id"]
    assert first == {"_id": patient_id, "doctor_id": "doctor_a", **expected}
    current = client.get(f"/patients/{patient_id}?uid=doctor_a", headers=bearer()).get_json()["data"]
    assert {k: v for k, v in versions[0].items() if k not in ("version", "at", "actor")} == current
    assert db.patient_versions.count_documents({"patient_id": ObjectId(patient_id)}) == 2


def test_history_pages_by_version_without_skipping_or_repeating(client, db, add_appointment):
    patient_id = create(client, add_appointment)
    for version in range(1, 5):
        assert patch(client, patient_id, {"firstName": f"Jane{version}"}, if_match=f'"{version}"').status_code == 200
    seen, after = [], None
    while True:
        page = history(client, patient_id, limit=2, **({"after": after} if after else {})).get_json()
        seen.extend(v["version"] for v in page["data"])
        after = page["next"]
        if after is None:
            break

    assert seen == [5, 4, 3, 2, 1]


def test_history_refusals_answer_in_the_documented_order(client, db, add_appointment):
    theirs = create(client, add_appointment, uid="doctor_b")
    patch(client, theirs, {"lastName": "Private"}, uid="doctor_b", headers=bearer("doctor_b"))

    assert client.get(f"/patients/{theirs}/history?uid=doctor_a").status_code == 401
    assert history(client, theirs, uid="").get_json()["error"] == "Missing doctor_id (uid)"
    assert history(client, theirs, uid="doctor_b").status_code == 403
    assert history(client, "nope").get_json()["error"] == "Invalid fields: patient_id"
    assert history(client, str(ObjectId())).get_json() == {"success": False, "error": "Patient not found"}
    foreign = history(client, theirs)
    assert foreign.status_code == 403
    assert foreign.get_json() == {"success": False, "error": "Doctor does not own this patient"}
    assert "Private" not in foreign.get_data(as_text=True) and "Smith" not in foreign.get_data(as_text=True)
    assert history(client, theirs, limit=0).status_code == 400


def test_a_patient_stored_before_versions_is_read_and_corrected_as_its_first_version(client, db):
    patient_id = ObjectId()
    db.patients.insert_one({"_id": patient_id, "doctor_id": "doctor_a", "firstName": "Old", "lastName": "Record",
                            "created_at": datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc),
                            "name_keys": ["old", "record"]})

    assert client.get(f"/patients/{patient_id}?uid=doctor_a", headers=bearer()).headers["ETag"] == '"1"'
    response = patch(client, str(patient_id), {"firstName": "New"})
    assert response.status_code == 200 and response.headers["ETag"] == '"2"'
    assert [v["version"] for v in history(client, str(patient_id)).get_json()["data"]] == [2, 1]
    assert stored(db, str(patient_id))["version"] == 2


def test_a_correction_is_audited_with_changed_field_names_only(client, db, add_appointment, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    patient_id = create(client, add_appointment)
    patch(client, patient_id, {"lastName": "Markerlast", "contact": {"phone": "+1987654321"},
                               "medicalHistory": "Markerhistory"})
    patch(client, patient_id, {"lastName": "Markerstale"}, if_match='"1"')      # 412
    patch(client, patient_id, {"lastName": None, "address": {"zip": "Markerzip"}})  # 400

    records = list(db.audit.find({"action": "patient.update"}).sort("_id", 1))
    assert [(r["outcome"], r.get("fields")) for r in records] == [
        (200, ["contact.phone", "lastName", "medicalHistory"]), (412, None), (400, None)]
    assert all(r["targets"] == {"patient_id": patient_id} for r in records)
    listed = client.get("/audit?uid=doctor_a&limit=1", headers=bearer()).get_json()["data"][0]
    assert listed["action"] == "patient.update" and listed["outcome"] == 400
    text = repr(list(db.audit.find())) + caplog.text + "".join(capfd.readouterr())
    for marker in ("Markerlast", "Markerhistory", "Markerstale", "Markerzip", "+1987654321"):
        assert marker not in text
