"""HTTP routes for patients."""
from flask import Blueprint, Response, request

from app.http.answers import listing, patient_as_it_stands, patient_created, refusal_answer, response
from app.http.auth import acting_doctor
from app.http.callers import current_caller, doctor_and_query
from app.http.documented import ListingOf, documented
from app.http.idempotency import idempotent
from app.http.refusals import (
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
    IfMatchRequired,
    InvalidIfMatch,
    UnsupportedPatchType,
)
from app.http.refused_attempts import audited
from app.http.request_input import expected_version, is_blank, json_object_body, merge_patch_body, path_id
from app.http.request_work import database, unit_of_work
from app.service import schemas, steps
from app.service.refusals import (
    AppointmentAlreadyLinked,
    AppointmentNotFoundPatientKept,
    MissingAppointmentId,
    MissingDoctorId,
    MissingPatientNames,
    NotAllowedForDoctor,
    NotAppointmentOwner,
    NotPatientOwner,
    PatientChanged,
    PatientNotFound,
)
from app.store.cursors import decode_version_cursor
from app.store.exceptions import UnreadableVersion
from app.store.idempotency_keys import Answer
from app.store.records import Records

bp = Blueprint("patients", __name__)


ADD_AND_LINK_EXAMPLE = {
    "appointment_id": "65f8a1b2c3d4e5f6789012ef",
    "firstName": "Jane",
    "lastName": "Smith",
    "dateOfBirth": "1990-03-20",
    "address": {"street": "456 Oak St", "city": "Boston", "state": "MA", "zipCode": "02101"},
    "insurance": {"provider": "Aetna", "policyNumber": "AET789012"},
    "medicalHistory": "No significant medical history",
    "currentMedications": "Multivitamin daily",
    "contact": {"phone": "+1234567892", "email": "jane.smith@example.com"},
}


@bp.post("/patients/add_and_link")
@documented(
    summary="Create a patient and link it to an existing appointment", tag="patients",
    query=schemas.DoctorQuery, body=schemas.AddAndLinkSchema, example=ADD_AND_LINK_EXAMPLE,
    headers=("Idempotency-Key", "X-Request-ID"),
    response_headers={201: ("ETag",), 404: ("ETag",)},
    refusals=(MissingAppointmentId, MissingDoctorId, MissingPatientNames, NotAppointmentOwner, NotAllowedForDoctor,
              AppointmentNotFoundPatientKept, AppointmentAlreadyLinked, IdempotentRequestInProgress,
              IdempotencyKeyReused),
    responses={
        201: schemas.PatientSchema,
        400: "invalid fields (see details)",
        404: "the kept patient is in data",
    },
)
@idempotent
@audited("appointment.link")
def add_and_link() -> Response:
    """Create a patient and link it to one of the doctor's free appointments."""
    # The checks run in the documented order; the first that fails answers.
    caller = current_caller()
    body = json_object_body()
    if is_blank(body.get("appointment_id")):
        raise MissingAppointmentId()
    doctor_id = acting_doctor(caller, request.args.get("uid"))
    if is_blank(body.get("firstName")) or is_blank(body.get("lastName")):
        raise MissingPatientNames()
    fields = schemas.add_and_link_request.load(body)
    appointment_id = fields.pop("appointment_id")

    def add_and_link_steps(records: Records) -> Answer:
        try:
            return patient_created(steps.add_and_link_patient(records, doctor_id, appointment_id, fields))
        except AppointmentNotFoundPatientKept as kept:
            return refusal_answer(kept)  # documented: a refusal whose patient is kept, so its work commits

    return response(unit_of_work(caller, doctor_id).run(add_and_link_steps))


@bp.get("/patients/<patient_id:patient_id>")
@documented(
    summary="Read one of the doctor's patients", tag="patients", query=schemas.DoctorQuery,
    response_headers={200: ("ETag",)},
    refusals=(MissingDoctorId, NotAllowedForDoctor, NotPatientOwner, PatientNotFound, UnreadableVersion),
    responses={200: schemas.PatientSchema, 400: "Invalid id or uid"},
)
def read_patient(patient_id: str) -> Response:
    """Return one of the doctor's patients, with its version as its ETag."""
    doctor_id, _ = doctor_and_query(current_caller(), schemas.doctor_query)
    patient = steps.patient_of(database().records(), doctor_id, path_id(patient_id, "patient_id"))
    return response(patient_as_it_stands(patient))


# No Idempotency-Key here: the If-Match already makes a retry safe (once applied, a retry answers 412).
@bp.patch("/patients/<patient_id:patient_id>")
@documented(
    summary="Correct one of the doctor's patients with a JSON Merge Patch, at the version read (If-Match)",
    tag="patients", query=schemas.DoctorQuery, body=schemas.PatientPatchSchema,
    body_types=("application/merge-patch+json", "application/json"),
    example={"contact": {"phone": "+1234567899"}, "medicalHistory": None},
    headers=("If-Match", "X-Request-ID"), response_headers={200: ("ETag",)},
    refusals=(InvalidIfMatch, MissingDoctorId, NotAllowedForDoctor, NotPatientOwner, PatientNotFound, PatientChanged,
              UnsupportedPatchType, IfMatchRequired, UnreadableVersion),
    responses={
        200: schemas.PatientSchema,
        400: "Invalid id or missing uid | Request body must be a JSON object | invalid fields (see details): "
             "unknown, `_id`, `doctor_id`, a name removed or blank",
        412: "nothing changed; read it again for the current ETag",
    },
)
@audited("patient.update")
def correct_patient(patient_id: str) -> Response:
    """Apply a merge patch to one of the doctor's patients if it is still at the version the caller read."""
    # The checks run in the documented order; the first that fails answers.
    caller = current_caller()
    doctor_id, _ = doctor_and_query(caller, schemas.doctor_query)
    patient_id = path_id(patient_id, "patient_id")
    version = expected_version()
    patch = schemas.check_patient_patch(merge_patch_body())
    return response(unit_of_work(caller, doctor_id).run(lambda records: patient_as_it_stands(
        steps.correct_patient_record(records, doctor_id, patient_id, version, patch))))


@bp.get("/patients/<patient_id:patient_id>/history")
@documented(
    summary="List every version of one of the doctor's patients, newest first", tag="patients",
    query=schemas.ListingQuery,
    refusals=(MissingDoctorId, NotAllowedForDoctor, NotPatientOwner, PatientNotFound, UnreadableVersion),
    responses={200: ListingOf(schemas.PatientVersionSchema), 400: "Invalid id, query parameters or cursor"},
)
def patient_history(patient_id: str) -> Response:
    """Return one page of a patient's versions, newest first, each the whole record as it was."""
    doctor_id, query = doctor_and_query(current_caller(), schemas.listing_query)
    patient_id = path_id(patient_id, "patient_id")
    before = decode_version_cursor(query["after"]) if query.get("after") else None
    items, next_cursor = steps.patient_history(database().records(), doctor_id, patient_id, query["limit"], before)
    return response(listing(schemas.patient_version_view.dump(items, many=True), next_cursor))


@bp.get("/patients")
@documented(
    summary="List the doctor's patients, newest first, optionally by name prefix and date of birth", tag="patients",
    query=schemas.PatientListQuery,
    refusals=(MissingDoctorId, NotAllowedForDoctor),
    responses={200: ListingOf(schemas.PatientSchema), 400: "Invalid query parameters or cursor"},
)
def list_patients() -> Response:
    """Return one page of the doctor's patients, newest first, matching q at the start of a name and dateOfBirth."""
    doctor_id, query = doctor_and_query(current_caller(), schemas.patient_list_query)
    items, next_cursor = steps.list_patients(database().records(), doctor_id, query)
    return response(listing(schemas.patient_view.dump(items, many=True), next_cursor))
