"""Turn every failure into the envelope {"success": false, "error": ...}, or under /fhir into an OperationOutcome
with the same status, message and headers; nothing else reaches a client."""
import logging
import traceback
from collections.abc import Callable
from typing import Any

from flask import Flask, Response
from marshmallow import ValidationError
from pymongo.errors import ConnectionFailure, PyMongoError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from app.http.answers import failure, refusal_answer, response
from app.http.fhir.outcomes import is_fhir_request, outcome_response
from app.http.middleware.body_limit import MAX_BODY_BYTES
from app.http.refusals import REFUSED, DatabaseUnavailable
from app.store.exceptions import InvalidCursor, NotSealedForThisRecord, ReplicaSetRequired
from app.store.idempotency_keys import Answer

log = logging.getLogger("clinic.errors")

HTTP_MESSAGES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    408: "Request body not received in time",
    413: f"Request body too large (limit {MAX_BODY_BYTES // 1024} KiB)",
    415: "Unsupported media type",
}
INTEGRITY_CHECK_FAILED = "Stored record failed its integrity check"
# A validation refusal names at most this many fields (the first by name, at every level), each name cut to this
# length: a body of thousands of unknown keys, or of one long key, is answered in about a kilobyte.
NAMED_FIELDS_MAX = 10
FIELD_NAME_SHOWN_MAX = 64
# A validation refusal's messages by field: a name, or a list's index, to its messages or a nested object's.
Messages = dict[str | int, Any]


def cursor_answer(error: InvalidCursor) -> Answer:
    """Answer a cursor this service did not issue with 400, naming the parameter."""
    return failure(400, "Invalid cursor", details={"after": [str(error)]})


def replica_set_answer(error: ReplicaSetRequired) -> Answer:
    """Answer a server that cannot run transactions with 503 and what to configure."""
    return failure(503, error.message)


def integrity_answer(error: NotSealedForThisRecord) -> Answer:
    """Answer a record whose sealed value belongs to another record with 500, serving nothing of it."""
    # 500: the fault is in what the database holds, not in the request, and an operator must look (the store
    # logged the collection and the record id). Not 403 or 404, which would tell its rightful doctor it is not
    # theirs or gone (and a frontend would offer to create it again); not 503, since a retry finds the same.
    return failure(500, INTEGRITY_CHECK_FAILED)


def validation_answer(error: ValidationError) -> Answer:
    """Answer a schema refusal with its first fields by name, their messages, and how many more there are."""
    messages: Messages = error.messages if isinstance(error.messages, dict) else {"_body": error.messages}
    named = _first_fields(messages)
    more = len(messages) - len(named)
    text = "Invalid fields: " + ", ".join(_shown(name) for name in named) + (f" and {more} more" if more else "")
    return failure(400, text, details=_details(messages))


def _first_fields(messages: Messages) -> list[str | int]:
    """Return the names of a refusal's first fields, in order."""
    # By str: a list's errors are keyed by index.
    return sorted(messages, key=str)[:NAMED_FIELDS_MAX]


def _details(messages: Messages) -> dict[str, Any]:
    """Return the messages of a refusal's first fields, a nested object's likewise."""
    return {_shown(name): _details(messages[name]) if isinstance(messages[name], dict) else messages[name]
            for name in _first_fields(messages)}


def _shown(name: str | int) -> str:
    """Return a field name as a refusal shows it, cut short if a client sent a long one."""
    text = str(name)
    return text if len(text) <= FIELD_NAME_SHOWN_MAX else text[:FIELD_NAME_SHOWN_MAX] + "..."


def http_answer(error: HTTPException) -> Answer:
    """Answer a routing or protocol error (404, 405, 413, ...), keeping its headers."""
    # Flask hands an HTTPException without a code (a proxy's) back as it is, before any handler sees it.
    assert error.code is not None
    answer = failure(error.code, HTTP_MESSAGES.get(error.code, error.name))
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        answer.headers["Allow"] = ", ".join(error.valid_methods)
    return answer


def database_answer(error: PyMongoError) -> Answer:
    """Answer a database that cannot be reached in time with 503; any other database error is a 500."""
    if isinstance(error, ConnectionFailure) or getattr(error, "timeout", False):
        log.warning("database unavailable (%s)", type(error).__name__)
        return refusal_answer(DatabaseUnavailable())
    return unexpected_answer(error)


def unexpected_answer(error: Exception) -> Answer:
    """Answer anything else with 500, logging only where it happened: exception texts may hold patient data."""
    frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    where = f"{frame.filename}:{frame.lineno}" if frame else "unknown"
    log.error("unexpected %s at %s", type(error).__name__, where)
    return failure(500, "Internal server error")


def sent(answer_of: Callable[[Any], Answer]) -> Callable[[Any], Response]:
    """Return a handler sending what answer_of answers: as an OperationOutcome under /fhir, else in the envelope."""

    def send(error: Any) -> Response:
        answer = answer_of(error)
        return outcome_response(answer) if is_fhir_request() else response(answer)

    return send


def register(app: Flask) -> None:
    """Install the failure handlers on the app."""
    for refusal in REFUSED:
        app.register_error_handler(refusal, sent(refusal_answer))
    app.register_error_handler(InvalidCursor, sent(cursor_answer))
    app.register_error_handler(ReplicaSetRequired, sent(replica_set_answer))
    app.register_error_handler(NotSealedForThisRecord, sent(integrity_answer))
    app.register_error_handler(ValidationError, sent(validation_answer))
    app.register_error_handler(HTTPException, sent(http_answer))
    app.register_error_handler(PyMongoError, sent(database_answer))
    app.register_error_handler(Exception, sent(unexpected_answer))
