"""A real FHIR client (fhirpy) against `gunicorn wsgi:app` on the real database with field encryption on: it searches,
pages, reads, reads a history after a PATCH and a doctor's appointments for a patient, without an adapter."""
import json

import pytest
import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError, ResourceNotFound

from tests.conftest import jane, make_token
from tests.fhir_models import valid_fhir

pytestmark = pytest.mark.realdb


class Clinic:
    """The REST API as a doctor's frontend calls it, to make the records the FHIR client then reads."""

    def __init__(self, base, doctor):
        self.base, self.doctor = base, doctor
        self.headers = {"Authorization": f"Bearer {make_token(doctor)}"}

    def appointment(self, date):
        response = requests.post(f"{self.base}/appointments?uid={self.doctor}", json={"date": date, "reason": "Visit"},
                                 headers=self.headers, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()["data"]["_id"]

    def patient(self, first, last, born, date="2026-12-01T09:00:00Z"):
        body = jane(self.appointment(date), firstName=first, lastName=last, dateOfBirth=born)
        response = requests.post(f"{self.base}/patients/add_and_link?uid={self.doctor}", json=body,
                                 headers=self.headers, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()["data"]["_id"]

    def link(self, appointment_id, patient_id):
        response = requests.put(f"{self.base}/appointments/{appointment_id}/patient?uid={self.doctor}",
                                json={"patient_id": patient_id}, headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text

    def correct_phone(self, patient_id, version, phone):
        response = requests.patch(f"{self.base}/patients/{patient_id}?uid={self.doctor}",
                                  json={"contact": {"phone": phone}},
                                  headers={**self.headers, "If-Match": f'"{version}"',
                                           "Content-Type": "application/merge-patch+json"}, timeout=10)
        assert response.status_code == 200, response.text


def resource(found):
    """Return a resource fhirpy read as plain JSON, once fhir.resources' R4B model takes it."""
    return valid_fhir(json.loads(json.dumps(found.serialize())))


def test_a_fhir_client_searches_pages_reads_a_history_and_a_patients_appointments(service, stored):
    clinic = Clinic(service.base, "doctor_a")
    smiths = [clinic.patient("Jane", "Smith", "1990-03-20"), clinic.patient("Jo", "Smithers", "1990-03-20"),
              clinic.patient("Ann", "Smithson", "1990-03-20")]
    clinic.patient("Jane", "Smith", "1985-01-01")
    clinic.patient("Bea", "Jones", "1990-03-20")
    other_doctors = Clinic(service.base, "doctor_b").patient("Jane", "Smith", "1990-03-20")
    client = SyncFHIRClient(f"{service.base}/fhir", authorization=f"Bearer {make_token('doctor_a')}")

    # A search by the start of a name and a birth date, two to a page, followed to its last page.
    search = client.resources("Patient").search(name="smi", birthdate="1990-03-20").limit(2)
    first_page = search.fetch_raw()
    found = search.fetch_all()

    assert first_page["total"] == 3 and len(first_page["entry"]) == 2
    assert [patient.id for patient in found] == list(reversed(smiths))
    assert all(resource(patient)["birthDate"] == "1990-03-20" for patient in found)
    assert client.resources("Patient").search(family="smith", given="jane").fetch_raw()["total"] == 2

    # A read, then a history after a correction through the REST API's PATCH.
    jane_smith = client.reference("Patient", smiths[0]).to_resource()
    assert resource(jane_smith)["meta"]["versionId"] == "1"
    assert jane_smith["name"][0]["family"] == "Smith"
    clinic.correct_phone(smiths[0], 1, "+1234567899")
    history = client.reference("Patient", smiths[0]).execute("_history", method="get")
    first_version = client.reference("Patient", smiths[0]).execute("_history/1", method="get")

    assert valid_fhir(json.loads(json.dumps(history)))["type"] == "history"
    assert [entry["resource"]["meta"]["versionId"] for entry in history["entry"]] == ["2", "1"]
    assert history["entry"][0]["resource"]["telecom"][0]["value"] == "+1234567899"
    assert first_version["telecom"][0]["value"] == "+1234567892"
    assert client.reference("Patient", smiths[0]).to_resource()["meta"]["versionId"] == "2"

    # The doctor's appointments for one patient, from a date on.
    later = clinic.appointment("2027-01-15T10:30:00Z")
    clinic.link(later, smiths[0])
    appointments = client.resources("Appointment").search(patient=f"Patient/{smiths[0]}", date__ge="2026-12-01")
    booked = appointments.fetch_all()
    only_later = client.resources("Appointment").search(patient=f"Patient/{smiths[0]}", date__ge="2027").fetch_all()

    assert [appointment["start"] for appointment in booked] == ["2026-12-01T09:00:00Z", "2027-01-15T10:30:00Z"]
    assert all(resource(appointment)["status"] == "booked" for appointment in booked)
    assert all(appointment["participant"][1]["actor"]["reference"] == f"Patient/{smiths[0]}"
               for appointment in booked)
    assert [appointment.id for appointment in only_later] == [later]

    # Another doctor's patient: refused with an OperationOutcome; an unknown one, likewise.
    with pytest.raises(ForbiddenError) as refused:
        client.reference("Patient", other_doctors).to_resource()
    with pytest.raises(ResourceNotFound) as missing:
        client.reference("Patient", "0" * 24).to_resource()
    outcome = valid_fhir(json.loads(refused.value.args[0]))
    assert outcome["issue"][0]["diagnostics"] == "Doctor does not own this patient"
    assert valid_fhir(json.loads(missing.value.args[0]))["issue"][0]["code"] == "not-found"

    # Every read in the doctor's audit trail, ids only; the refused one too.
    actions = [record["action"] for record in stored.audit.find({"doctor_id": "doctor_a",
                                                                  "action": {"$regex": "^fhir"}}).sort("at", 1)]
    assert actions.count("fhir.patient.search") == 4 and actions.count("fhir.appointment.search") == 2
    refusal = stored.audit.find_one({"action": "fhir.patient.read", "outcome": 403})
    assert refusal["targets"] == {"patient_id": other_doctors}
    # Field encryption is on: the names the client read are nowhere in the patients' stored documents.
    assert b"Smithers" not in b"".join(json.dumps(document, default=str).encode()
                                       for document in stored.patients.find())
