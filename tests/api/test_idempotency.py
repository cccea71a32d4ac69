"""Idempotency-Key on the write routes: one run per key, replayed answers, refused reuse, per-doctor scope."""
import datetime
import json
import threading

import pytest
from bson import ObjectId

from app.service import steps
from app.store.idempotency_keys import IdempotencyStore
from tests.conftest import bearer, jane

ROUTES = ["/patients/add_and_link", "/appointments"]


def link(client, appointment_id, key, uid="doctor_a", headers=None, **changes):
    """POST add_and_link with an Idempotency-Key."""
    return client.post(f"/patients/add_and_link?uid={uid}", json=jane(appointment_id, **changes),
                       headers={**(headers or bearer(uid)), "Idempotency-Key": key})


def test_a_retried_add_and_link_replays_the_answer_and_creates_no_second_patient(client, db, add_appointment):
    appointment_id = add_appointment()
    first = link(client, appointment_id, "retry-1")
    again = link(client, appointment_id, "retry-1")

    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert db.patients.count_documents({}) == 1


def test_a_refusal_is_replayed_too(client, db, add_appointment):
    appointment_id = add_appointment(doctor_id="doctor_b")
    first = link(client, appointment_id, "k-403")
    db.appointments.update_one({}, {"$set": {"doctor_id": "doctor_a"}})  # would now succeed if run again
    again = link(client, appointment_id, "k-403")

    assert first.status_code == again.status_code == 403
    assert again.headers["Idempotent-Replayed"] == "true"
    assert db.patients.count_documents({}) == 0


def test_the_same_key_with_another_body_is_refused_with_422(client, db, add_appointment):
    appointment_id = add_appointment()
    assert link(client, appointment_id, "k-1").status_code == 201
    other = link(client, appointment_id, "k-1", firstName="John")

    assert other.status_code == 422
    assert other.get_json() == {"success": False, "error": "Idempotency-Key was already used with a different request"}
    assert db.patients.count_documents({}) == 1


def test_keys_are_scoped_per_doctor(client, db, add_appointment):
    mine, theirs = add_appointment(), add_appointment(doctor_id="doctor_b")

    assert link(client, mine, "shared-key").status_code == 201
    other_doctor = link(client, theirs, "shared-key", uid="doctor_b")
    assert other_doctor.status_code == 201 and "Idempotent-Replayed" not in other_doctor.headers
    assert db.patients.count_documents({}) == 2


def test_a_caller_cannot_claim_keys_of_a_doctor_they_may_not_act_for(client, db, add_appointment):
    theirs = add_appointment(doctor_id="doctor_b")
    refused = link(client, theirs, "k-x", uid="doctor_b", headers=bearer("doctor_a"))
    own = link(client, theirs, "k-x", uid="doctor_b")

    assert refused.status_code == 403
    assert own.status_code == 201 and "Idempotent-Replayed" not in own.headers
    assert db.idempotency_keys.count_documents({"doctor_id": "doctor_b"}) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve-ключ", "tab\there"])
def test_malformed_keys_are_refused_with_400_and_write_nothing(client, db, add_appointment, key):
    response = link(client, add_appointment(), key)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.get_json()["error"]
    assert db.patients.count_documents({}) == 0


def test_a_key_still_running_answers_409_then_replays_once_done(client, db, add_appointment, monkeypatch, app):
    appointment_id = add_appointment()
    entered, release = threading.Event(), threading.Event()
    real = steps.add_and_link_patient

    def slow(*args, **kwargs):
        entered.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(steps, "add_and_link_patient", slow)
    results = {}
    first = threading.Thread(target=lambda: results.update(first=link(app.test_client(), appointment_id, "busy")))
    first.start()
    assert entered.wait(10)
    busy = link(client, appointment_id, "busy")
    release.set()
    first.join(10)
    replay = link(client, appointment_id, "busy")

    assert busy.status_code == 409
    assert busy.get_json()["error"] == "A request with this Idempotency-Key is still in progress"
    assert results["first"].status_code == 201
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert db.patients.count_documents({}) == 1


def test_a_server_error_is_not_stored_so_a_retry_runs_again(client, db, add_appointment, monkeypatch):
    appointment_id = add_appointment()
    real = steps.add_and_link_patient
    monkeypatch.setattr(steps, "add_and_link_patient", lambda *a, **k: 1 / 0)
    failed = link(client, appointment_id, "k-500")
    monkeypatch.setattr(steps, "add_and_link_patient", real)
    retried = link(client, appointment_id, "k-500")

    assert failed.status_code == 500
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers
    assert db.patients.count_documents({}) == 1


def test_creating_an_appointment_is_idempotent_too(client, db):
    headers = {**bearer(), "Idempotency-Key": "appt-1"}
    first = client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"}, headers=headers)
    again = client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"}, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.get_json()["data"]["_id"] == first.get_json()["data"]["_id"]
    assert db.appointments.count_documents({}) == 1


def test_keys_expire_after_a_day(db, client, add_appointment):
    assert link(client, add_appointment(), "old-key").status_code == 201
    day_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=25)
    db.idempotency_keys.update_one({"key": "old-key"}, {"$set": {"created_at": day_ago}})
    reused = link(client, add_appointment(), "old-key", firstName="John")

    assert reused.status_code == 201 and "Idempotent-Replayed" not in reused.headers
    assert db.patients.count_documents({}) == 2
    assert db.idempotency_keys.index_information()["expire_after_a_day"]["expireAfterSeconds"] == 24 * 3600


@pytest.mark.parametrize("refused", ["invalid_body", "no_token", "other_doctor"])
def test_a_request_refused_before_any_work_leaves_its_key_for_the_corrected_retry(client, db, add_appointment, refused):
    appointment_id = add_appointment()
    if refused == "invalid_body":
        first = link(client, appointment_id, "fix-me", dateOfBirth="20-03-1990")
    elif refused == "no_token":
        first = link(client, appointment_id, "fix-me", headers={"Authorization": "Bearer not-a-token"})
    else:
        first = link(client, appointment_id, "fix-me", headers=bearer("doctor_b"))
    fixed = link(client, appointment_id, "fix-me")

    assert first.status_code == {"invalid_body": 400, "no_token": 401, "other_doctor": 403}[refused]
    assert fixed.status_code == 201 and "Idempotent-Replayed" not in fixed.headers
    assert db.patients.count_documents({}) == 1
    assert db.idempotency_keys.find_one({"key": "fix-me"})["status"] == 201


def test_the_same_json_in_another_layout_and_the_same_query_in_another_order_is_a_replay(client, db, add_appointment):
    appointment_id = add_appointment()
    body = jane(appointment_id)
    headers = {**bearer(), "Idempotency-Key": "layout", "Content-Type": "application/json"}
    first = client.post("/patients/add_and_link?uid=doctor_a&limit=1", data=json.dumps(body), headers=headers)
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=4)
    again = client.post("/patients/add_and_link?limit=1&uid=doctor_a", data=reordered, headers=headers)

    assert first.status_code == 201, first.get_json()
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert db.patients.count_documents({}) == 1


def test_the_answer_is_stored_with_the_work_not_after_it(app, client, db, add_appointment, monkeypatch):
    appointment_id = add_appointment()
    real_complete = IdempotencyStore.complete
    sessions = []

    def complete(store, claim, answer, writes=None):
        # Written among the unit of work's writes (in its transaction's session where there is one).
        sessions.append(writes is not None and writes._session is not None)
        return real_complete(store, claim, answer, writes)

    monkeypatch.setattr(IdempotencyStore, "complete", complete)
    response = link(client, appointment_id, "atomic")

    assert response.status_code == 201
    # Stored once, by the unit of work (inside its transaction where there is one), not again after it.
    assert sessions == [app.extensions["clinic.db"].unit_of_work().transactional]
    assert db.idempotency_keys.find_one({"key": "atomic"})["state"] == "done"


def test_a_key_left_running_by_a_dead_worker_is_taken_over_after_a_minute_and_not_before(client, db, add_appointment):
    appointment_id = add_appointment()
    assert link(client, appointment_id, "dead-worker").status_code == 201
    record = db.idempotency_keys.find_one({"key": "dead-worker"})
    db.patients.delete_many({})
    db.appointments.update_one({}, {"$set": {"patient_id": None}})
    moment = datetime.datetime.now(datetime.timezone.utc)
    # As a worker killed mid-request leaves it: claimed, never answered.
    db.idempotency_keys.update_one({"_id": record["_id"]}, {"$set": {"state": "running"}, "$unset": {"body": ""}})

    claimed = {"_id": record["_id"]}
    db.idempotency_keys.update_one(claimed, {"$set": {"claimed_at": moment - datetime.timedelta(seconds=30)}})
    recent = link(client, appointment_id, "dead-worker")
    db.idempotency_keys.update_one(claimed, {"$set": {"claimed_at": moment - datetime.timedelta(seconds=61)}})
    abandoned = link(client, appointment_id, "dead-worker")

    assert recent.status_code == 409
    assert recent.get_json()["error"] == "A request with this Idempotency-Key is still in progress"
    assert abandoned.status_code == 201 and "Idempotent-Replayed" not in abandoned.headers
    assert db.patients.count_documents({}) == 1
    assert db.idempotency_keys.find_one({"_id": record["_id"]})["state"] == "done"


@pytest.mark.parametrize("holder", [None, ObjectId()], ids=["free", "taken"])
def test_a_run_whose_key_was_taken_over_keeps_nothing_and_answers_in_progress(client, db, add_appointment,
                                                                              monkeypatch, holder):
    # Free: the run's work would be a 201. Taken: its refusal, a 409, which the other run may not meet.
    appointment_id = add_appointment(patient_id=holder)
    real = steps.add_and_link_patient

    def overtaken(*args, **kwargs):
        # Another request takes the key over (as abandoned) while this one is between its claim and its work.
        db.idempotency_keys.update_one({"key": "overtaken"}, {"$set": {"claimed_at": datetime.datetime(2000, 1, 1)}})
        return real(*args, **kwargs)

    monkeypatch.setattr(steps, "add_and_link_patient", overtaken)
    response = link(client, appointment_id, "overtaken")

    # The other run's answer is the key's.
    assert response.status_code == 409
    assert response.get_json()["error"] == "A request with this Idempotency-Key is still in progress"
    assert db.patients.count_documents({}) == 0
    assert db.appointments.find_one({})["patient_id"] == holder
    assert db.idempotency_keys.find_one({"key": "overtaken"})["state"] == "running"  # still the other run's
