"""How the FHIR view answers: FHIR JSON, and every failure as an OperationOutcome with the service's status."""
import json
from typing import Any

from flask import Response, request

from app.store.idempotency_keys import Answer

FHIR_JSON = "application/fhir+json"
# Where the FHIR view is served: every path under it answers its failures as OperationOutcomes.
FHIR_BASE_PATH = "/fhir"
# FHIR's issue type for each status the service answers (http://hl7.org/fhir/R4/valueset-issue-type.html).
ISSUE_TYPES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               406: "not-supported", 408: "timeout", 409: "conflict", 413: "too-long", 415: "not-supported",
               429: "throttled", 500: "exception", 503: "transient"}


def is_fhir_request() -> bool:
    """Tell whether the request is one to the FHIR view."""
    return request.path == FHIR_BASE_PATH or request.path.startswith(FHIR_BASE_PATH + "/")


def operation_outcome(status: int, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the OperationOutcome of a failure: its message, then one issue per field it names."""
    code = ISSUE_TYPES.get(status, "processing")
    issues = [{"severity": "error", "code": code, "diagnostics": message}]
    for name, messages in (details or {}).items():
        said = " ".join(messages) if isinstance(messages, list) else json.dumps(messages)
        issues.append({"severity": "error", "code": code, "diagnostics": f"{name}: {said}"})
    return {"resourceType": "OperationOutcome", "issue": issues}


def fhir_response(answer: Answer) -> Response:
    """Send an answer whose body is a FHIR resource, as application/fhir+json."""
    sent = Response(json.dumps(answer.body, ensure_ascii=False, separators=(",", ":")), answer.status,
                    mimetype=FHIR_JSON)
    sent.headers.update(answer.headers)
    return sent


def outcome_response(failure: Answer) -> Response:
    """Send a failure built in the envelope (status, error, details, headers) as an OperationOutcome."""
    body = failure.body
    return fhir_response(Answer(failure.status, operation_outcome(failure.status, body["error"], body.get("details")),
                                failure.headers))


OPERATION_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["severity", "code", "diagnostics"],
            "properties": {"severity": {"const": "error"}, "code": {"type": "string"},
                           "diagnostics": {"type": "string", "description": "What went wrong, in one line; the "
                                                                            "issues after the first name a field"}},
        }},
    },
}
