"""The audit trail over HTTP: refused write attempts recorded, and GET /audit to read a doctor's trail."""
import logging
from functools import wraps

from flask import Blueprint, g, request
from marshmallow import ValidationError
from pymongo.errors import PyMongoError

from app.http.api_docs import ListingOf, documented
from app.http.web import current_caller, database, doctor_and_query, listing
from app.service import schemas
from app.service.refusals import Refusal
from app.store.errors import KeptWork
from app.store.records import AuditContext, audit_entry

log = logging.getLogger("clinic.audit")
# The ids a refused attempt may be recorded with, from its path or its body.
TARGETS = ("appointment_id", "patient_id")
bp = Blueprint("audit", __name__)


def audited(action):
    """Record a refused attempt at this write; accepted writes are recorded inside their unit of work."""

    def wrap(view):
        @wraps(view)
        def recorded(*args, **kwargs):
            try:
                return view(*args, **kwargs)
            except ValidationError:
                _record_refusal(action, 400, kwargs)
                raise
            except Refusal as refusal:
                # A refusal that keeps its writes (the documented 404) was audited with them.
                if not isinstance(refusal, KeptWork) and refusal.status < 500:
                    _record_refusal(action, refusal.status, kwargs)
                raise

        return recorded

    return wrap


def _record_refusal(action, status, path_ids):
    """Store one audit record for a refused attempt by an authenticated caller, with the well-formed ids it named."""
    caller = g.get("caller")
    if caller is None:
        return  # no verified actor to attribute the attempt to (401)
    context = AuditContext(caller.subject, (request.args.get("uid") or "")[: schemas.UID_MAX], g.request_id)
    body = request.get_json(silent=True)
    named = {name: body.get(name) for name in TARGETS} if isinstance(body, dict) else {}
    named.update((name, value) for name, value in path_ids.items() if name in TARGETS)
    # Ids only: anything else a refused body holds may be a patient's data.
    targets = {name: value.lower() for name, value in named.items()
               if isinstance(value, str) and schemas.OBJECT_ID.match(value)}
    try:
        database().records().add_audit_entry(audit_entry(context, action, status, targets))
    except PyMongoError as error:
        log.error("audit record of a refused %s not stored (%s)", action, type(error).__name__)


@bp.get("/audit")
@documented(
    summary="List the audit records of acts for a doctor, newest first", tag="audit",
    query=schemas.ListingQuery,
    responses={200: ListingOf(schemas.AuditRecordSchema), 400: "Invalid query parameters or cursor",
               403: "Token does not allow acting for this doctor"},
)
def list_audit():
    """Return one page of the audit trail of a doctor, for that doctor or an admin."""
    doctor_id, query = doctor_and_query(current_caller(), schemas.page_query)
    items, next_cursor = database().records().list_audit(doctor_id, query["limit"], after=query.get("after"))
    return listing(schemas.audit_record_view.dump(items, many=True), next_cursor)
