"""The clinic's business steps; no HTTP here, only validated data, a unit of work and refusals."""
from app.exceptions import AppointmentAlreadyLinked, AppointmentNotFound, NotAppointmentOwner


def add_and_link_patient(uow, doctor_id, appointment_id, patient_fields):
    """Create a patient for this doctor and link it to their free appointment, in the documented order."""

    def steps(records):
        patient = records.add_patient(doctor_id, patient_fields)
        appointment = records.find_appointment(appointment_id)
        if appointment is None:
            # Documented: the patient is kept and handed back, so the caller can link it later.
            raise AppointmentNotFound(data=patient)
        if appointment.get("doctor_id") != doctor_id:
            raise NotAppointmentOwner()
        if appointment.get("patient_id") is not None:
            raise AppointmentAlreadyLinked()
        if not records.link_patient(appointment_id, doctor_id, patient["_id"]):
            # Free when read, taken before our update: another request won the race.
            raise AppointmentAlreadyLinked()
        return patient

    return uow.run(steps)
