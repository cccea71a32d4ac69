"""The one table from every refusal to its HTTP status and documented message, and the refusals only HTTP has."""
from dataclasses import dataclass

from app.service.refusals import (
    AppointmentAlreadyLinked,
    AppointmentNotFound,
    AppointmentNotFoundPatientKept,
    AppointmentNotLinked,
    InvalidRequest,
    MissingAppointmentId,
    MissingDoctorId,
    MissingPatientNames,
    NotAllowedForDoctor,
    NotAppointmentOwner,
    NotPatientOwner,
    PatientChanged,
    PatientNotFound,
    PatientVersionNotFound,
    Refusal,
)
from app.store.exceptions import KeyContended, KeyTakenOver, UnreadableVersion


class NotAuthenticated(Refusal):
    """The bearer token is not good (its message says how)."""


class MissingBearerToken(NotAuthenticated):
    """No bearer token was sent."""


class TokenKeysUnavailable(Refusal):
    """The identity provider's signing keys could not be fetched."""


class TooManyRequests(Refusal):
    """The caller sent more than its rate limit allows."""

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        # Whole seconds until the caller's window has room again (RFC 9110 10.2.3).
        self.retry_after = retry_after


class DatabaseUnavailable(Refusal):
    """The database did not answer in time."""


class InvalidIdempotencyKey(InvalidRequest):
    """The Idempotency-Key header is not 1 to 255 printable ASCII characters."""


class IdempotencyKeyReused(Refusal):
    """The Idempotency-Key was used before with another request."""


class IdempotentRequestInProgress(Refusal):
    """Another request holding the same Idempotency-Key has not finished."""


class UnsupportedPatchType(Refusal):
    """A patch sent as a media type other than a merge patch."""


class UnsupportedFormat(Refusal):
    """A FHIR request asking for a format other than FHIR JSON (its _format, or else its Accept)."""


class IfMatchRequired(Refusal):
    """A correction sent without If-Match."""


class InvalidIfMatch(InvalidRequest):
    """An If-Match that is not one ETag of the patient."""


@dataclass(frozen=True)
class Refused:
    """How a refusal is answered: its status, its documented message and the headers it always carries."""

    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()


# Read by error_handlers.py to answer, by refused_attempts.py to record the outcome and by openapi.py to document it. A
# refusal is found under its own class or, failing that, its nearest ancestor's.
REFUSED: dict[type[Exception], Refused] = {
    InvalidRequest: Refused(400, "Bad request"),
    MissingAppointmentId: Refused(400, "Missing appointment_id"),
    MissingDoctorId: Refused(400, "Missing doctor_id (uid)"),
    MissingPatientNames: Refused(400, "Missing required patient fields (firstName, lastName)"),
    InvalidIdempotencyKey: Refused(400, "Idempotency-Key must be 1 to 255 printable ASCII characters"),
    InvalidIfMatch: Refused(400, 'If-Match must be one ETag of this patient, as GET returned it (e.g. "3"); '
                                 "* is not accepted"),
    # RFC 6750: a token sent and not good gets an error code; none sent, only the scheme to use.
    NotAuthenticated: Refused(401, "Invalid or missing bearer token",
                              (("WWW-Authenticate", 'Bearer error="invalid_token"'),)),
    MissingBearerToken: Refused(401, "Missing bearer token", (("WWW-Authenticate", "Bearer"),)),
    NotAllowedForDoctor: Refused(403, "Token does not allow acting for this doctor"),
    NotAppointmentOwner: Refused(403, "Doctor does not own this appointment"),
    NotPatientOwner: Refused(403, "Doctor does not own this patient"),
    AppointmentNotFound: Refused(404, "Appointment not found"),
    AppointmentNotFoundPatientKept: Refused(404, "Appointment not found (patient created but not linked)"),
    PatientNotFound: Refused(404, "Patient not found"),
    PatientVersionNotFound: Refused(404, "Patient version not found"),
    AppointmentAlreadyLinked: Refused(409, "Appointment already linked to a patient"),
    AppointmentNotLinked: Refused(409, "Appointment is not linked to a patient"),
    IdempotentRequestInProgress: Refused(409, "A request with this Idempotency-Key is still in progress"),
    # The store's words for the same: claimed and freed over and over, or taken over as abandoned meanwhile.
    KeyContended: Refused(409, "A request with this Idempotency-Key is still in progress"),
    KeyTakenOver: Refused(409, "A request with this Idempotency-Key is still in progress"),
    # A patient another program stored at a version no ETag, If-Match or cursor names (text, 2.5, a list, ...): that
    # program's shape, not a breach as a failed integrity check is, so never a 500. 409: the record's own state stands
    # in the way until it is stored at a version again; not 404 or 403, which would tell its doctor it is gone or not
    # theirs, nor 503, as a retry finds the same.
    UnreadableVersion: Refused(409, "Stored record has a version this service cannot read"),
    PatientChanged: Refused(412, "Patient was changed since that version"),
    UnsupportedFormat: Refused(406, "Only FHIR JSON is served: application/fhir+json or application/json"),
    UnsupportedPatchType: Refused(415, "Content-Type must be application/merge-patch+json or application/json"),
    IdempotencyKeyReused: Refused(422, "Idempotency-Key was already used with a different request"),
    IfMatchRequired: Refused(428, "If-Match is required"),
    TooManyRequests: Refused(429, "Too many requests"),
    DatabaseUnavailable: Refused(503, "Database unavailable"),
    TokenKeysUnavailable: Refused(503, "Token signing keys unavailable"),
}


def refused(refusal: Exception | type[Exception]) -> Refused:
    """Return how a refusal (or a refusal class) is answered."""
    kind = refusal if isinstance(refusal, type) else type(refusal)
    return next(REFUSED[ancestor] for ancestor in kind.__mro__ if ancestor in REFUSED)


def is_refusal(error: Exception) -> bool:
    """Tell whether an error is one the table answers."""
    return any(ancestor in REFUSED for ancestor in type(error).__mro__)


def status_of(refusal: Exception | type[Exception]) -> int:
    """Return the status a refusal is answered with."""
    return refused(refusal).status


def message_of(refusal: Exception) -> str:
    """Return the message a refusal is answered with: its own if it carries one, else its documented one."""
    return getattr(refusal, "message", None) or refused(refusal).message
