"""What the clinic's rules refuse, said as what happened; app/http/refusals.py alone knows each one's answer."""
from typing import Any


class Refusal(Exception):
    """A request the service answers with an error instead of a result."""

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message or type(self).__name__)
        # A message of its own for this one refusal, where the table's would say too little (which header, which id).
        self.message = message
        self.details = details


class InvalidRequest(Refusal):
    """The request is malformed or fails validation."""


class MissingAppointmentId(InvalidRequest):
    """add_and_link named no appointment."""


class MissingDoctorId(InvalidRequest):
    """The request named no doctor to act for."""


class MissingPatientNames(InvalidRequest):
    """The new patient has no first or no last name."""


class NotAllowedForDoctor(Refusal):
    """The caller may not act for the doctor the request names."""


class AppointmentNotFound(Refusal):
    """No appointment has that id."""


class AppointmentNotFoundPatientKept(AppointmentNotFound):
    """add_and_link created its patient, then found no appointment to link it to: the patient stays."""

    def __init__(self, patient: dict[str, Any]) -> None:
        super().__init__()
        self.patient = patient


class NotAppointmentOwner(Refusal):
    """The appointment is another doctor's."""


class AppointmentAlreadyLinked(Refusal):
    """The appointment already has a patient."""


class AppointmentNotLinked(Refusal):
    """The appointment has no patient to unlink."""


class PatientNotFound(Refusal):
    """No patient has that id."""


class NotPatientOwner(Refusal):
    """The patient is another doctor's."""


class PatientChanged(Refusal):
    """The patient is no longer at the version the caller read."""


class PatientVersionNotFound(Refusal):
    """The doctor's patient has no version with that number."""
