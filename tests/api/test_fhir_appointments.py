"""The FHIR view of appointments: read and search by patient and start, each answer a valid FHIR R4 resource, each read
audited, and appointments the clinic's scheduler wrote in its own shapes never a 500."""
import datetime

import pytest
from bson import ObjectId

from tests.api.test_scheduler_records import SHAPES
from tests.conftest import bearer, jane
from tests.fhir_models import fhir_body

UTC = datetime.timezone.utc


def at(day, hour=9):
    """Return a moment of December 2026, in UTC."""
    return datetime.datetime(2026, 12, day, hour, tzinfo=UTC)


@pytest.fixture
def booked(client, add_appointment):
    """Create a patient linked to a new appointment of doctor_a on the given date; return (patient id, appointment
    id)."""

    def book(date=None, first="Jane"):
        appointment_id = add_appointment(date=date or at(1))
        response = client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id, firstName=first),
                               headers=bearer())
        assert response.status_code == 201
        return response.get_json()["data"]["_id"], appointment_id

    return book


def search(client, query, uid="doctor_a"):
    """Return the ids of every appointment a search finds over all its pages, and the totals each page gave."""
    ids, totals, url = [], [], f"/fhir/Appointment?{query}"
    while url:
        response = client.get(url, headers=bearer(uid))
        assert response.status_code == 200, response.get_json()
        bundle = fhir_body(response)
        ids += [entry["resource"]["id"] for entry in bundle["entry"]]
        totals.append(bundle["total"])
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = following[0].removeprefix("http://localhost") if following else None
    return ids, totals


def test_a_linked_appointment_reads_as_booked_with_its_patient_and_the_read_audited(client, db, booked):
    patient_id, appointment_id = booked()
    db.appointments.update_one({"_id": ObjectId(appointment_id)}, {"$set": {"date": at(1)}})

    response = client.get(f"/fhir/Appointment/{appointment_id}", headers=bearer())

    assert response.status_code == 200
    assert fhir_body(response) == {
        "resourceType": "Appointment", "id": appointment_id, "status": "booked",
        "start": "2026-12-01T09:00:00Z", "end": "2026-12-01T09:00:00Z",
        "participant": [
            {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                   "code": "ATND", "display": "attender"}]}],
             "actor": {"type": "Practitioner", "identifier": {"system": "urn:clinic:doctor-uid", "value": "doctor_a"}},
             "required": "required", "status": "accepted"},
            {"actor": {"reference": f"Patient/{patient_id}", "type": "Patient"}, "required": "required",
             "status": "accepted"}]}
    record = db.audit.find_one({"action": "fhir.appointment.read"})
    assert (record["targets"], record["outcome"]) == ({"appointment_id": appointment_id, "patient_id": patient_id}, 200)


def test_a_free_appointment_reads_as_proposed_with_its_reason_and_no_patient(client):
    created = client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00+01:00",
                                                               "reason": "Annual check-up"}, headers=bearer())
    appointment_id = created.get_json()["data"]["_id"]

    response = client.get(f"/fhir/Appointment/{appointment_id}", headers=bearer())

    body = fhir_body(response)
    assert (body["status"], body["start"], body["reasonCode"]) == ("proposed", "2026-12-01T08:00:00Z",
                                                                   [{"text": "Annual check-up"}])
    assert [participant["actor"].get("type") for participant in body["participant"]] == ["Practitioner"]


def test_another_doctors_appointment_is_403_and_an_unknown_one_404_audited(client, db, add_appointment):
    foreign = add_appointment(doctor_id="doctor_b", date=at(1))
    unknown = str(ObjectId())

    refused = client.get(f"/fhir/Appointment/{foreign}", headers=bearer())
    missing = client.get(f"/fhir/Appointment/{unknown}", headers=bearer())

    assert (refused.status_code, missing.status_code) == (403, 404)
    assert fhir_body(refused)["issue"][0]["diagnostics"] == "Doctor does not own this appointment"
    assert fhir_body(missing)["issue"][0]["diagnostics"] == "Appointment not found"
    assert [(record["targets"], record["outcome"]) for record in db.audit.find({"action": "fhir.appointment.read"})] \
        == [({"appointment_id": foreign}, 403), ({"appointment_id": unknown}, 404)]


def test_a_patients_appointments_are_found_by_reference_in_either_stored_form_by_start_over_pages(client, db, booked,
                                                                                                add_appointment):
    patient_id, first = booked(at(3))
    later = add_appointment(date=at(5), patient_id=ObjectId(patient_id))
    # The scheduler stored this one's patient as text, and its date as text.
    by_scheduler = add_appointment(date="soon", patient_id=patient_id)
    earlier = add_appointment(date=at(1), patient_id=ObjectId(patient_id))
    booked(at(2), first="Other")
    add_appointment(date=at(4))
    add_appointment(doctor_id="doctor_b", date=at(4), patient_id=ObjectId(patient_id))

    ids, totals = search(client, f"patient=Patient/{patient_id}&_count=2")
    bare, _ = search(client, f"patient={patient_id.upper()}")

    assert ids == [earlier, first, later, by_scheduler]
    assert totals == [4, 4]
    assert bare == ids
    records = list(db.audit.find({"action": "fhir.appointment.search"}))
    assert [record["targets"] for record in records[:2]] == [
        {"appointment_ids": [earlier, first], "patient_id": patient_id},
        {"appointment_ids": [later, by_scheduler], "patient_id": patient_id}]


def test_an_appointment_search_with_count_0_answers_its_total_alone(client, db, booked, add_appointment):
    patient_id, _ = booked(at(3))
    add_appointment(date=at(5), patient_id=ObjectId(patient_id))
    add_appointment(date=at(4))

    response = client.get(f"/fhir/Appointment?patient=Patient/{patient_id}&_count=0&_total=accurate",
                          headers=bearer())

    assert response.status_code == 200
    bundle = fhir_body(response)
    assert (bundle["total"], bundle["entry"]) == (2, [])
    assert [link["relation"] for link in bundle["link"]] == ["self"]
    assert db.audit.find_one({"action": "fhir.appointment.search"})["targets"] == {"appointment_ids": [],
                                                                                  "patient_id": patient_id}


@pytest.mark.parametrize("query, days", [
    ("date=ge2026-12-02&date=le2026-12-03", [2, 3]),
    ("date=2026-12-02", [2]),
    ("date=eq2026-12-02", [2]),
    ("date=gt2026-12-02", [3, 4]),
    ("date=lt2026-12-02", [1]),
    ("date=ge2026-12-02T09:00:00Z&date=lt2026-12-04T09:00:00Z", [2, 3]),
    ("date=gt2026-12-02T09:00:00Z", [3, 4]),
    ("date=le2026-12-02T10:00:00%2B01:00", [1, 2]),
    ("date=2026-12", [1, 2, 3, 4]),
    ("date=2026", [1, 2, 3, 4]),
    ("date=2025", []),
    ("date=ge2026-12-03&date=le2026-12-02", []),
    ("date=2026-02-29", []),
    ("date=ge0001-01-01T00:00:00%2B14:00&date=le9999-12-31T23:59:59-14:00", [1, 2, 3, 4]),
])
def test_date_prefixes_bound_the_start(client, add_appointment, query, days):
    made = {day: add_appointment(date=at(day)) for day in (1, 2, 3, 4)}
    add_appointment(date="2026-12-02T09:00:00Z")  # a date stored as text is no date the search can read

    ids, totals = search(client, query)

    assert ids == [made[day] for day in days]
    assert totals == [len(days)]


@pytest.mark.parametrize("query", ["date=ge2026-12-32", "date=ne2026-12-01", "date=2026-12-01T09:00Z",
                                   "date=ge2026&date=le2027&date=eq2026", "patient=Practitioner/" + "a" * 24,
                                   "patient=abc", "subject=Patient/" + "a" * 24, "status=booked"])
def test_an_unknown_or_malformed_appointment_search_parameter_is_400(client, query):
    response = client.get(f"/fhir/Appointment?{query}", headers=bearer())

    assert response.status_code == 400
    assert fhir_body(response)["issue"][0]["code"] == "invalid"


@pytest.mark.parametrize("shape", SHAPES)
def test_an_appointment_the_scheduler_wrote_reads_and_is_listed_as_fhir(client, db, shape):
    stored, _ = SHAPES[shape]
    appointment_id = ObjectId()
    db.appointments.insert_one({"_id": appointment_id, "doctor_id": "doctor_a", **stored})

    read = client.get(f"/fhir/Appointment/{appointment_id}", headers=bearer())
    listed, totals = search(client, "_count=5")

    assert read.status_code == 200
    body = fhir_body(read)
    assert body["status"] == "proposed"
    assert ("start" in body) == isinstance(stored.get("date"), datetime.datetime)
    assert listed == [str(appointment_id)] and totals == [1]


def test_a_linked_appointment_without_a_readable_date_is_waitlisted_and_one_odd_record_never_fails_a_bundle(client,
                                                                                                         db, booked):
    patient_id, appointment_id = booked(at(1))
    created = client.post("/appointments?uid=doctor_a", json={"date": "2026-12-02T09:00:00Z", "reason": "Follow-up"},
                          headers=bearer())
    sealed_id = created.get_json()["data"]["_id"]
    linked = client.put(f"/appointments/{sealed_id}/patient?uid=doctor_a", json={"patient_id": patient_id},
                        headers=bearer())
    assert linked.status_code == 200
    odd = ObjectId()
    db.appointments.insert_one({"_id": odd, "doctor_id": "doctor_a", "patient_id": patient_id, "date": 17,
                                "reason": {"code": "A1"}, "room": "3B"})
    # Its sealed reason copied into another record: that one fails its integrity check, the rest is still answered.
    copied = ObjectId()
    db.appointments.insert_one({**db.appointments.find_one({"_id": ObjectId(sealed_id)}), "_id": copied})

    ids, totals = search(client, f"patient=Patient/{patient_id}")
    waitlisted = fhir_body(client.get(f"/fhir/Appointment/{odd}", headers=bearer()))
    refused = client.get(f"/fhir/Appointment/{copied}", headers=bearer())

    assert ids == [appointment_id, sealed_id, str(odd)]
    assert totals == [4]  # counted on the index: the copied record is left out of the page, not out of the count
    assert (waitlisted["status"], "start" in waitlisted, "reasonCode" in waitlisted) == ("waitlist", False, False)
    assert waitlisted["participant"][1]["actor"]["reference"] == f"Patient/{patient_id}"
    assert refused.status_code == 500
    assert fhir_body(refused)["issue"] == [{"severity": "error", "code": "exception",
                                            "diagnostics": "Stored record failed its integrity check"}]
