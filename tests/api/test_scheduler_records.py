"""Appointments the clinic's scheduler wrote straight into the database: read as stored, listed, linked, never a 500."""
import datetime

import pytest
from bson import Decimal128, ObjectId

from tests.conftest import bearer, jane

UTC = datetime.timezone.utc
NINE = datetime.datetime(2026, 12, 1, 9, tzinfo=UTC)

# (what the scheduler stored besides the ids, what an answer shows of it besides the ids)
SHAPES = {
    "date as text": ({"date": "2026-12-01T09:00:00Z"}, {"date": "2026-12-01T09:00:00Z"}),
    "date as a number": ({"date": 1796115600000}, {"date": 1796115600000}),
    "date null": ({"date": None}, {"date": None}),
    "no date": ({}, {}),
    "date as a Decimal128": ({"date": Decimal128("1796115600.5")}, {}),
    "date as a list": ({"date": [NINE, "09:00"]}, {"date": ["2026-12-01T09:00:00Z", "09:00"]}),
    "reason as a number": ({"date": NINE, "reason": 42}, {"date": "2026-12-01T09:00:00Z", "reason": 42}),
    "reason as an object": ({"date": NINE, "reason": {"code": "A1", "booked": NINE}},
                            {"date": "2026-12-01T09:00:00Z",
                             "reason": {"code": "A1", "booked": "2026-12-01T09:00:00Z"}}),
    "reason as a list": ({"reason": ["check-up", 2, None, True]}, {"reason": ["check-up", 2, None, True]}),
    "reason as an ObjectId": ({"reason": ObjectId("65f8a1b2c3d4e5f6789012cd")},
                              {"reason": "65f8a1b2c3d4e5f6789012cd"}),
    "reason as bytes": ({"date": NINE, "reason": b"\x00\x01"}, {"date": "2026-12-01T09:00:00Z"}),
    "reason holding bytes": ({"reason": {"note": "x", "raw": b"\x00"}}, {}),
    "reason not a number": ({"reason": float("nan")}, {}),
    "extra fields": ({"date": NINE, "room": "3B", "source": {"system": "scheduler", "at": NINE}},
                     {"date": "2026-12-01T09:00:00Z"}),
}


def scheduled(db, doctor_id="doctor_a", **fields):
    """Insert an appointment as the scheduler writes it (no patient_id unless given) and return its id as a string."""
    appointment_id = ObjectId()
    db.appointments.insert_one({"_id": appointment_id, "doctor_id": doctor_id, **fields})
    return str(appointment_id)


def read(client, appointment_id, uid="doctor_a"):
    """GET one appointment as uid."""
    return client.get(f"/appointments/{appointment_id}?uid={uid}", headers=bearer(uid))


def listing(client, uid="doctor_a", **params):
    """GET /appointments with query parameters, as uid."""
    query = "&".join(f"{key}={value}" for key, value in {"uid": uid, **params}.items())
    return client.get(f"/appointments?{query}", headers=bearer(uid))


def stored_patient(db, appointment_id):
    """Return the patient_id the database holds for an appointment, or "absent"."""
    return db.appointments.find_one({"_id": ObjectId(appointment_id)}).get("patient_id", "absent")


@pytest.fixture
def add_patient(app, db):
    """Insert a patient of a doctor as the service stores one and return its id as a string."""
    app.extensions["clinic.db"].prepare()
    values = app.extensions["clinic.db"].values

    def add(doctor_id="doctor_a"):
        patient_id = ObjectId()
        db.patients.insert_one({"_id": patient_id, "doctor_id": doctor_id,
                                **values.patient(doctor_id, {"firstName": "Jane", "lastName": "Smith"}),
                                "created_at": datetime.datetime.now(UTC)})
        return str(patient_id)

    return add


@pytest.mark.parametrize("shape", SHAPES)
def test_an_appointment_the_scheduler_wrote_reads_as_stored(client, db, shape):
    stored, shown = SHAPES[shape]
    appointment_id = scheduled(db, **stored)

    response = read(client, appointment_id)

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"success": True, "data": {"_id": appointment_id, "doctor_id": "doctor_a",
                                                             "patient_id": None, **shown}}


@pytest.mark.parametrize("shape", ["date as text", "date as a Decimal128", "reason as an object"])
def test_add_and_link_links_a_scheduler_appointment_without_a_patient_id(client, db, shape):
    appointment_id = scheduled(db, **SHAPES[shape][0])

    response = client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id), headers=bearer())

    assert response.status_code == 201, response.get_json()
    patient_id = response.get_json()["data"]["_id"]
    assert stored_patient(db, appointment_id) == ObjectId(patient_id)
    shown = read(client, appointment_id)
    assert shown.status_code == 200
    assert shown.get_json()["data"] == {"_id": appointment_id, "doctor_id": "doctor_a", "patient_id": patient_id,
                                        **SHAPES[shape][1]}


@pytest.mark.parametrize("shape", ["date as text", "date as a number", "date as a list", "date as a Decimal128",
                                   "reason as a list"])
def test_link_and_unlink_work_on_a_scheduler_appointment_and_answer_it(client, db, add_patient, shape):
    stored, shown = SHAPES[shape]
    appointment_id = scheduled(db, **stored)
    patient_id = add_patient()
    expected = {"_id": appointment_id, "doctor_id": "doctor_a", **shown}

    linked = client.put(f"/appointments/{appointment_id}/patient?uid=doctor_a", json={"patient_id": patient_id},
                        headers=bearer())

    assert linked.status_code == 200, linked.get_json()
    assert linked.get_json()["data"] == {**expected, "patient_id": patient_id}
    assert stored_patient(db, appointment_id) == ObjectId(patient_id)

    freed = client.delete(f"/appointments/{appointment_id}/patient?uid=doctor_a", headers=bearer())

    assert freed.status_code == 200, freed.get_json()
    assert freed.get_json()["data"] == {**expected, "patient_id": None}
    assert stored_patient(db, appointment_id) is None
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)}) == {
        "_id": ObjectId(appointment_id), "doctor_id": "doctor_a", **stored, "patient_id": None}


def test_an_appointment_linked_by_the_scheduler_with_a_text_id_can_be_unlinked(client, db, add_patient):
    patient_id = add_patient()
    appointment_id = scheduled(db, date="2026-12-01T09:00:00Z", patient_id=patient_id)

    assert read(client, appointment_id).get_json()["data"]["patient_id"] == patient_id
    again = client.put(f"/appointments/{appointment_id}/patient?uid=doctor_a", json={"patient_id": patient_id},
                       headers=bearer())
    freed = client.delete(f"/appointments/{appointment_id}/patient?uid=doctor_a", headers=bearer())

    assert again.status_code == 200 and again.get_json()["data"]["patient_id"] == patient_id
    assert freed.status_code == 200 and freed.get_json()["data"]["patient_id"] is None
    assert stored_patient(db, appointment_id) is None


@pytest.mark.parametrize("doctor_id", [["doctor_a"], ["doctor_a", "doctor_b"], "absent"])
def test_an_appointment_whose_doctor_id_is_not_text_is_not_the_doctors(client, db, add_patient, doctor_id):
    appointment_id = ObjectId()
    document = {"_id": appointment_id, "patient_id": None, "date": NINE}
    if doctor_id != "absent":
        document["doctor_id"] = doctor_id
    db.appointments.insert_one(document)
    patient_id = add_patient()
    forbidden = (403, {"success": False, "error": "Doctor does not own this appointment"})

    responses = [
        read(client, appointment_id),
        client.post("/patients/add_and_link?uid=doctor_a", json=jane(str(appointment_id)), headers=bearer()),
        client.put(f"/appointments/{appointment_id}/patient?uid=doctor_a", json={"patient_id": patient_id},
                   headers=bearer()),
        client.delete(f"/appointments/{appointment_id}/patient?uid=doctor_a", headers=bearer()),
    ]

    assert [(response.status_code, response.get_json()) for response in responses] == [forbidden] * 4
    assert db.appointments.find_one({"_id": appointment_id}) == document
    assert db.patients.count_documents({}) == 1  # add_and_link's patient is not kept on a 403
    assert listing(client).get_json()["data"] == []
