"""The clinic's records as FHIR R4 resources: a patient as a Patient, an appointment as an Appointment.

Read tolerantly: a value another program stored in another shape (a date as text, a number for a name) is left out
of the resource rather than answered as something it is not, and never fails the read.
"""
import datetime
from typing import Any

from app.service.schemas import OBJECT_ID, calendar_date, utc_text

FHIR_VERSION = "4.0.1"
# Who keeps the records: a doctor's uid, named by identifier (the view serves no Practitioner to point at).
DOCTOR_UID_SYSTEM = "urn:clinic:doctor-uid"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
# When this mapping last changed: the CapabilityStatement's date.
MAPPING_DATE = "2026-12-06"


def text(value: Any) -> str | None:
    """Return a value that is text holding more than whitespace, or None (FHIR has no empty strings)."""
    return value if isinstance(value, str) and value.strip() else None


def moment(value: Any) -> str | None:
    """Return a stored moment as a FHIR instant (UTC, `Z`), or None for anything that is not a moment."""
    return utc_text(value) if isinstance(value, datetime.datetime) else None


def version_id(value: Any) -> str | None:
    """Return a record's version as a FHIR versionId, or None for a version another program stored otherwise."""
    return str(value) if type(value) is int and value >= 1 else None


def weak_etag(version: str) -> str:
    """Return the ETag FHIR gives a resource at a version: weak, as the resource's JSON may change shape."""
    return f'W/"{version}"'


def _member(record: dict[str, Any], name: str) -> dict[str, Any]:
    """Return a nested object of a record (address, contact), or an empty one if it holds something else."""
    value = record.get(name)
    return value if isinstance(value, dict) else {}


def patient_resource(patient: dict[str, Any], version: Any, last_updated: Any) -> dict[str, Any]:
    """Map a patient's record (as it stands, or one of its versions) to a FHIR Patient at that version.

    Insurance, medical history and current medications are not mapped: see docs/fhir.md.
    """
    resource: dict[str, Any] = {"resourceType": "Patient", "id": patient["_id"]}
    meta = {name: value for name, value in (("versionId", version_id(version)),
                                            ("lastUpdated", moment(last_updated))) if value is not None}
    if meta:
        resource["meta"] = meta
    family, given = text(patient.get("lastName")), text(patient.get("firstName"))
    if family or given:
        name: dict[str, Any] = {"use": "official"}
        if family:
            name["family"] = family
        if given:
            name["given"] = [given]
        resource["name"] = [name]
    contact = _member(patient, "contact")
    telecom = [{"system": system, "value": value} for system, value in
               (("phone", text(contact.get("phone"))), ("email", text(contact.get("email")))) if value]
    if telecom:
        resource["telecom"] = telecom
    born = patient.get("dateOfBirth")
    if calendar_date(born):  # a date of birth stored in another form is left out
        resource["birthDate"] = born
    address = _member(patient, "address")
    parts = {fhir_name: value for fhir_name, value in
             (("city", text(address.get("city"))), ("state", text(address.get("state"))),
              ("postalCode", text(address.get("zipCode")))) if value}
    street = text(address.get("street"))
    if street or parts:
        resource["address"] = [{**({"line": [street]} if street else {}), **parts}]
    return resource


def appointment_status(appointment: dict[str, Any]) -> str:
    """Return the FHIR status of an appointment: booked when linked to a patient, proposed while free.

    A linked appointment whose time the service cannot read (another program stored it as text or a number) is
    `waitlist`: FHIR lets only proposed, cancelled and waitlist appointments go without a start (app-3).
    """
    if appointment.get("patient_id") is None:
        return "proposed"
    return "booked" if moment(appointment.get("date")) else "waitlist"


def appointment_resource(appointment: dict[str, Any]) -> dict[str, Any]:
    """Map an appointment to a FHIR Appointment: its status, its time, its reason and who takes part."""
    resource: dict[str, Any] = {"resourceType": "Appointment", "id": appointment["_id"],
                                "status": appointment_status(appointment)}
    reason = text(appointment.get("reason"))
    if reason:
        resource["reasonCode"] = [{"text": reason}]
    start = moment(appointment.get("date"))
    if start:
        # The service keeps one time per appointment, not its length: FHIR wants an end whenever there is a start
        # (app-2), and the one the record can give is the start itself.
        resource["start"] = resource["end"] = start
    participants = []
    doctor_id = text(appointment.get("doctor_id"))
    if doctor_id:
        participants.append({
            "type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": "ATND", "display": "attender"}]}],
            "actor": {"type": "Practitioner", "identifier": {"system": DOCTOR_UID_SYSTEM, "value": doctor_id}},
            "required": "required", "status": "accepted"})
    patient_id = appointment.get("patient_id")
    # A patient id in another form (another program's) still makes the appointment linked, but names no Patient.
    if isinstance(patient_id, str) and OBJECT_ID.match(patient_id):
        participants.append({"actor": {"reference": f"Patient/{patient_id.lower()}", "type": "Patient"},
                             "required": "required", "status": "accepted"})
    resource["participant"] = participants
    return resource


def capability_statement(base_url: str) -> dict[str, Any]:
    """Return the CapabilityStatement of the view: exactly the resources, interactions and searches it serves."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": MAPPING_DATE,
        "publisher": "Clinic patient records",
        "kind": "instance",
        "software": {"name": "Clinic patient records"},
        "implementation": {"description": "A read-only FHIR view of the clinic's patients and appointments",
                           "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read-only. Searches take _count (0 to 200, default 50; 0 for the total alone) and "
                             "_total (always accurate), and page with the `next` link; "
                             "any other parameter but _format and uid is refused with 400.",
            "security": {
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                         "code": "OAuth", "display": "OAuth"}]}],
                "description": "A bearer JWT whose sub is the doctor's uid: it reads that doctor's records. A token "
                               "holding the admin role names the doctor with the uid query parameter.",
            },
            "resource": [
                {
                    "type": "Patient",
                    "interaction": [{"code": "read"}, {"code": "vread"}, {"code": "history-instance"},
                                    {"code": "search-type"}],
                    "versioning": "versioned",
                    "readHistory": True,
                    "updateCreate": False,
                    "searchParam": [
                        {"name": "name", "type": "string",
                         "documentation": "The start of the first or last name, any case, from 3 characters; "
                                          "shorter, a whole name"},
                        {"name": "family", "type": "string", "documentation": "The start of the last name, likewise"},
                        {"name": "given", "type": "string", "documentation": "The start of the first name, likewise"},
                        {"name": "birthdate", "type": "date", "documentation": "The date of birth, exactly "
                                                                               "(YYYY-MM-DD, no prefix)"},
                    ],
                },
                {
                    "type": "Appointment",
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "versioning": "no-version",
                    "searchParam": [
                        {"name": "patient", "type": "reference", "documentation": "Patient/<id>: the patient's "
                                                                                  "appointments"},
                        {"name": "date", "type": "date",
                         "documentation": "The start, with the prefix ge, gt, le, lt or eq (none: eq), at most "
                                          "twice (a range); a date without a zone is UTC"},
                    ],
                },
            ],
        }],
    }


# What the OpenAPI document says these resources hold: what the mapping above always gives, and what it may.
_REFERENCE = {"type": "object", "properties": {"reference": {"type": "string"}, "type": {"type": "string"}}}
PATIENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType", "id"],
    "properties": {
        "resourceType": {"const": "Patient"},
        "id": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
        "meta": {"type": "object", "properties": {"versionId": {"type": "string"},
                                                  "lastUpdated": {"type": "string"}}},
        "name": {"type": "array", "items": {"type": "object"}},
        "telecom": {"type": "array", "items": {"type": "object"}},
        "birthDate": {"type": "string", "format": "date"},
        "address": {"type": "array", "items": {"type": "object"}},
    },
}
APPOINTMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType", "id", "status", "participant"],
    "properties": {
        "resourceType": {"const": "Appointment"},
        "id": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
        "status": {"enum": ["proposed", "booked", "waitlist"]},
        "start": {"type": "string"},
        "end": {"type": "string"},
        "reasonCode": {"type": "array", "items": {"type": "object"}},
        "participant": {"type": "array", "items": {"type": "object", "properties": {"actor": _REFERENCE}}},
    },
}
CAPABILITY_STATEMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType", "status", "date", "kind", "fhirVersion", "format", "rest"],
    "properties": {"resourceType": {"const": "CapabilityStatement"}, "fhirVersion": {"const": FHIR_VERSION}},
}
