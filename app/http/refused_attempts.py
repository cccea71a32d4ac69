"""Refused attempts in the audit trail (writes, and the FHIR view's reads): accepted ones are recorded inside their own
unit of work."""
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import g, request
from marshmallow import ValidationError
from pymongo.errors import PyMongoError

from app.http.auth import Caller
from app.http.refusals import is_refusal, status_of
from app.http.request_input import is_blank
from app.http.request_work import database
from app.service import schemas
from app.store.exceptions import ReplicaSetRequired

log = logging.getLogger("clinic.audit")
# The ids a refused attempt may be recorded with, from its path or its body.
# Its outcome, recorded as the status the attempt was answered with.
REFUSED = "refused"
TARGETS = ("appointment_id", "patient_id")
# A write view's parameters (its path ids) and what it answers, passed through as they came.
ViewParameters = ParamSpec("ViewParameters")
Answered = TypeVar("Answered")


def audited(action: str) -> Callable[[Callable[ViewParameters, Answered]], Callable[ViewParameters, Answered]]:
    """Record a refused attempt at this write or audited read; accepted ones are recorded inside their unit of work."""

    def wrap(view: Callable[ViewParameters, Answered]) -> Callable[ViewParameters, Answered]:
        @wraps(view)
        def recorded(*args: ViewParameters.args, **kwargs: ViewParameters.kwargs) -> Answered:
            try:
                return view(*args, **kwargs)
            except ValidationError:
                _record_refusal(action, 400, kwargs)
                raise
            except Exception as error:
                if is_refusal(error) and status_of(error) < 500:
                    _record_refusal(action, status_of(error), kwargs)
                raise

        return recorded

    return wrap


def _record_refusal(action: str, status: int, path_ids: dict[str, Any]) -> None:
    """Store one audit record for a refused attempt by an authenticated caller, with the well-formed ids it named."""
    caller = g.get("caller")
    if caller is None:
        return  # no verified actor to attribute the attempt to (401)
    uid = request.args.get("uid")
    if uid is None or is_blank(uid):
        uid = None  # the documented "Missing doctor_id (uid)": an attempt that named no doctor
    elif not schemas.DOCTOR_UID.match(uid):
        return  # a uid no token could carry names no doctor: refused with 400, it leaves nothing, not even this
    doctor_id, named_doctor = _trail_of(caller, uid)
    body = request.get_json(silent=True)
    named = {name: body.get(name) for name in TARGETS} if isinstance(body, dict) else {}
    named.update((name, value) for name, value in path_ids.items() if name in TARGETS)
    # Ids only: anything else a refused body holds may be a patient's data.
    targets = {name: value.lower() for name, value in named.items()
               if isinstance(value, str) and schemas.OBJECT_ID.match(value)}
    try:
        # Through a unit of work like every other write: the same write concern, deadline and transient retries.
        work = database().unit_of_work(caller.subject, doctor_id, g.request_id, named_doctor,
                                       outcomes={REFUSED: status})
        work.run(lambda records: records.audit((action, REFUSED, targets)))
    except (PyMongoError, ReplicaSetRequired) as error:
        # The refusal still goes out; only its record is missing, and the log says so without any value.
        log.error("audit record of a refused %s not stored (%s)", action, type(error).__name__)


def _trail_of(caller: Caller, uid: str | None) -> tuple[str, str | None]:
    """Return whose trail a refused attempt goes in, and the uid it named when that trail is not the named one's."""
    # A trail is evidence: only that doctor, or an admin acting for them, writes into it. Any other attempt goes in
    # its caller's own trail (A sees what A tried), naming the doctor it tried to act for.
    if uid is not None and caller.may_act_for(uid):
        return uid, None
    return caller.subject, uid
