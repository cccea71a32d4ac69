"""GET /audit: a doctor's audit trail, newest first, for that doctor or an admin."""
from flask import Blueprint, Response

from app.http.answers import listing, response
from app.http.callers import current_caller, doctor_and_query
from app.http.documented import ListingOf, documented
from app.http.request_work import database
from app.service import schemas, steps
from app.service.refusals import MissingDoctorId, NotAllowedForDoctor

bp = Blueprint("audit", __name__)


@bp.get("/audit")
@documented(
    summary="List a doctor's audit trail, newest first: acts for the doctor, and the doctor's refused attempts to "
            "act for another", tag="audit",
    query=schemas.ListingQuery,
    refusals=(MissingDoctorId, NotAllowedForDoctor),
    responses={200: ListingOf(schemas.AuditRecordSchema), 400: "Invalid query parameters or cursor"},
)
def list_audit() -> Response:
    """Return one page of the audit trail of a doctor, for that doctor or an admin."""
    doctor_id, query = doctor_and_query(current_caller(), schemas.listing_query)
    items, next_cursor = steps.list_audit_trail(database().records(), doctor_id, query)
    return response(listing(schemas.audit_record_view.dump(items, many=True), next_cursor))
