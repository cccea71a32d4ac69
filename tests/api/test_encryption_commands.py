"""The operator's encryption commands: encrypt-existing (plain records written before) and rotate-master-key."""
import datetime
import json
import pathlib

import pytest
from bson import ObjectId, json_util

from app import create_app
from app.store import encrypt_existing
from app.store.field_encryption import MasterKeyMismatch
from app.store.records import INTERNAL_PATIENT_FIELDS
from app.store.sealing import STORAGE_FIELDS
from config import local_master_key
from scripts.dev_secret import new_master_key
from tests.api.test_field_encryption import DOCTOR, create_appointment, marked_patient, markers, readable
from tests.conftest import make_config

# What the version before field encryption (7cb74c2) stored and answered, recorded by running it: two
# appointments, add_and_link plain and with a key, the documented 404 with a key, a PATCH.
WRITTEN_BEFORE = json.loads((pathlib.Path(__file__).resolve().parent.parent / "data"
                             / "written_before_field_encryption.json").read_text())


def load_written_before(db):
    """Put the recorded database into db, its idempotency keys made fresh (they expire after a day)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    for name, documents in WRITTEN_BEFORE["collections"].items():
        documents = [json_util.loads(json.dumps(document)) for document in documents]
        if name == "idempotency_keys":
            for document in documents:
                document["created_at"] = document["claimed_at"] = now
        db[name].insert_many(documents)


def recorded_values():
    """Return every patient value the recorded requests sent."""
    values = []
    for answer in WRITTEN_BEFORE["answers"]:
        body = {k: v for k, v in (answer["body"] or {}).items() if k not in ("appointment_id", "date")}
        values.extend(markers(body))
    return [value for value in values if len(value) > 4]


def what_callers_see(api, headers):
    """Return what the API answers about the recorded patients: reads, history, searches and replays."""
    seen = {}
    for patient_id in WRITTEN_BEFORE["patients"]:
        for path in (f"/patients/{patient_id}", f"/patients/{patient_id}/history"):
            response = api.get(path + "?uid=doctor_before", headers=headers)
            seen[path] = (response.status_code, response.get_json(), response.headers.get("ETag"))
    appointments = api.get("/appointments?uid=doctor_before", headers=headers)
    seen["appointments"] = (appointments.status_code, appointments.get_json())
    for query in ("q=oldfirst", "q=OLDLASTB", "q=oldfirstcharliex", "dateOfBirth=1961-07-13",
                  "q=old&dateOfBirth=1983-11-05"):
        response = api.get(f"/patients?uid=doctor_before&{query}", headers=headers)
        seen[query] = (response.status_code, [patient["_id"] for patient in response.get_json()["data"]])
    for answer in WRITTEN_BEFORE["answers"]:
        if "Idempotency-Key" in answer["headers"]:
            response = api.open(answer["url"], method=answer["method"], json=answer["body"],
                                headers={**headers, **answer["headers"]})
            seen[answer["headers"]["Idempotency-Key"]] = (response.status_code, response.get_json(),
                                                         response.headers.get("Idempotent-Replayed"))
    return seen


@pytest.mark.parametrize("backend", ["mongomock", "replica_set"], indirect=True)
def test_a_database_written_before_encryption_is_read_then_sealed_in_place_with_nothing_changed_for_callers(
        backend, mongo, db):
    from tests.conftest import bearer

    load_written_before(db)
    client, name = mongo
    app = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name))
    api, headers = app.test_client(), bearer("doctor_before")

    before = what_callers_see(api, headers)
    # Until the command runs, the plain records answer exactly as the version that wrote them did.
    patched = next(a for a in WRITTEN_BEFORE["answers"] if a["method"] == "PATCH")
    patient_id = WRITTEN_BEFORE["patients"][0]
    assert before[f"/patients/{patient_id}"][:2] == (200, patched["response"])
    for answer in WRITTEN_BEFORE["answers"]:
        if "Idempotency-Key" in answer["headers"]:
            assert before[answer["headers"]["Idempotency-Key"]] == (answer["status"], answer["response"], "true")
    assert len(before["q=oldfirst"][1]) == 3 and before["dateOfBirth=1961-07-13"][1] == [patient_id]
    assert readable(mongo, recorded_values())  # plain, as written

    result = app.test_cli_runner().invoke(args=["encrypt-existing"])
    assert result.exit_code == 0, result.output
    assert "encrypted 3 patients, 1 patient_versions, 2 idempotency_keys, 1 appointments" in result.output
    assert "no plain patient values are left" in result.output

    assert readable(mongo, recorded_values()) == []
    assert what_callers_see(api, headers) == before
    # Restarted with nothing plain left, the service searches the sealed form alone, and answers the same.
    restarted = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name))
    assert what_callers_see(restarted.test_client(), headers) == before
    again = app.test_cli_runner().invoke(args=["encrypt-existing"])
    assert again.exit_code == 0
    assert "encrypted 0 patients, 0 patient_versions, 0 idempotency_keys, 0 appointments" in again.output


def test_a_stopped_run_resumes_where_it_stopped(db, app, monkeypatch):
    load_written_before(db)
    app.extensions["clinic.db"].prepare()
    real_seal = encrypt_existing._seal_patient
    calls = []

    def stop_after_one(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the operator's Ctrl-C, or a crash, midway
        return real_seal(*args)

    monkeypatch.setattr(encrypt_existing, "_seal_patient", stop_after_one)
    stopped = app.test_cli_runner().invoke(args=["encrypt-existing"])
    assert stopped.exit_code != 0
    assert db.patients.count_documents({"sealed": {"$exists": True}}) == 1
    monkeypatch.setattr(encrypt_existing, "_seal_patient", real_seal)

    resumed = app.test_cli_runner().invoke(args=["encrypt-existing"])
    assert resumed.exit_code == 0, resumed.output
    assert "encrypted 2 patients" in resumed.output
    assert db.patients.count_documents({"sealed": {"$exists": False}}) == 0


def test_a_record_changed_after_the_command_read_it_keeps_the_change(db, client, app):
    load_written_before(db)
    from tests.conftest import bearer

    headers = bearer("doctor_before")
    patient_id = WRITTEN_BEFORE["patients"][1]
    read_by_the_command = db.patients.find_one({"_id": ObjectId(patient_id)})
    # Between the command's read and its update, the service corrects the record (and stores it sealed).
    response = client.patch(f"/patients/{patient_id}?uid=doctor_before", json={"lastName": "Changedmeanwhile"},
                            headers={**headers, "If-Match": '"1"'})
    assert response.status_code == 200

    values = app.extensions["clinic.db"].values
    assert encrypt_existing._seal_patient(db, values, read_by_the_command) == 0
    now = client.get(f"/patients/{patient_id}?uid=doctor_before", headers=headers).get_json()["data"]
    assert now["lastName"] == "Changedmeanwhile" and now["firstName"] == "Oldfirstcharlie"
    stored = db.patients.find_one({"_id": ObjectId(patient_id)})
    assert not set(stored) - {*INTERNAL_PATIENT_FIELDS, *STORAGE_FIELDS}


def new_key():
    """Return a fresh local master key: its base64 form and its setting."""
    raw = new_master_key()
    return raw, local_master_key("NEW_FIELD_ENCRYPTION_KEY", raw)


@pytest.mark.parametrize("backend", ["mongomock", "replica_set"], indirect=True)
def test_after_a_rotation_the_new_master_key_alone_reads_everything_and_the_old_one_nothing(
        backend, mongo, db, monkeypatch):
    client, name = mongo
    app = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name))
    api = app.test_client()
    patient = marked_patient("Rotate7")
    body = {"appointment_id": create_appointment(api), **patient}
    created = api.post("/patients/add_and_link?uid=doctor_a", json=body, headers={**DOCTOR, "Idempotency-Key": "r-1"})
    patient_id = created.get_json()["data"]["_id"]
    assert api.patch(f"/patients/{patient_id}?uid=doctor_a", json={"medicalHistory": "Qrotated history"},
                     headers={**DOCTOR, "If-Match": '"1"'}).status_code == 200

    def seen(service):
        reads = service.test_client()
        return [reads.get(f"/patients/{patient_id}?uid=doctor_a", headers=DOCTOR).get_json(),
                reads.get(f"/patients/{patient_id}/history?uid=doctor_a", headers=DOCTOR).get_json(),
                reads.get("/patients?uid=doctor_a&q=qfirstrot&dateOfBirth=1961-07-13", headers=DOCTOR).get_json(),
                reads.post("/patients/add_and_link?uid=doctor_a", json=body,
                           headers={**DOCTOR, "Idempotency-Key": "r-1"}).get_json()]

    before = seen(app)
    raw, new = new_key()
    monkeypatch.setenv("NEW_FIELD_ENCRYPTION_KEY", raw)
    result = app.test_cli_runner().invoke(args=["rotate-master-key"])
    assert result.exit_code == 0, result.output
    assert f"rewrapped 1 data key(s) under {new.provider}" in result.output
    assert db.key_vault.find_one()["masterKey"]["provider"] == new.provider

    restarted = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name, MASTER_KEY=new))
    assert seen(restarted) == before
    assert before[0]["data"]["medicalHistory"] == "Qrotated history"
    assert readable(mongo, markers(patient)) == []
    with pytest.raises(MasterKeyMismatch):
        create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name))


def test_a_rotation_needs_a_new_key_other_than_the_current_one(app, monkeypatch):
    from tests.live import MASTER_KEY_B64

    app.extensions["clinic.db"].prepare()
    monkeypatch.delenv("NEW_FIELD_ENCRYPTION_KEY", raising=False)
    missing = app.test_cli_runner().invoke(args=["rotate-master-key"])
    assert missing.exit_code != 0 and "set NEW_FIELD_ENCRYPTION_KEY" in missing.output
    monkeypatch.setenv("NEW_FIELD_ENCRYPTION_KEY", MASTER_KEY_B64)
    same = app.test_cli_runner().invoke(args=["rotate-master-key"])
    assert same.exit_code != 0 and "already in use" in same.output
    monkeypatch.setenv("NEW_FIELD_ENCRYPTION_KEY", "not base64!")
    malformed = app.test_cli_runner().invoke(args=["rotate-master-key"])
    assert malformed.exit_code != 0 and "NEW_FIELD_ENCRYPTION_KEY must be 96 random bytes" in malformed.output
