"""The OpenAPI 3.1 document, generated from the routes' `@documented` operations and the marshmallow schemas."""
import datetime
import re
from http import HTTPStatus
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from flask import Flask
from marshmallow import Schema, fields, validate
from werkzeug.routing import Rule

from app.http.documented import ListingOf, Operation, operation_of
from app.http.error_handlers import HTTP_MESSAGES, INTEGRITY_CHECK_FAILED, NAMED_FIELDS_MAX
from app.http.etags import ENTITY_TAG_PATTERN
from app.http.fhir.outcomes import FHIR_JSON, OPERATION_OUTCOME_SCHEMA
from app.http.refusals import DatabaseUnavailable, TooManyRequests, refused
from app.service.schemas import (
    CONTROL_CHARACTERS,
    FREE_TEXT_CONTROL_CHARACTERS,
    BirthDate,
    ObjectIdString,
    Text,
    latest_birth_date,
)
from app.store.cursors import HEX_ID

EXTENSION_KEY = "clinic.openapi"
OBJECT_ID_PATTERN = f"^{HEX_ID}$"
IGNORED_METHODS = {"HEAD", "OPTIONS"}
# `<converter(args):name>` or `<name>` in a werkzeug rule.
RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
CONVERTER_TYPES = {"int": "integer", "float": "number"}
# What a Text field refuses, stated as what it accepts: any characters but these controls.
WITHOUT_CONTROLS = f"^[^{CONTROL_CHARACTERS.pattern[1:-1]}]*$"
FREE_TEXT_WITHOUT_CONTROLS = f"^[^{FREE_TEXT_CONTROL_CHARACTERS.pattern[1:-1]}]*$"

DESCRIPTION = (
    "Keeps clinics' patient records and links patients to the doctors' appointments. Doctors' web frontends "
    "and ops staff call it with a bearer JWT whose `sub` is the doctor's uid (or whose `roles` holds the admin "
    "role, to act for any doctor). Every success is `{\"success\": true, \"data\": ...}`, every failure the "
    "`Error` envelope `{\"success\": false, \"error\": ...}`, and every response carries an `X-Request-ID` "
    "and `Cache-Control: no-store`. A query parameter given twice, or a JSON body giving a key twice at any "
    "depth, is refused with 400. Under `/fhir` the same records are served read-only as FHIR R4 resources "
    "(`application/fhir+json`), every failure there an `OperationOutcome` (docs/fhir.md)."
)

SHARED_RESPONSES = {
    "Unauthorized": "Missing bearer token, Invalid token or Token expired; `WWW-Authenticate` says which (RFC 6750)",
    "BadRequest": "The request is malformed (its request line, headers, query or JSON) or fails validation "
                  "(`details` names the fields)",
    "PayloadTooLarge": HTTP_MESSAGES[413],
    "BodyTooSlow": f"{HTTP_MESSAGES[408]} (the whole body within BODY_TIMEOUT_S, 10 s by default)",
    # Answered by gunicorn before the service sees the request.
    "UriTooLong": "The request line (method and URL) is too long",
    "HeadersTooLarge": "Request headers too large: too many, one too large, or all together over MAX_HEADER_BYTES "
                       "(32 KiB by default)",
    "InternalError": f"Internal server error | {INTEGRITY_CHECK_FAILED} (a stored value found in a record it does "
                     "not belong to; nothing of it is served)",
    "DatabaseUnavailable": refused(DatabaseUnavailable).message,
    "TooManyRequests": f"{refused(TooManyRequests).message}: this token's subject, or this address without a "
                       "valid token, sent more than its rate limit allows; `Retry-After` says when to try again",
}
# The FHIR view answers the shared failures it raises itself as OperationOutcomes; a request refused before the
# service sees it (by gunicorn's parser, or the body's limits) still gets the envelope, so those say both.
FHIR_SHARED_RESPONSES = {"400": ("FhirBadRequest", "BadRequest", True),
                         "401": ("FhirUnauthorized", "Unauthorized", False),
                         "408": ("FhirBodyTooSlow", "BodyTooSlow", True),
                         "413": ("FhirPayloadTooLarge", "PayloadTooLarge", True),
                         "429": ("FhirTooManyRequests", "TooManyRequests", False),
                         "500": ("FhirInternalError", "InternalError", False),
                         "503": ("FhirDatabaseUnavailable", "DatabaseUnavailable", False)}
HEADER_SCHEMAS = {
    # What the service checks, less the spaces at either end that HTTP itself strips from a header value.
    "Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]([ -~]*[!-~])?$"},
    "If-Match": {"type": "string", "pattern": ENTITY_TAG_PATTERN},
}
REQUIRED_HEADERS = ("If-Match",)
HEADER_DESCRIPTIONS = {
    "Idempotency-Key": "Makes a retry safe: a repeat of the same request with the same key (1 to 255 printable "
                       "ASCII characters) answers the first answer again instead of running twice",
    "X-Request-ID": "Your id for this request (1 to 128 of `A-Za-z0-9._:-`), echoed in the response; "
                    "otherwise one is made up",
    "If-Match": "The patient's `ETag` as last read (e.g. `\"3\"`): the change is made only if the patient is still "
                "at that version, otherwise 412 and nothing changes. Required (428 without it); `*`, a list of tags "
                "or a weak tag answers 400",
}


def build_spec(app: Flask) -> dict[str, Any]:
    """Return the app's OpenAPI document, generated once a day (its latest birth date) and kept in app.extensions."""
    # Two first requests at once may both generate it; they produce the same document, so no lock.
    today = latest_birth_date()
    kept = app.extensions.get(EXTENSION_KEY)
    if kept is None or kept[0] != today:
        app.extensions[EXTENSION_KEY] = kept = (today, generate_spec(app))
    return kept[1]


def generate_spec(app: Flask) -> dict[str, Any]:
    """Generate the OpenAPI document of every documented route of the app."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Clinic patient records",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[plugin],
        info={"description": DESCRIPTION},
    )
    assert plugin.converter is not None  # the spec gave the plugin its converter
    plugin.converter.add_attribute_function(clinic_field_attributes)
    _add_shared_components(spec)
    documented = [(rule, operation) for rule in app.url_map.iter_rules()
                  if (operation := operation_of(app.view_functions.get(rule.endpoint))) is not None]
    for rule, operation in documented:
        spec.path(path=openapi_path(rule.rule), operations=_path_operations(plugin.converter, rule, operation))
    for tag in _tag_order([operation for _, operation in documented]):
        spec.tag({"name": tag})
    document = spec.to_dict()
    return {key: document.pop(key) for key in ("openapi", "info", "tags", "paths")} | document


def openapi_path(rule: str) -> str:
    """Turn a werkzeug rule (`/a/<b>`, `/a/<int:b>`) into an OpenAPI path template (`/a/{b}`)."""
    return RULE_ARGUMENT.sub(lambda match: "{" + match["name"] + "}", rule)


def clinic_field_attributes(self: OpenAPIConverter, field: fields.Field, ret: dict[str, Any],
                            **kwargs: Any) -> dict[str, str]:
    """Document what the service's own field types check in code rather than through validators."""
    attributes: dict[str, str] = {}
    if isinstance(field, ObjectIdString):
        attributes["pattern"] = OBJECT_ID_PATTERN
    if isinstance(field, Text) and "pattern" not in ret:
        free_text = field.forbidden is FREE_TEXT_CONTROL_CHARACTERS
        attributes["pattern"] = FREE_TEXT_WITHOUT_CONTROLS if free_text else WITHOUT_CONTROLS
    if isinstance(field, BirthDate):
        attributes["format"] = "date"
        attributes["pattern"] = dates_up_to(latest_birth_date())
    if any(isinstance(validator, validate.Email) for validator in field.validators):
        attributes["format"] = "email"
    if ret.get("pattern", "").endswith("\\Z"):
        # Python's end-of-string `\Z` means a literal `Z` to the ECMA-262 regexes JSON Schema uses.
        attributes["pattern"] = ret["pattern"][:-2] + "$"
    return attributes


def dates_up_to(last: datetime.date) -> str:
    """Return a pattern of the dates YYYY-MM-DD from 0001-01-01 to last (a year from 2000 on), as BirthDate takes."""
    year, month, day = f"{last:%Y}", f"{last:%m}", f"{last:%d}"
    months, days = "(0[1-9]|1[0-2])", "(0[1-9]|[12][0-9]|3[01])"
    earlier_years = "0[0-9][0-9][1-9]|0[0-9][1-9][0-9]|0[1-9][0-9]{2}|1[0-9]{3}|" + _below(year[1:], "2")
    return (f"^(({earlier_years})-{months}-{days}|{year}-({_below(month)})-{days}"
            f"|{year}-{month}-({_below(day)}|{day}))$")


def _below(digits: str, prefix: str = "") -> str:
    """Return a pattern of the digit strings as long as digits and smaller (with a fixed prefix before them)."""
    choices = [prefix + digits[:i] + (f"[0-{int(digit) - 1}]" if digit != "1" else "0")
               + "[0-9]" * (len(digits) - i - 1)
               for i, digit in enumerate(digits) if digit != "0"]
    return "|".join(choices) or "(?!)"


def _add_shared_components(spec: APISpec) -> None:
    """Register the error envelope, the request id header, the shared responses and the bearer scheme."""
    spec.components.schema("Error", {
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"type": "boolean", "const": False},
            "error": {"type": "string", "description": "What went wrong, in one line"},
            "details": {"type": "object", "description": "For validation failures: each field and its messages, the "
                                                         f"first {NAMED_FIELDS_MAX} by name at each level (`error` "
                                                         "counts the rest)",
                        "examples": [{"firstName": ["Missing data for required field."]}]},
            "data": {"type": "object", "description": "What was kept despite the failure (the documented 404 "
                                                      "of add_and_link: the patient created)"},
        },
    })
    spec.components.header("RequestId", {
        "description": "The request's id: the one sent in `X-Request-ID` if sane, otherwise a new one",
        "schema": {"type": "string"},
    })
    spec.components.header("CacheControl", {
        "description": "Responses may carry patient data: no browser or proxy may keep them",
        "schema": {"type": "string", "const": "no-store"},
    })
    spec.components.header("Location", {
        "description": "Where the record created is read (`/patients/<id>`, `/appointments/<id>`), replays included",
        "required": True,
        "schema": {"type": "string"},
    })
    spec.components.header("ETag", {
        "description": "The patient's version, quoted (`\"3\"`): send it back as `If-Match` to change the patient",
        "required": True,
        "schema": {"type": "string", "pattern": ENTITY_TAG_PATTERN},
    })
    spec.components.header("BearerChallenge", {
        "description": "`Bearer` when no token was sent, `Bearer error=\"invalid_token\"` when the token was refused",
        "required": True,
        "schema": {"type": "string", "enum": ["Bearer", 'Bearer error="invalid_token"']},
    })
    spec.components.header("RetryAfter", {
        "description": "Whole seconds to wait before the window has room for another request",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    })
    spec.components.schema("OperationOutcome", OPERATION_OUTCOME_SCHEMA)
    shared = {name: _error_response(description) for name, description in SHARED_RESPONSES.items()}
    for fhir_name, name, enveloped_too in FHIR_SHARED_RESPONSES.values():
        shared[fhir_name] = _error_response(SHARED_RESPONSES[name], fhir=True)
        if enveloped_too:
            shared[fhir_name]["content"].update(_error_response("")["content"])
    for name, response in shared.items():
        if name.removeprefix("Fhir") == "Unauthorized":
            response["headers"]["WWW-Authenticate"] = _ref("headers", "BearerChallenge")
        if name.removeprefix("Fhir") == "TooManyRequests":
            response["headers"]["Retry-After"] = _ref("headers", "RetryAfter")
        spec.components.response(name, response)
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})


def _tag_order(operations: list[Operation]) -> list[str]:
    """Return the tags in registration order, those with a token-protected operation before the public ones."""
    tags = list(dict.fromkeys(operation.tag for operation in operations))
    public = {tag for tag in tags if all(operation.public for operation in operations if operation.tag == tag)}
    return sorted(tags, key=lambda tag: tag in public)


def _path_operations(converter: OpenAPIConverter, rule: Rule, operation: Operation) -> dict[str, dict[str, Any]]:
    """Return the rule's operations, one per HTTP method it answers."""
    assert rule.methods is not None  # Flask gives every rule the methods it answers
    methods = sorted(method.lower() for method in rule.methods - IGNORED_METHODS)
    operations = {}
    for method in methods:
        # One view serving several methods still needs a distinct operationId for each.
        operation_id = rule.endpoint if len(methods) == 1 else f"{rule.endpoint}_{method}"
        operations[method] = _operation(converter, rule, operation, operation_id)
    return operations


def _operation(converter: OpenAPIConverter, rule: Rule, operation: Operation, operation_id: str) -> dict[str, Any]:
    """Build the OpenAPI operation object of one rule from its Operation."""
    document: dict[str, Any] = {
        "summary": operation.summary,
        "tags": [operation.tag],
        "operationId": operation_id,
    }
    parameters = _parameters(converter, rule, operation)
    if parameters:
        document["parameters"] = parameters
    if operation.body is not None:
        media: dict[str, Any] = {"schema": operation.body}
        if operation.example is not None:
            media["example"] = operation.example
        content = dict.fromkeys(operation.body_types, media)
        document["requestBody"] = {"required": True, "content": content}
    document["responses"] = _responses(operation)
    if not operation.public:
        document["security"] = [{"bearerAuth": []}]
    return document


def _parameters(converter: OpenAPIConverter, rule: Rule, operation: Operation) -> list[dict[str, Any]]:
    """Return the path parameters of the rule, then the query and header parameters of the operation."""
    parameters: list[dict[str, Any]] = []
    for match in RULE_ARGUMENT.finditer(rule.rule):
        name = match["name"]
        schema = {"type": CONVERTER_TYPES.get(match["converter"], "string")}
        if name.endswith("_id"):
            schema["pattern"] = OBJECT_ID_PATTERN
        parameters.append({"in": "path", "name": name, "required": True, "schema": schema})
    if operation.query is not None:
        parameters.extend(converter.schema2parameters(operation.query, location="query"))
    for header in operation.headers:
        # If-Match is the one header a request cannot do without (428); the others are optional.
        parameter = {"in": "header", "name": header, "required": header in REQUIRED_HEADERS,
                     "schema": HEADER_SCHEMAS.get(header, {"type": "string"})}
        if header in HEADER_DESCRIPTIONS:
            parameter["description"] = HEADER_DESCRIPTIONS[header]
        parameters.append(parameter)
    return parameters


def _responses(operation: Operation) -> dict[str, dict[str, Any]]:
    """Return the operation's responses, plus the failures every operation of its kind can answer."""
    # A failure is described by the messages of the refusals it answers (the table's), then by any note beside them.
    failures: dict[int, list[str]] = {}
    for refusal in operation.refusals:
        how = refused(refusal)
        failures.setdefault(how.status, []).append(how.message)
    for status, answer in operation.responses.items():
        if isinstance(answer, str):
            failures.setdefault(status, []).append(answer)
    responses = {str(status): _response(status, answer) for status, answer in operation.responses.items()
                 if not isinstance(answer, str)}
    fhir = operation.media_type == FHIR_JSON
    responses.update((str(status), _error_response(" | ".join(texts), fhir)) for status, texts in failures.items())
    if fhir:
        for fhir_status, (_, _, enveloped_too) in FHIR_SHARED_RESPONSES.items():
            # A FHIR operation's own 400 may still come from gunicorn's parser, in the envelope.
            if enveloped_too and fhir_status in responses:
                responses[fhir_status]["content"].update(_error_response("")["content"])
    for status, headers in operation.response_headers.items():
        for header in headers:
            responses[str(status)]["headers"][header] = _ref("headers", header)
    # Any request can be malformed, too large or too slow before a route sees it, whatever the operation takes.
    shared = {"400": "BadRequest", "408": "BodyTooSlow", "413": "PayloadTooLarge", "414": "UriTooLong",
              "431": "HeadersTooLarge", "500": "InternalError", "503": "DatabaseUnavailable"}
    if not operation.public:
        # Only token routes count requests: the probes and the documents are never limited.
        shared["401"] = "Unauthorized"
        shared["429"] = "TooManyRequests"
    for shared_status, name in shared.items():
        if fhir and shared_status in FHIR_SHARED_RESPONSES:
            name = FHIR_SHARED_RESPONSES[shared_status][0]
        responses.setdefault(shared_status, _ref("responses", name))
    return dict(sorted(responses.items()))


def _response(status: int, answer: type[Schema] | ListingOf | dict[str, Any]) -> dict[str, Any]:
    """Turn one documented success (Schema class, ListingOf or raw object) into a response."""
    if isinstance(answer, dict):
        return answer
    if isinstance(answer, ListingOf):
        return _success_response("A page of results; pass `next` as `after` to get the following one", {
            "type": "object",
            "required": ["success", "data", "next"],
            "properties": {
                "success": {"type": "boolean", "const": True},
                "data": {"type": "array", "items": answer.schema},
                "next": {"type": ["string", "null"], "description": "Cursor of the next page; null on the last"},
            },
        })
    response = _success_response(HTTPStatus(int(status)).phrase, {
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"type": "boolean", "const": True}, "data": answer},
    })
    if int(status) == 201:
        response["headers"]["Location"] = _ref("headers", "Location")
    return response


def _success_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Return a JSON response object whose body has the given (marshmallow-resolved) schema."""
    return {
        "description": description,
        "headers": {"X-Request-ID": _ref("headers", "RequestId"), "Cache-Control": _ref("headers", "CacheControl")},
        "content": {"application/json": {"schema": schema}},
    }


def _error_response(description: str, fhir: bool = False) -> dict[str, Any]:
    """Return a response object in the error envelope (or for the FHIR view, an OperationOutcome), described by when
    it happens."""
    content = ({FHIR_JSON: {"schema": _ref("schemas", "OperationOutcome")}} if fhir
               else {"application/json": {"schema": _ref("schemas", "Error")}})
    return {
        "description": description,
        "headers": {"X-Request-ID": _ref("headers", "RequestId"), "Cache-Control": _ref("headers", "CacheControl")},
        "content": content,
    }


def _ref(section: str, name: str) -> dict[str, str]:
    """Return a reference to a component."""
    return {"$ref": f"#/components/{section}/{name}"}
