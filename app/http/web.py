"""Helpers every blueprint uses: the caller, the JSON body, the query, the database and the unit of work."""
from flask import current_app, g, request
from marshmallow import ValidationError
from werkzeug.routing import BaseConverter

from app.http.api_docs import is_open_to_all
from app.http.auth import acting_doctor
from app.http.etags import version_in
from app.http.refusals import IfMatchRequired, InvalidIfMatch, NotAuthenticated, UnsupportedPatchType, status_of
from app.service.refusals import AppointmentNotFoundPatientKept, InvalidRequest
from app.service.schemas import OBJECT_ID
from app.service.steps import CREATED, DONE, PATIENT_KEPT

# The status each outcome the steps record in the audit trail was answered with.
AUDITED_OUTCOMES = {CREATED: 201, DONE: 200, PATIENT_KEPT: status_of(AppointmentNotFoundPatientKept)}


def authenticate():
    """Verify the bearer token of a request to any view not open to all (401, or 429 over its rate limit)."""
    view = current_app.view_functions.get(request.endpoint)
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


def current_caller():
    """Return the caller whose token authenticate() verified, refusing a query parameter given twice (400)."""
    refuse_repeated_query_parameters()
    return g.caller


def refuse_repeated_query_parameters():
    """Refuse a query parameter given more than once (400), naming it."""
    # A gateway that reads the first `uid` and a service that reads another must never disagree on the doctor.
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise ValidationError({name: ["Given more than once."] for name in repeated})


def forbid_storing(response):
    """Mark a response as never to be kept by a browser or a proxy cache: it may carry patient data."""
    response.headers["Cache-Control"] = "no-store"
    return response


def forbid_sniffing(response):
    """Mark a response as to be read only as its Content-Type says: a browser must not guess HTML out of JSON."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


class PatientIdConverter(BaseConverter):
    """A patient id in the path: any segment but `add_and_link`, which is a route of its own."""

    # Otherwise GET /patients/add_and_link would read a patient, and OPTIONS would advertise a GET there.
    regex = r"(?!add_and_link\Z)[^/]+"


def database():
    """Return the app's database handle."""
    return current_app.extensions["clinic.db"]


def unit_of_work(caller, doctor_id):
    """Return a unit of work audited as this caller's, for this doctor, holding the request's Idempotency-Key if
    it has one."""
    # The key is claimed here, once every check has passed: a request refused before any work (400, 401, 403)
    # leaves it free for the corrected retry.
    keyed = g.get("keyed_request")
    return database().unit_of_work(caller.subject, doctor_id, g.request_id, outcomes=AUDITED_OUTCOMES,
                                   held_key=None if keyed is None else keyed.claim(doctor_id))


def json_object_body():
    """Return the body as a dict, refusing anything but a JSON object sent as application/json."""
    if not request.is_json:
        raise InvalidRequest("Content-Type must be application/json")
    body = request.get_json(silent=True)
    if body is None:
        # get_json(silent=True) cannot tell malformed JSON from a literal null; both are refused alike.
        raise InvalidRequest("Request body must be a JSON object (malformed JSON or null)")
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return body


MERGE_PATCH_TYPES = ("application/merge-patch+json", "application/json")


def merge_patch_body():
    """Return a JSON Merge Patch body as a dict, refusing other media types (415) and anything but a JSON object."""
    # request.is_json would also take any other `application/*+json`: a merge patch is only these two.
    if request.mimetype not in MERGE_PATCH_TYPES:
        raise UnsupportedPatchType()
    return json_object_body()


def expected_version():
    """Return the version the request's If-Match names, refusing none (428) and `*`, a list or a weak tag (400)."""
    if_match = request.headers.get("If-Match")
    if if_match is None:
        raise IfMatchRequired()
    version = version_in(if_match)
    if version is None:
        raise InvalidIfMatch()
    return version


def doctor_and_query(caller, schema):
    """Return the doctor this request acts for (400/403 first) and its validated query parameters."""
    doctor_id = acting_doctor(caller, request.args.get("uid"))
    return doctor_id, schema.load(request.args.to_dict())


def path_id(value, name):
    """Return a 24-hex id from the path in lower case, refusing anything else with 400."""
    if not OBJECT_ID.match(value):
        raise InvalidRequest(f"Invalid fields: {name}", details={name: ["Must be a 24-character hexadecimal id."]})
    return value.lower()


def is_blank(value):
    """Tell whether a value counts as missing: absent, null, or a string of only spaces."""
    return value is None or (isinstance(value, str) and not value.strip())


