"""Refusals the service can give, each knowing its HTTP status and its documented message."""
from typing import Any

from app.store.errors import KeptWork


class Refusal(Exception):
    """A request the service answers with an error envelope instead of a result."""

    status = 400
    message = "Bad request"
    # Response headers the refusal calls for (a 401's WWW-Authenticate challenge).
    headers: dict[str, str] = {}
    # The version of the record the refusal hands back, sent as its ETag (the documented 404's patient).
    version: int | None = None

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None,
                 data: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.data = data
        if headers:
            # This refusal's own headers (the ETag of the patient a 404 keeps), besides its class's.
            self.headers = {**self.headers, **headers}


class InvalidRequest(Refusal):
    """The request is malformed or fails validation."""


class MissingAppointmentId(InvalidRequest):
    message = "Missing appointment_id"


class MissingDoctorId(InvalidRequest):
    message = "Missing doctor_id (uid)"


class MissingPatientNames(InvalidRequest):
    message = "Missing required patient fields (firstName, lastName)"


class NotAuthenticated(Refusal):
    status = 401
    message = "Invalid or missing bearer token"
    # RFC 6750: a token was sent and is not good.
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class MissingBearerToken(NotAuthenticated):
    message = "Missing bearer token"
    # RFC 6750: no credentials were sent, so no error code, only the scheme to use.
    headers = {"WWW-Authenticate": "Bearer"}


class NotAllowedForDoctor(Refusal):
    status = 403
    message = "Token does not allow acting for this doctor"


class AppointmentNotFoundPatientKept(Refusal, KeptWork):
    status = 404
    message = "Appointment not found (patient created but not linked)"
    # Documented: the patient created in step 1 is kept (KeptWork: committed, not rolled back) and returned in `data`.

    def __init__(self, patient: dict[str, Any]) -> None:
        # Shown through the same schema as a 201, so no internal field (version, times) can leak through `data`;
        # the version goes out as the ETag, as on a 201. Imported here: the schemas import this module's refusals.
        from app.service.schemas import patient_view

        super().__init__(data=patient_view.dump(patient))
        self.version = patient["version"]


class NotAppointmentOwner(Refusal):
    status = 403
    message = "Doctor does not own this appointment"


class AppointmentAlreadyLinked(Refusal):
    status = 409
    message = "Appointment already linked to a patient"


class AppointmentNotLinked(Refusal):
    status = 409
    message = "Appointment is not linked to a patient"


class TooManyRequests(Refusal):
    status = 429
    message = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        # Whole seconds until the caller's window has room again (RFC 9110 10.2.3).
        super().__init__(headers={"Retry-After": str(retry_after)})


class DatabaseUnavailable(Refusal):
    status = 503
    message = "Database unavailable"



class TokenKeysUnavailable(Refusal):
    status = 503
    message = "Token signing keys unavailable"


class AppointmentNotFound(Refusal):
    status = 404
    message = "Appointment not found"


class PatientNotFound(Refusal):
    status = 404
    message = "Patient not found"


class NotPatientOwner(Refusal):
    status = 403
    message = "Doctor does not own this patient"


class InvalidIdempotencyKey(InvalidRequest):
    message = "Idempotency-Key must be 1 to 255 printable ASCII characters"


class IdempotencyKeyReused(Refusal):
    status = 422
    message = "Idempotency-Key was already used with a different request"


class IdempotentRequestInProgress(Refusal):
    status = 409
    message = "A request with this Idempotency-Key is still in progress"



class UnsupportedPatchType(Refusal):
    status = 415
    message = "Content-Type must be application/merge-patch+json or application/json"


class IfMatchRequired(Refusal):
    status = 428
    message = "If-Match is required"


class InvalidIfMatch(InvalidRequest):
    message = 'If-Match must be one ETag of this patient, as GET returned it (e.g. "3"); * is not accepted'


class PatientChanged(Refusal):
    status = 412
    message = "Patient was changed since that version"
