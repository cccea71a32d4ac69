"""What a request is answered, built once as data (status, body, headers) and sent as it was built."""
from typing import Any

from flask import Response, jsonify

from app.http.etags import entity_tag
from app.http.refusals import TooManyRequests, message_of, refused
from app.service import schemas
from app.service.refusals import AppointmentNotFoundPatientKept
from app.store.idempotency_keys import Answer


def success(data: Any, status: int = 200, **headers: str) -> Answer:
    """Answer data in the success envelope."""
    return Answer(status, {"success": True, "data": data}, headers)


def listing(items: list[Any], next_cursor: str | None) -> Answer:
    """Answer one page of a list and the cursor of the next."""
    return Answer(200, {"success": True, "data": items, "next": next_cursor}, {})


def patient_as_it_stands(patient: dict[str, Any]) -> Answer:
    """Answer 200 with the patient and its version as its ETag."""
    return success(schemas.patient_view.dump(patient), ETag=entity_tag(patient["version"]))


def patient_created(patient: dict[str, Any]) -> Answer:
    """Answer 201 with the stored patient, where to read it and its version."""
    return success(schemas.patient_view.dump(patient), 201, Location=f"/patients/{patient['_id']}",
                   ETag=entity_tag(patient["version"]))


def appointment_as_it_stands(appointment: dict[str, Any]) -> Answer:
    """Answer 200 with the appointment as it now stands."""
    return success(schemas.appointment_view.dump(appointment))


def appointment_created(appointment: dict[str, Any]) -> Answer:
    """Answer 201 with the stored appointment and where to read it."""
    return success(schemas.appointment_view.dump(appointment), 201, Location=f"/appointments/{appointment['_id']}")


def failure(status: int, message: str, **extra: Any) -> Answer:
    """Answer an error in the envelope, with whatever else it carries (details, data)."""
    body = {"success": False, "error": message}
    body.update((key, value) for key, value in extra.items() if value is not None)
    return Answer(status, body, {})


def refusal_answer(refusal: Exception) -> Answer:
    """Answer a refusal with its status, message, any details, and the headers it calls for."""
    how = refused(refusal)
    answer = failure(how.status, message_of(refusal), details=getattr(refusal, "details", None))
    answer.headers.update(how.headers)
    if isinstance(refusal, AppointmentNotFoundPatientKept):
        # Documented: the kept patient is handed back through the same schema as a 201, so no internal field can
        # leak through `data`, and its version goes out as the ETag, as on a 201.
        answer.body["data"] = schemas.patient_view.dump(refusal.patient)
        answer.headers["ETag"] = entity_tag(refusal.patient["version"])
    if isinstance(refusal, TooManyRequests):
        answer.headers["Retry-After"] = str(refusal.retry_after)
    return answer


def response(answer: Answer) -> Response:
    """Build the HTTP response of an answer."""
    sent = jsonify(answer.body)
    sent.status_code = answer.status
    sent.headers.update(answer.headers)
    return sent
