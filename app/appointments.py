"""HTTP routes for appointments."""
from flask import Blueprint, request

from app import schemas, services
from app.api_docs import PageOf, documented
from app.audit import audited
from app.auth import acting_doctor
from app.idempotency import idempotent
from app.web import current_caller, database, doctor_and_query, json_object_body, page, path_id, success, unit_of_work

bp = Blueprint("appointments", __name__)


@bp.post("/appointments")
@documented(
    summary="Create an appointment, without a patient", tag="appointments",
    query=schemas.DoctorQuery, body=schemas.AppointmentSchema,
    example={"date": "2026-12-01T09:00:00Z", "reason": "Annual check-up"},
    headers=("Idempotency-Key", "X-Request-ID"),
    responses={201: schemas.AppointmentSchema, 400: "Invalid body or missing uid",
               403: "Token does not allow acting for this doctor",
               409: "A request with this Idempotency-Key is still in progress",
               422: "Idempotency-Key was already used with a different request"},
)
@idempotent
@audited("appointment.create")
def create_appointment():
    """Create an appointment for the doctor."""
    caller = current_caller()
    body = json_object_body()
    doctor_id = acting_doctor(caller, request.args.get("uid"))
    fields = schemas.appointment_request.load(body)
    work = unit_of_work(caller, doctor_id, answer=_created)
    return _created(services.schedule_appointment(work, doctor_id, fields))


def _created(appointment):
    """Answer 201 with the stored appointment."""
    return success(schemas.appointment_view.dump(appointment), 201)


@bp.get("/appointments/<appointment_id>")
@documented(
    summary="Read one of the doctor's appointments", tag="appointments", query=schemas.DoctorQuery,
    responses={200: schemas.AppointmentSchema, 400: "Invalid id or missing uid",
               403: "Doctor does not own this appointment", 404: "Appointment not found"},
)
def read_appointment(appointment_id):
    """Return one of the doctor's appointments."""
    doctor_id, _ = doctor_and_query(current_caller(), schemas.doctor_query)
    appointment = services.appointment_of(database().records(), doctor_id, path_id(appointment_id, "appointment_id"))
    return success(schemas.appointment_view.dump(appointment))


@bp.get("/appointments")
@documented(
    summary="List the doctor's appointments by date, a page at a time", tag="appointments",
    query=schemas.AppointmentListQuery,
    responses={200: PageOf(schemas.AppointmentSchema), 400: "Invalid query parameters or cursor",
               403: "Token does not allow acting for this doctor"},
)
def list_appointments():
    """Return one page of the doctor's appointments, sorted by date then id."""
    doctor_id, query = doctor_and_query(current_caller(), schemas.appointment_list_query)
    items, next_cursor = database().records().list_appointments(
        doctor_id, query["limit"], after=query.get("after"), linked=query.get("linked"))
    return page(schemas.appointment_view.dump(items, many=True), next_cursor)
