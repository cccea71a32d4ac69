"""Helpers every blueprint uses: the caller, the JSON body, the database and the success envelope."""
from flask import current_app, g, jsonify, request
from marshmallow import ValidationError
from werkzeug.routing import BaseConverter

from app.http.auth import acting_doctor
from app.http.etags import version_in
from app.service.refusals import (
    IfMatchRequired,
    InvalidIfMatch,
    InvalidRequest,
    NotAuthenticated,
    UnsupportedPatchType,
)
from app.service.schemas import OBJECT_ID


def current_caller():
    """Verify the request's bearer token once and return its caller (401 otherwise, 429 over its rate limit)."""
    if "caller" in g:
        return g.caller
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


def unit_of_work(caller, doctor_id, answer):
    """Return a unit of work audited as this caller's, for this doctor; answer(result) is the success response."""
    # A request sent with an Idempotency-Key claims its key here, once every check has passed, and the unit
    # of work stores its answer together with its writes.
    work = database().unit_of_work(caller.subject, doctor_id, g.request_id)
    keyed = g.get("keyed_request")
    if keyed is not None:
        work.answer = keyed.claim(doctor_id, answer)
    return work


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


def success(data, status=200):
    """Build a success response in the envelope."""
    return jsonify({"success": True, "data": data}), status


def created(data, location):
    """Build a 201 response in the envelope, with the Location where the created record is read."""
    response, status = success(data, 201)
    response.headers["Location"] = location
    return response, status


def listing(items, next_cursor):
    """Build a success response holding one page of a list and the cursor of the next."""
    return jsonify({"success": True, "data": items, "next": next_cursor}), 200
