"""Read a request strictly: its JSON body, its path ids, its query parameters and its If-Match."""
from typing import Any

from flask import request
from marshmallow import ValidationError
from werkzeug.routing import BaseConverter

from app.http.etags import version_in
from app.http.refusals import IfMatchRequired, InvalidIfMatch, UnsupportedPatchType
from app.service.refusals import InvalidRequest
from app.service.schemas import OBJECT_ID


def refuse_repeated_query_parameters() -> None:
    """Refuse a query parameter given more than once (400), naming it."""
    # A gateway that reads the first `uid` and a service that reads another must never disagree on the doctor.
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise ValidationError({name: ["Given more than once."] for name in repeated})


class PatientIdConverter(BaseConverter):
    """A patient id in the path: any segment but `add_and_link`, which is a route of its own."""

    # Otherwise GET /patients/add_and_link would read a patient, and OPTIONS would advertise a GET there.
    regex = r"(?!add_and_link\Z)[^/]+"


def json_object_body() -> dict[str, Any]:
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


def merge_patch_body() -> dict[str, Any]:
    """Return a JSON Merge Patch body as a dict, refusing other media types (415) and anything but a JSON object."""
    # request.is_json would also take any other `application/*+json`: a merge patch is only these two.
    if request.mimetype not in MERGE_PATCH_TYPES:
        raise UnsupportedPatchType()
    return json_object_body()


def expected_version() -> int:
    """Return the version the request's If-Match names, refusing none (428) and `*`, a list or a weak tag (400)."""
    if_match = request.headers.get("If-Match")
    if if_match is None:
        raise IfMatchRequired()
    version = version_in(if_match)
    if version is None:
        raise InvalidIfMatch()
    return version


def path_id(value: str, name: str) -> str:
    """Return a 24-hex id from the path in lower case, refusing anything else with 400."""
    if not OBJECT_ID.match(value):
        raise InvalidRequest(f"Invalid fields: {name}", details={name: ["Must be a 24-character hexadecimal id."]})
    return value.lower()


def is_blank(value: object) -> bool:
    """Tell whether a value counts as missing: absent, null, or a string of only spaces."""
    return value is None or (isinstance(value, str) and not value.strip())
