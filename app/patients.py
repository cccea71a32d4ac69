"""HTTP routes for patients."""
from flask import Blueprint, request

from app import schemas, services
from app.api_docs import PageOf, documented
from app.audit import audited
from app.auth import acting_doctor
from app.exceptions import MissingAppointmentId, MissingPatientNames
from app.idempotency import idempotent
from app.web import (
    current_caller, database, doctor_and_query, is_blank, json_object_body, page, path_id, success, unit_of_work,
)

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
    responses={
        201: schemas.PatientSchema,
        400: "Missing appointment_id | Missing doctor_id (uid) | "
             "Missing required patient fields (firstName, lastName) | invalid fields (see details)",
        403: "Doctor does not own this appointment | Token does not allow acting for this doctor",
        404: "Appointment not found (patient created but not linked); the kept patient is in data",
        409: "Appointment already linked to a patient | a request with this Idempotency-Key is still in progress",
        422: "Idempotency-Key was already used with a different request",
    },
)
@idempotent
@audited("appointment.link")
def add_and_link():
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
    work = unit_of_work(caller, doctor_id, answer=_created)
    return _created(services.add_and_link_patient(work, doctor_id, appointment_id, fields))


def _created(patient):
    """Answer 201 with the stored patient."""
    return success(schemas.patient_view.dump(patient), 201)


@bp.get("/patients/<patient_id:patient_id>")
@documented(
    summary="Read one of the doctor's patients", tag="patients", query=schemas.DoctorQuery,
    responses={200: schemas.PatientSchema, 400: "Invalid id or missing uid",
               403: "Doctor does not own this patient", 404: "Patient not found"},
)
def read_patient(patient_id):
    """Return one of the doctor's patients."""
    doctor_id, _ = doctor_and_query(current_caller(), schemas.doctor_query)
    patient = services.patient_of(database().records(), doctor_id, path_id(patient_id, "patient_id"))
    return success(schemas.patient_view.dump(patient))


@bp.get("/patients")
@documented(
    summary="List the doctor's patients, newest first, optionally by name prefix", tag="patients",
    query=schemas.PatientListQuery,
    responses={200: PageOf(schemas.PatientSchema), 400: "Invalid query parameters or cursor",
               403: "Token does not allow acting for this doctor"},
)
def list_patients():
    """Return one page of the doctor's patients, newest first, matching q at the start of a name."""
    doctor_id, query = doctor_and_query(current_caller(), schemas.patient_list_query)
    items, next_cursor = database().records().list_patients(
        doctor_id, query["limit"], after=query.get("after"), name_prefix=query.get("q"))
    return page(schemas.patient_view.dump(items, many=True), next_cursor)
