"""Appointment routes over HTTP: create, read, list with cursor pages, on every backend."""
import datetime

import pytest
from bson import ObjectId

from app import create_app
from tests.conftest import bearer, jane, make_config


def create(client, body, uid="doctor_a", headers=None):
    """POST /appointments for uid."""
    return client.post(f"/appointments?uid={uid}", json=body, headers=headers or bearer(uid))


def listing(client, uid="doctor_a", headers=None, **params):
    """GET /appointments with query parameters."""
    query = "&".join(f"{key}={value}" for key, value in {"uid": uid, **params}.items())
    return client.get(f"/appointments?{query}", headers=headers or bearer(uid))


def test_creating_an_appointment_stores_it_in_utc_without_a_patient(client, db):
    response = create(client, {"date": "2026-12-01T10:00:00+01:00", "reason": "Annual check-up"})

    assert response.status_code == 201
    data = response.get_json()["data"]
    assert data == {"_id": data["_id"], "doctor_id": "doctor_a", "patient_id": None,
                    "date": "2026-12-01T09:00:00Z", "reason": "Annual check-up"}
    stored = db.appointments.find_one({"_id": ObjectId(data["_id"])})
    assert stored["patient_id"] is None and stored["doctor_id"] == "doctor_a"
    assert stored["date"].replace(tzinfo=datetime.timezone.utc) == datetime.datetime(
        2026, 12, 1, 9, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("body,field", [
    ({}, "date"),
    ({"date": "2026-12-01T09:00:00"}, "date"),
    ({"date": "tomorrow"}, "date"),
    ({"date": 1764579600}, "date"),
    ({"date": "2026-12-01T09:00:00Z", "reason": "x" * 501}, "reason"),
    ({"date": "2026-12-01T09:00:00Z", "patient_id": "65f8a1b2c3d4e5f6789012cd"}, "patient_id"),
    ({"date": "2026-12-01T09:00:00Z", "doctor_id": "doctor_b"}, "doctor_id"),
])
def test_invalid_appointments_are_refused_by_field_and_write_nothing(client, db, body, field):
    response = create(client, body)

    assert response.status_code == 400
    assert field in response.get_json()["details"]
    assert db.appointments.count_documents({}) == 0


def test_creating_for_another_doctor_is_forbidden_unless_admin(client, db):
    body = {"date": "2026-12-01T09:00:00Z"}
    assert create(client, body, uid="doctor_b", headers=bearer("doctor_a")).status_code == 403
    assert db.appointments.count_documents({}) == 0
    admin = create(client, body, uid="doctor_b", headers=bearer("ops", roles=["admin"]))
    assert admin.status_code == 201 and admin.get_json()["data"]["doctor_id"] == "doctor_b"


def test_creating_needs_a_token_and_a_uid(client, db):
    assert client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"}).status_code == 401
    missing_uid = client.post("/appointments", json={"date": "2026-12-01T09:00:00Z"}, headers=bearer())
    assert missing_uid.get_json() == {"success": False, "error": "Missing doctor_id (uid)"}
    assert db.appointments.count_documents({}) == 0


def test_reading_an_appointment_shows_its_linked_patient(client):
    appointment = create(client, {"date": "2026-12-01T09:00:00Z"}).get_json()["data"]
    patient = client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment["_id"]),
                          headers=bearer()).get_json()["data"]
    response = client.get(f"/appointments/{appointment['_id']}?uid=doctor_a", headers=bearer())

    assert response.status_code == 200
    assert response.get_json()["data"] == {**appointment, "patient_id": patient["_id"]}


def test_reading_refuses_unknown_foreign_and_malformed_ids(client):
    mine = create(client, {"date": "2026-12-01T09:00:00Z"}).get_json()["data"]["_id"]
    other = create(client, {"date": "2026-12-01T09:00:00Z"}, uid="doctor_b").get_json()["data"]["_id"]

    unknown = client.get(f"/appointments/{ObjectId()}?uid=doctor_a", headers=bearer())
    foreign = client.get(f"/appointments/{other}?uid=doctor_a", headers=bearer())
    malformed = client.get("/appointments/not-an-id?uid=doctor_a", headers=bearer())
    as_other = client.get(f"/appointments/{mine}?uid=doctor_b", headers=bearer("doctor_b"))

    assert (unknown.status_code, unknown.get_json()["error"]) == (404, "Appointment not found")
    assert (foreign.status_code, foreign.get_json()["error"]) == (403, "Doctor does not own this appointment")
    assert as_other.status_code == 403
    assert malformed.status_code == 400 and "appointment_id" in malformed.get_json()["details"]


def test_pages_follow_date_order_and_never_skip_or_repeat_across_inserts(client):
    base = datetime.datetime(2026, 12, 1, 8, tzinfo=datetime.timezone.utc)
    for hour in (5, 1, 3, 2, 4, 0):
        create(client, {"date": (base + datetime.timedelta(hours=hour)).isoformat()})
    create(client, {"date": base.isoformat()})  # same date as another: the id breaks the tie
    create(client, {"date": base.isoformat()}, uid="doctor_b")  # never seen by doctor_a

    first = listing(client, limit=3).get_json()
    seen = first["data"]
    # Inserted between calls: one before the cursor (not shown later) and one after it (shown).
    create(client, {"date": (base - datetime.timedelta(days=1)).isoformat()})
    create(client, {"date": (base + datetime.timedelta(days=1)).isoformat()})
    cursor = first["next"]
    while cursor:
        body = listing(client, limit=3, after=cursor).get_json()
        seen += body["data"]
        cursor = body["next"]

    ids = [item["_id"] for item in seen]
    assert len(ids) == len(set(ids)) == 8
    assert all(item["doctor_id"] == "doctor_a" for item in seen)
    keys = [(item["date"], item["_id"]) for item in seen]
    assert keys == sorted(keys)
    assert seen[-1]["date"] == "2026-12-02T08:00:00Z"


def test_linked_filters_on_whether_a_patient_is_linked(client):
    free = create(client, {"date": "2026-12-01T09:00:00Z"}).get_json()["data"]["_id"]
    taken = create(client, {"date": "2026-12-01T10:00:00Z"}).get_json()["data"]["_id"]
    client.post("/patients/add_and_link?uid=doctor_a", json=jane(taken), headers=bearer())

    unlinked = listing(client, linked="false").get_json()
    linked = listing(client, linked="true").get_json()
    everything = listing(client).get_json()

    assert [item["_id"] for item in unlinked["data"]] == [free]
    assert [item["_id"] for item in linked["data"]] == [taken]
    assert len(everything["data"]) == 2 and everything["next"] is None


def test_a_start_drops_the_two_appointment_indexes_of_the_earlier_version(mongo, db, client):
    free = create(client, {"date": "2026-12-01T09:00:00Z"}).get_json()["data"]["_id"]
    taken = create(client, {"date": "2026-12-01T10:00:00Z"}).get_json()["data"]["_id"]
    patient = client.post("/patients/add_and_link?uid=doctor_a", json=jane(taken), headers=bearer()).get_json()["data"]
    # As the version before one index kept them: by date, and by patient then date.
    db.appointments.create_index([("doctor_id", 1), ("date", 1), ("_id", 1)], name="doctor_by_date")
    db.appointments.create_index([("doctor_id", 1), ("patient_id", 1), ("date", 1), ("_id", 1)],
                                 name="doctor_linked_by_date")

    server, name = mongo
    api = create_app(make_config(MONGO_CLIENT=server, MONGODB_DB=name)).test_client()
    everything = api.get("/appointments?uid=doctor_a", headers=bearer()).get_json()["data"]
    theirs = api.get(f"/fhir/Appointment?patient=Patient/{patient['_id']}&uid=doctor_a", headers=bearer()).get_json()

    assert [item["_id"] for item in everything] == [free, taken]
    assert theirs["total"] == 1 and [entry["resource"]["id"] for entry in theirs["entry"]] == [taken]
    assert set(db.appointments.index_information()) == {"_id_", "doctor_by_date_with_patient"}


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"limit": "ten"}, "limit"),
    ({"linked": "maybe"}, "linked"), ({"after": "bm90IGEgY3Vyc29y"}, "after"), ({"colour": "red"}, "colour"),
])
def test_bad_list_parameters_are_refused_by_name(client, params, field):
    response = listing(client, **params)

    assert response.status_code == 400
    assert field in response.get_json()["details"]


def test_listing_for_another_doctor_is_forbidden(client):
    response = listing(client, uid="doctor_b", headers=bearer("doctor_a"))

    assert response.status_code == 403
