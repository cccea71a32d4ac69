"""Who is calling: the bearer token verified before any view runs, and the doctor a request acts for."""
from typing import Any

from flask import current_app, g, request
from marshmallow import Schema

from app.http.auth import Caller, acting_doctor
from app.http.documented import is_open_to_all
from app.http.refusals import NotAuthenticated
from app.http.request_input import refuse_repeated_query_parameters


def authenticate() -> None:
    """Verify the bearer token of a request to any view not open to all (401, or 429 over its rate limit)."""
    view = None if request.endpoint is None else current_app.view_functions.get(request.endpoint)
    # No view (404, 405) and preflights answer as they would without a token; so do the health and docs routes.
    if view is None or request.method == "OPTIONS" or is_open_to_all(view):
        return
    # The limit is checked once the token is: a signature costs microseconds and no I/O, the count a round trip, and
    # only a verified subject can be counted as itself. Both come before the body is read.
    rate_limits = current_app.extensions["clinic.rate_limits"]
    try:
        caller = current_app.extensions["clinic.tokens"].verify(request.headers.get("Authorization"))
    except NotAuthenticated:
        rate_limits.admit_address(request.remote_addr)
        raise
    rate_limits.admit_subject(caller.subject)
    # Set only once admitted: a request refused for its rate has no caller, so it leaves no audit record behind.
    g.caller = caller


def current_caller() -> Caller:
    """Return the caller whose token authenticate() verified, refusing a query parameter given twice (400)."""
    refuse_repeated_query_parameters()
    return g.caller


def doctor_and_query(caller: Caller, schema: Schema) -> tuple[str, dict[str, Any]]:
    """Return the doctor this request acts for (400/403 first) and its validated query parameters."""
    doctor_id = acting_doctor(caller, request.args.get("uid"))
    return doctor_id, schema.load(request.args.to_dict())
