"""The OpenAPI 3.1 document, generated from the routes' `@documented` operations and the marshmallow schemas."""
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import validate

from app.api_docs import PageOf
from app.errors import HTTP_MESSAGES
from app.exceptions import DatabaseUnavailable
from app.schemas import BirthDate, ObjectIdString

EXTENSION_KEY = "clinic.openapi"
OBJECT_ID_PATTERN = "^[0-9a-fA-F]{24}$"
IGNORED_METHODS = {"HEAD", "OPTIONS"}
# `<converter(args):name>` or `<name>` in a werkzeug rule.
RULE_ARGUMENT = re.compile(r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
CONVERTER_TYPES = {"int": "integer", "float": "number"}

DESCRIPTION = (
    "Keeps clinics' patient records and links patients to the doctors' appointments. Doctors' web frontends "
    "and ops staff call it with a bearer JWT whose `sub` is the doctor's uid (or whose `roles` holds the admin "
    "role, to act for any doctor). Every success is `{\"success\": true, \"data\": ...}`, every failure the "
    "`Error` envelope `{\"success\": false, \"error\": ...}`, and every response carries an `X-Request-ID`."
)

ERROR = {"$ref": "#/components/schemas/Error"}
REQUEST_ID = {"$ref": "#/components/headers/RequestId"}
UNAUTHORIZED = {"$ref": "#/components/responses/Unauthorized"}
SHARED_RESPONSES = {
    "Unauthorized": "Missing bearer token, Invalid token or Token expired",
    "BadRequest": "The body is not a JSON object, or fails validation (`details` names the fields)",
    "PayloadTooLarge": HTTP_MESSAGES[413],
    "InternalError": "Internal server error",
    "DatabaseUnavailable": DatabaseUnavailable.message,
}
HEADER_DESCRIPTIONS = {
    "X-Request-ID": "Your id for this request (1 to 128 of `A-Za-z0-9._:-`), echoed in the response; "
                    "otherwise one is made up",
}


def build_spec(app):
    """Return the app's OpenAPI document, generated on the first call and kept in app.extensions."""
    # Two first requests at once may both generate it; they produce the same document, so no lock.
    if EXTENSION_KEY not in app.extensions:
        app.extensions[EXTENSION_KEY] = generate_spec(app)
    return app.extensions[EXTENSION_KEY]


def generate_spec(app):
    """Generate the OpenAPI document of every documented route of the app."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Clinic patient records",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[plugin],
        info={"description": DESCRIPTION},
    )
    plugin.converter.add_attribute_function(clinic_field_attributes)
    _add_shared_components(spec)
    tags = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        operation = getattr(app.view_functions.get(rule.endpoint), "openapi", None)
        if operation is None:
            continue
        if operation.tag not in tags:
            tags.append(operation.tag)
        methods = sorted(method.lower() for method in rule.methods - IGNORED_METHODS)
        document = _operation(plugin.converter, rule, operation)
        spec.path(path=openapi_path(rule.rule), operations={method: document for method in methods})
    for tag in tags:
        spec.tag({"name": tag})
    return spec.to_dict()


def openapi_path(rule):
    """Turn a werkzeug rule (`/a/<b>`, `/a/<int:b>`) into an OpenAPI path template (`/a/{b}`)."""
    return RULE_ARGUMENT.sub(lambda match: "{" + match["name"] + "}", rule)


def clinic_field_attributes(self, field, ret, **kwargs):
    """Document what the service's own field types check in code rather than through validators."""
    attributes = {}
    if isinstance(field, ObjectIdString):
        attributes["pattern"] = OBJECT_ID_PATTERN
    if isinstance(field, BirthDate):
        attributes["format"] = "date"
    if any(isinstance(validator, validate.Email) for validator in field.validators):
        attributes["format"] = "email"
    if ret.get("pattern", "").endswith("\\Z"):
        # Python's end-of-string `\Z` means a literal `Z` to the ECMA-262 regexes JSON Schema uses.
        attributes["pattern"] = ret["pattern"][:-2] + "$"
    return attributes


def _add_shared_components(spec):
    """Register the error envelope, the request id header, the shared responses and the bearer scheme."""
    spec.components.schema("Error", {
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"type": "boolean", "const": False},
            "error": {"type": "string", "description": "What went wrong, in one line"},
            "details": {"type": "object", "description": "For validation failures: each field and its messages",
                        "additionalProperties": {}},
            "data": {"type": "object", "description": "What was kept despite the failure (the documented 404 "
                                                      "of add_and_link: the patient created)"},
        },
    })
    spec.components.header("RequestId", {
        "description": "The request's id: the one sent in `X-Request-ID` if sane, otherwise a new one",
        "schema": {"type": "string"},
    })
    for name, description in SHARED_RESPONSES.items():
        spec.components.response(name, _error_response(description))
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})


def _operation(converter, rule, operation):
    """Build the OpenAPI operation object of one rule from its Operation."""
    document = {
        "summary": operation.summary,
        "tags": [operation.tag],
        "operationId": rule.endpoint.replace(".", "_"),
        "parameters": _parameters(converter, rule, operation),
        "responses": _responses(operation),
    }
    if operation.body is not None:
        media = {"schema": operation.body}
        if operation.example is not None:
            media["example"] = operation.example
        document["requestBody"] = {"required": True, "content": {"application/json": media}}
    if not operation.public:
        document["security"] = [{"bearerAuth": []}]
    if not document["parameters"]:
        del document["parameters"]
    return document


def _parameters(converter, rule, operation):
    """Return the path parameters of the rule, then the query and header parameters of the operation."""
    parameters = []
    for match in RULE_ARGUMENT.finditer(rule.rule):
        name = match["name"]
        schema = {"type": CONVERTER_TYPES.get(match["converter"], "string")}
        if name.endswith("_id"):
            schema["pattern"] = OBJECT_ID_PATTERN
        parameters.append({"in": "path", "name": name, "required": True, "schema": schema})
    if operation.query is not None:
        parameters.extend(converter.schema2parameters(operation.query, location="query"))
    for header in operation.headers:
        parameter = {"in": "header", "name": header, "required": False, "schema": {"type": "string"}}
        if header in HEADER_DESCRIPTIONS:
            parameter["description"] = HEADER_DESCRIPTIONS[header]
        parameters.append(parameter)
    return parameters


def _responses(operation):
    """Return the operation's responses, plus the failures every operation of its kind can answer."""
    responses = {str(status): _response(answer) for status, answer in operation.responses.items()}
    shared = {"500": "InternalError", "503": "DatabaseUnavailable"}
    if not operation.public:
        shared["401"] = "Unauthorized"
    if operation.body is not None:
        shared.update({"400": "BadRequest", "413": "PayloadTooLarge"})
    for status, name in shared.items():
        responses.setdefault(status, {"$ref": f"#/components/responses/{name}"})
    return dict(sorted(responses.items()))


def _response(answer):
    """Turn one documented answer (Schema class, PageOf, description of a failure or raw object) into a response."""
    if isinstance(answer, str):
        return _error_response(answer)
    if isinstance(answer, dict):
        return answer
    if isinstance(answer, PageOf):
        return _success_response("A page of results; pass `next` as `after` to get the following one", {
            "type": "object",
            "required": ["success", "data", "next"],
            "properties": {
                "success": {"type": "boolean", "const": True},
                "data": {"type": "array", "items": answer.schema},
                "next": {"type": ["string", "null"], "description": "Cursor of the next page; null on the last"},
            },
        })
    return _success_response("Success", {
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"type": "boolean", "const": True}, "data": answer},
    })


def _success_response(description, schema):
    """Return a JSON response object whose body has the given (marshmallow-resolved) schema."""
    return {
        "description": description,
        "headers": {"X-Request-ID": REQUEST_ID},
        "content": {"application/json": {"schema": schema}},
    }


def _error_response(description):
    """Return a response object in the error envelope, described by when it happens."""
    return {
        "description": description,
        "headers": {"X-Request-ID": REQUEST_ID},
        "content": {"application/json": {"schema": ERROR}},
    }
