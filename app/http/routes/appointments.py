"""HTTP routes for appointments."""
from flask import Blueprint, Response, request

from app.http.answers import appointment_as_it_stands, appointment_created, listing, response
from app.http.auth import acting_doctor
from app.http.callers import current_caller, doctor_and_query
from app.http.documented import ListingOf, documented
from app.http.idempotency import idempotent
from app.http.refusals import IdempotencyKeyReused, IdempotentRequestInProgress
from app.http.refused_attempts import audited
from app.http.request_input import json_object_body, path_id
from app.http.request_work import database, unit_of_work
from app.service import schemas, steps
from app.service.refusals import (
    AppointmentAlreadyLinked,
    AppointmentNotFound,
    AppointmentNotLinked,
    MissingDoctorId,
    NotAllowedForDoctor,
    NotAppointmentOwner,
    NotPatientOwner,
    PatientNotFound,
)
from app.store.exceptions import UnreadableVersion

bp = Blueprint("appointments", __name__)


@bp.post("/appointments")
@documented(
    summary="Create an appointment, without a patient", tag="appointments",
    query=schemas.DoctorQuery, body=schemas.AppointmentSchema,
    example={"date": "2026-12-01T09:00:00Z", "reason": "Annual check-up"},
    headers=("Idempotency-Key", "X-Request-ID"),
    refusals=(MissingDoctorId, NotAllowedForDoctor, IdempotentRequestInProgress, IdempotencyKeyReused),
    responses={201: schemas.AppointmentSchema, 400: "Invalid body or uid"},
)
@idempotent
@audited("appointment.create")
def create_appointment() -> Response:
    """Create an appointment for the doctor."""
    caller = current_caller()
    body = json_object_body()
    doctor_id = acting_doctor(caller, request.args.get("uid"))
    fields = schemas.appointment_request.load(body)
    return response(unit_of_work(caller, doctor_id).run(
        lambda records: appointment_created(steps.schedule_appointment(records, doctor_id, fields))))


# No Idempotency-Key on these two: a retry changes nothing (the same link again answers 200, an unlink
# again 409), so it is safe as it is.
@bp.put("/appointments/<appointment_id>/patient")
@documented(
    summary="Link an existing patient of the doctor to their free appointment", tag="appointments",
    query=schemas.DoctorQuery, body=schemas.LinkPatientSchema, example={"patient_id": "65f8a1b2c3d4e5f6789012cd"},
    headers=("X-Request-ID",),
    refusals=(MissingDoctorId, NotAllowedForDoctor, NotPatientOwner, NotAppointmentOwner, PatientNotFound,
              AppointmentNotFound, UnreadableVersion, AppointmentAlreadyLinked),
    responses={200: schemas.AppointmentSchema, 400: "Invalid body, path id or uid",
               409: "to another patient (the same one again answers 200)"},
)
@audited("appointment.link")
def link_patient(appointment_id: str) -> Response:
    """Link one of the doctor's patients to one of their free appointments; the same patient again changes nothing."""
    # The checks run in the documented order; the first that fails answers.
    caller = current_caller()
    patient_id = schemas.link_patient_request.load(json_object_body())["patient_id"]
    appointment_id = path_id(appointment_id, "appointment_id")
    doctor_id, _ = doctor_and_query(caller, schemas.doctor_query)
    return response(unit_of_work(caller, doctor_id).run(lambda records: appointment_as_it_stands(
        steps.link_existing_patient(records, doctor_id, appointment_id, patient_id))))


@bp.delete("/appointments/<appointment_id>/patient")
@documented(
    summary="Unlink the patient from one of the doctor's appointments, keeping the patient", tag="appointments",
    query=schemas.DoctorQuery, headers=("X-Request-ID",),
    refusals=(MissingDoctorId, NotAllowedForDoctor, NotAppointmentOwner, AppointmentNotFound, AppointmentNotLinked),
    responses={200: schemas.AppointmentSchema, 400: "Invalid path id or uid"},
)
@audited("appointment.unlink")
def unlink_patient(appointment_id: str) -> Response:
    """Free one of the doctor's appointments from its patient; the patient stays."""
    caller = current_caller()
    appointment_id = path_id(appointment_id, "appointment_id")
    doctor_id, _ = doctor_and_query(caller, schemas.doctor_query)
    return response(unit_of_work(caller, doctor_id).run(
        lambda records: appointment_as_it_stands(steps.unlink_patient(records, doctor_id, appointment_id))))


@bp.get("/appointments/<appointment_id>")
@documented(
    summary="Read one of the doctor's appointments", tag="appointments", query=schemas.DoctorQuery,
    refusals=(MissingDoctorId, NotAllowedForDoctor, NotAppointmentOwner, AppointmentNotFound),
    responses={200: schemas.AppointmentSchema, 400: "Invalid id or uid"},
)
def read_appointment(appointment_id: str) -> Response:
    """Return one of the doctor's appointments."""
    doctor_id, _ = doctor_and_query(current_caller(), schemas.doctor_query)
    appointment = steps.appointment_of(database().records(), doctor_id, path_id(appointment_id, "appointment_id"))
    return response(appointment_as_it_stands(appointment))


@bp.get("/appointments")
@documented(
    summary="List the doctor's appointments by date, a page at a time", tag="appointments",
    query=schemas.AppointmentListQuery,
    refusals=(MissingDoctorId, NotAllowedForDoctor),
    responses={200: ListingOf(schemas.AppointmentSchema), 400: "Invalid query parameters or cursor"},
)
def list_appointments() -> Response:
    """Return one page of the doctor's appointments, by date then id; those dated otherwise by another program last."""
    doctor_id, query = doctor_and_query(current_caller(), schemas.appointment_list_query)
    items, next_cursor = steps.list_appointments(database().records(), doctor_id, query)
    return response(listing(schemas.appointment_view.dump(items, many=True), next_cursor))
