"""The clinic's business steps; no HTTP here, only validated data, records or a unit of work, and refusals."""
from app.exceptions import (
    AppointmentAlreadyLinked,
    AppointmentNotFound,
    NoSuchAppointment,
    NoSuchPatient,
    NotAppointmentOwner,
    NotPatientOwner,
)

CREATED = 201


def add_and_link_patient(uow, doctor_id, appointment_id, patient_fields):
    """Create a patient for this doctor and link it to their free appointment, in the documented order."""

    def steps(records):
        patient = records.add_patient(doctor_id, patient_fields)
        appointment = records.find_appointment(appointment_id)
        if appointment is None:
            # Documented: the patient is kept and handed back, so the caller can link it later.
            records.audit(("patient.create", AppointmentNotFound.status,
                           {"patient_id": patient["_id"], "appointment_id": appointment_id}))
            raise AppointmentNotFound(data=patient)
        if appointment.get("doctor_id") != doctor_id:
            raise NotAppointmentOwner()
        if appointment.get("patient_id") is not None:
            raise AppointmentAlreadyLinked()
        if not records.link_patient(appointment_id, doctor_id, patient["_id"]):
            # Free when read, taken before our update: another request won the race.
            raise AppointmentAlreadyLinked()
        records.audit(("patient.create", CREATED, {"patient_id": patient["_id"]}),
                      ("appointment.link", CREATED, {"appointment_id": appointment_id, "patient_id": patient["_id"]}))
        return patient

    return uow.run(steps)


def schedule_appointment(uow, doctor_id, fields):
    """Create an appointment for this doctor, without a patient."""

    def steps(records):
        appointment = records.add_appointment(doctor_id, fields)
        records.audit(("appointment.create", CREATED, {"appointment_id": appointment["_id"]}))
        return appointment

    return uow.run(steps)


def appointment_of(records, doctor_id, appointment_id):
    """Return the doctor's appointment, refusing one that does not exist or is another doctor's."""
    appointment = records.find_appointment(appointment_id)
    if appointment is None:
        raise NoSuchAppointment()
    if appointment["doctor_id"] != doctor_id:
        raise NotAppointmentOwner()
    return appointment


def patient_of(records, doctor_id, patient_id):
    """Return the doctor's patient, refusing one that does not exist or is another doctor's."""
    patient = records.find_patient(patient_id)
    if patient is None:
        raise NoSuchPatient()
    if patient["doctor_id"] != doctor_id:
        raise NotPatientOwner()
    return patient
