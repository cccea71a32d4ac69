"""HTTP routes for patients."""
from flask import Blueprint, request

from app import schemas, services
from app.auth import acting_doctor
from app.exceptions import MissingAppointmentId, MissingPatientNames
from app.web import current_caller, database, is_blank, json_object_body, success

bp = Blueprint("patients", __name__)


@bp.post("/patients/add_and_link")
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
    patient = services.add_and_link_patient(database().unit_of_work(), doctor_id, appointment_id, fields)
    return success(schemas.patient_view.dump(patient), 201)
