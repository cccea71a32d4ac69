"""The read-only FHIR R4 view under /fhir: the doctor's patients and appointments, read through the REST routes' steps.

Every interaction that answers or refuses patient or appointment data leaves one audit record: the ids it answered
(never a value) in the same unit of work as the read, so no read is answered unrecorded; a refused one through
refused_attempts, as a refused write is.
"""
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g, request
from marshmallow import Schema

from app.http.auth import Caller, acting_doctor
from app.http.documented import documented
from app.http.fhir import search
from app.http.fhir.bundles import BUNDLE_SCHEMA, base_url, history, searchset
from app.http.fhir.outcomes import FHIR_BASE_PATH, FHIR_JSON, fhir_response
from app.http.fhir.resources import (
    APPOINTMENT_SCHEMA,
    CAPABILITY_STATEMENT_SCHEMA,
    PATIENT_SCHEMA,
    appointment_resource,
    capability_statement,
    patient_resource,
    weak_etag,
)
from app.http.refusals import UnsupportedFormat
from app.http.refused_attempts import audited
from app.http.request_input import path_id
from app.http.request_work import unit_of_work
from app.service import steps
from app.service.refusals import (
    AppointmentNotFound,
    MissingDoctorId,
    NotAllowedForDoctor,
    NotAppointmentOwner,
    NotPatientOwner,
    PatientNotFound,
    PatientVersionNotFound,
)
from app.service.schemas import OBJECT_ID
from app.store.cursors import decode_version_cursor
from app.store.exceptions import UnreadableVersion
from app.store.idempotency_keys import Answer
from app.store.records import Records

bp = Blueprint("fhir", __name__, url_prefix=FHIR_BASE_PATH)

# Every interaction's refusals before it reads anything: the format, then the doctor.
ASKED = (UnsupportedFormat, MissingDoctorId, NotAllowedForDoctor)
MALFORMED = "An unknown, repeated or malformed parameter or id (the issues after the first name it)"


def _answered(description: str, schema: dict[str, Any], etag: bool = False) -> dict[str, Any]:
    """Return the OpenAPI response of a FHIR answer: its resource's schema as application/fhir+json."""
    headers: dict[str, Any] = {"X-Request-ID": {"$ref": "#/components/headers/RequestId"},
                               "Cache-Control": {"$ref": "#/components/headers/CacheControl"}}
    if etag:
        headers["ETag"] = {"description": "The patient's version, weak as FHIR gives it (`W/\"3\"`); a record stored "
                                          "without one is at version 1",
                           "schema": {"type": "string", "pattern": '^W/"[1-9][0-9]{0,17}"$'}}
    return {"description": description, "headers": headers, "content": {FHIR_JSON: {"schema": schema}}}


def _asked(schema: Schema) -> tuple[Caller, str, dict[str, Any]]:
    """Check what a FHIR interaction asks, in order: its format (406), its parameters and the doctor it names
    (400, 403); return the caller, the doctor (the token's subject unless named) and the parameters."""
    search.refuse_formats_not_served()
    parameters = search.query_parameters()
    caller: Caller = g.caller
    uid = parameters.get("uid")
    doctor_id = caller.subject if uid is None else acting_doctor(caller, uid)
    return caller, doctor_id, schema.load(parameters)


def _read(caller: Caller, doctor_id: str, action: str,
          read: Callable[[Records], tuple[Answer, dict[str, Any]]]) -> Response:
    """Run a read for the doctor and record what it answered in the doctor's audit trail, in one unit of work."""

    def read_and_record(records: Records) -> Answer:
        answer, targets = read(records)
        steps.record_read(records, action, targets)
        return answer

    return fhir_response(unit_of_work(caller, doctor_id).run(read_and_record))


def _links() -> list[tuple[str, str]]:
    """Return the request's parameters as given, for a page's links."""
    return list(request.args.items(multi=True))


def _patient(record: dict[str, Any], version: Any, last_updated: Any) -> Answer:
    """Answer a patient (as it stands or at one of its versions) as a FHIR Patient, with its version as ETag."""
    resource = patient_resource(record, version, last_updated)
    version_id = resource.get("meta", {}).get("versionId")
    return Answer(200, resource, {"ETag": weak_etag(version_id)} if version_id else {})


@bp.get("/metadata")
@documented(summary="Get the FHIR CapabilityStatement: what the view serves", tag="fhir", public=True,
            query=search.FormatQuery, media_type=FHIR_JSON, refusals=(UnsupportedFormat,),
            responses={200: _answered("The CapabilityStatement", CAPABILITY_STATEMENT_SCHEMA), 400: MALFORMED})
def metadata() -> Response:
    """Answer the CapabilityStatement, without a token."""
    search.refuse_formats_not_served()
    search.format_query.load(search.query_parameters())
    return fhir_response(Answer(200, capability_statement(base_url()), {}))


@bp.get("/Patient/<patient_id>")
@documented(summary="Read one of the doctor's patients as a FHIR Patient", tag="fhir", query=search.FhirQuery,
            media_type=FHIR_JSON, refusals=(*ASKED, NotPatientOwner, PatientNotFound, UnreadableVersion),
            responses={200: _answered("The Patient", PATIENT_SCHEMA, etag=True), 400: MALFORMED})
@audited("fhir.patient.read")
def read_patient(patient_id: str) -> Response:
    """Answer one of the doctor's patients as it stands."""
    caller, doctor_id, _ = _asked(search.read_query)
    patient_id = path_id(patient_id, "patient_id")

    def read(records: Records) -> tuple[Answer, dict[str, Any]]:
        patient = steps.patient_of(records, doctor_id, patient_id)
        return _patient(patient, patient["version"], patient["updated_at"]), {"patient_id": patient_id}

    return _read(caller, doctor_id, "fhir.patient.read", read)


@bp.get("/Patient/<patient_id>/_history/<int:version>")
@documented(summary="Read one of the doctor's patients as it was at one version (vread)", tag="fhir",
            query=search.FhirQuery, media_type=FHIR_JSON,
            refusals=(*ASKED, NotPatientOwner, PatientNotFound, PatientVersionNotFound, UnreadableVersion),
            responses={200: _answered("The Patient at that version", PATIENT_SCHEMA, etag=True), 400: MALFORMED})
@audited("fhir.patient.vread")
def read_patient_version(patient_id: str, version: int) -> Response:
    """Answer one of the doctor's patients at one of its versions."""
    caller, doctor_id, _ = _asked(search.read_query)
    patient_id = path_id(patient_id, "patient_id")

    def read(records: Records) -> tuple[Answer, dict[str, Any]]:
        entry = steps.patient_at_version(records, doctor_id, patient_id, version)
        return _patient(entry, entry["version"], entry["at"]), {"patient_id": patient_id}

    return _read(caller, doctor_id, "fhir.patient.vread", read)


@bp.get("/Patient/<patient_id>/_history")
@documented(summary="List every version of one of the doctor's patients, newest first, as a history Bundle",
            tag="fhir", query=search.FhirPageQuery, media_type=FHIR_JSON,
            refusals=(*ASKED, NotPatientOwner, PatientNotFound, UnreadableVersion),
            responses={200: _answered("A page of the history Bundle", BUNDLE_SCHEMA), 400: MALFORMED})
@audited("fhir.patient.history")
def patient_history(patient_id: str) -> Response:
    """Answer one page of a patient's versions, newest first, each the whole Patient as it was."""
    caller, doctor_id, query = _asked(search.page_query)
    patient_id = path_id(patient_id, "patient_id")
    before = decode_version_cursor(query["after"]) if query.get("after") else None

    def read(records: Records) -> tuple[Answer, dict[str, Any]]:
        entries, next_cursor = steps.patient_history(records, doctor_id, patient_id, query["count"], before)
        versions = [patient_resource(entry, entry["version"], entry["at"]) for entry in entries]
        bundle = history(f"Patient/{patient_id}/_history", _links(), versions, next_cursor)
        return Answer(200, bundle, {}), {"patient_id": patient_id}

    return _read(caller, doctor_id, "fhir.patient.history", read)


@bp.get("/Patient")
@documented(summary="Search the doctor's patients by name, family, given name and birth date, newest first",
            tag="fhir", query=search.PatientSearchQuery, media_type=FHIR_JSON, refusals=ASKED,
            responses={200: _answered("A page of the searchset Bundle", BUNDLE_SCHEMA), 400: MALFORMED})
@audited("fhir.patient.search")
def search_patients() -> Response:
    """Answer one page of the doctor's patients matching the search, and how many match in all."""
    caller, doctor_id, query = _asked(search.patient_search_query)

    def read(records: Records) -> tuple[Answer, dict[str, Any]]:
        patients, next_cursor, total = steps.search_patients(records, doctor_id, search.patient_search(query))
        resources = [patient_resource(patient, patient["version"], patient["updated_at"]) for patient in patients]
        bundle = searchset("Patient", _links(), resources, next_cursor, total)
        return Answer(200, bundle, {}), {"patient_ids": [patient["_id"] for patient in patients]}

    return _read(caller, doctor_id, "fhir.patient.search", read)


@bp.get("/Appointment/<appointment_id>")
@documented(summary="Read one of the doctor's appointments as a FHIR Appointment", tag="fhir",
            query=search.FhirQuery, media_type=FHIR_JSON, refusals=(*ASKED, NotAppointmentOwner, AppointmentNotFound),
            responses={200: _answered("The Appointment", APPOINTMENT_SCHEMA), 400: MALFORMED})
@audited("fhir.appointment.read")
def read_appointment(appointment_id: str) -> Response:
    """Answer one of the doctor's appointments."""
    caller, doctor_id, _ = _asked(search.read_query)
    appointment_id = path_id(appointment_id, "appointment_id")

    def read(records: Records) -> tuple[Answer, dict[str, Any]]:
        appointment = steps.appointment_of(records, doctor_id, appointment_id)
        return Answer(200, appointment_resource(appointment), {}), {"appointment_id": appointment_id,
                                                                    "patient_id": _linked(appointment)}

    return _read(caller, doctor_id, "fhir.appointment.read", read)


@bp.get("/Appointment")
@documented(summary="Search the doctor's appointments by patient and start, by start", tag="fhir",
            query=search.AppointmentSearchQuery, media_type=FHIR_JSON, refusals=ASKED,
            responses={200: _answered("A page of the searchset Bundle", BUNDLE_SCHEMA), 400: MALFORMED})
@audited("fhir.appointment.search")
def search_appointments() -> Response:
    """Answer one page of the doctor's appointments matching the search, by start, and how many match in all."""
    caller, doctor_id, query = _asked(search.appointment_search_query)
    asked = search.appointment_search(query)

    def read(records: Records) -> tuple[Answer, dict[str, Any]]:
        appointments, next_cursor, total = steps.find_appointments(records, doctor_id, asked)
        bundle = searchset("Appointment", _links(), [appointment_resource(item) for item in appointments],
                           next_cursor, total)
        return Answer(200, bundle, {}), {"appointment_ids": [item["_id"] for item in appointments],
                                         "patient_id": asked["patient_id"]}

    return _read(caller, doctor_id, "fhir.appointment.search", read)


def _linked(appointment: dict[str, Any]) -> str | None:
    """Return the id of the patient an appointment is linked to, when it is one the service can name."""
    patient_id = appointment.get("patient_id")
    return patient_id.lower() if isinstance(patient_id, str) and OBJECT_ID.match(patient_id) else None
