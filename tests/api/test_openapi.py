"""The OpenAPI document at /openapi.json and Swagger UI at /docs; neither needs a database."""
import base64
import hashlib
import re

import mongomock
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from app import create_app
from app.http.openapi import build_spec
from tests.conftest import make_config

# Routes the app answers that are not API operations, so the document leaves them out.
NOT_OPERATIONS = {
    "static": "Flask's static files (the service has none)",
    "swagger_ui.page": "the Swagger UI page at /docs/",
    "swagger_ui.asset": "the page's JavaScript, CSS and icons under /docs/",
}
IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture(scope="module")
def app():
    """The service over an empty mongomock database, which the docs never touch."""
    return create_app(make_config(MONGO_CLIENT=mongomock.MongoClient()))


@pytest.fixture(scope="module")
def document(app):
    """The OpenAPI document as a client downloads it."""
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def resolve(document, node):
    """Follow local `$ref`s from a node to the object they name."""
    while "$ref" in node:
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def assert_matches(document, schema, body):
    """Assert that a body matches a schema of the document, its `$ref`s resolved within the document."""
    OAS31Validator({**schema, "components": document["components"]}).validate(body)


def operations(document):
    """Yield (path, method, operation) for every operation of the document."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_openapi_json_is_a_valid_openapi_3_1_document(document):
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "Clinic patient records"
    assert document["info"]["version"] == "1.0.0"
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_route_the_app_answers_is_documented_with_each_of_its_methods(app, document):
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NOT_OPERATIONS:
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - IGNORED_METHODS):
            if method.lower() not in document["paths"].get(path, {}):
                missing.append(f"{method} {rule.rule} ({rule.endpoint}: add @documented)")

    assert missing == []


def test_routes_left_out_of_the_document_are_only_the_static_and_swagger_ui_ones(app):
    undocumented = {rule.endpoint for rule in app.url_map.iter_rules()
                    if not hasattr(app.view_functions[rule.endpoint], "openapi")}

    assert undocumented == set(NOT_OPERATIONS)


def test_add_and_link_documents_its_example_body_and_its_refusals(document):
    operation = document["paths"]["/patients/add_and_link"]["post"]
    media = operation["requestBody"]["content"]["application/json"]

    assert operation["requestBody"]["required"] is True
    assert resolve(document, media["schema"]) is document["components"]["schemas"]["AddAndLink"]
    assert media["example"]["firstName"] == "Jane"
    assert media["example"]["contact"] == {"phone": "+1234567892", "email": "jane.smith@example.com"}
    assert {"400", "401", "403", "404", "409", "413", "500", "503"} <= set(operation["responses"])
    assert [parameter["name"] for parameter in operation["parameters"] if parameter["in"] == "query"] == ["uid"]


# Failures a request to the FHIR view can get before the service sees it (gunicorn's parser, the body's limits): the
# envelope, beside the OperationOutcome the view answers itself.
ANSWERED_BEFORE_THE_SERVICE = {"400", "408", "413", "414", "431"}


def test_every_failure_is_the_shared_error_envelope_or_under_fhir_an_operation_outcome(document):
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["success", "error"]
    assert set(error["properties"]) == {"success", "error", "details", "data"}
    envelope = {"schema": {"$ref": "#/components/schemas/Error"}}
    outcome = {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            content = resolve(document, response)["content"]
            if not path.startswith("/fhir/"):
                assert content == {"application/json": envelope}, (method, path, status)
            elif status in ("414", "431"):
                assert content == {"application/json": envelope}, (method, path, status)
            else:
                expected = {"application/fhir+json": outcome}
                if status in ANSWERED_BEFORE_THE_SERVICE:
                    expected["application/json"] = envelope
                assert content == expected, (method, path, status)


def test_the_fhir_operations_answer_fhir_json(document):
    fhir = [(path, method, operation) for path, method, operation in operations(document) if path.startswith("/fhir/")]

    assert sorted((path, method) for path, method, _ in fhir) == [
        ("/fhir/Appointment", "get"), ("/fhir/Appointment/{appointment_id}", "get"), ("/fhir/Patient", "get"),
        ("/fhir/Patient/{patient_id}", "get"), ("/fhir/Patient/{patient_id}/_history", "get"),
        ("/fhir/Patient/{patient_id}/_history/{version}", "get"), ("/fhir/metadata", "get")]
    for path, _, operation in fhir:
        assert list(operation["responses"]["200"]["content"]) == ["application/fhir+json"], path
    search = {parameter["name"]: parameter for parameter in document["paths"]["/fhir/Appointment"]["get"]["parameters"]}
    assert search["date"]["schema"]["type"] == "array" and search["date"]["explode"] is True
    assert {"uid", "_format", "_count", "_total", "after", "patient", "date"} == set(search)


def test_every_response_documents_its_request_id_header(document):
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            headers = resolve(document, response)["headers"]
            assert headers["X-Request-ID"] == {"$ref": "#/components/headers/RequestId"}, (method, path, status)


def test_documented_examples_are_accepted_by_the_schemas_that_validate_requests(app):
    examples = [view.openapi for view in app.view_functions.values()
                if getattr(view, "openapi", None) is not None and view.openapi.example is not None]

    assert examples, "add_and_link at least documents an example"
    for operation in examples:
        operation.body().load(operation.example)


def test_dump_only_fields_are_read_only_and_never_required_in_a_request(document):
    schemas = document["components"]["schemas"]
    for name in ("Patient", "AddAndLink"):
        assert schemas[name]["properties"]["_id"]["readOnly"] is True
        assert schemas[name]["properties"]["doctor_id"]["readOnly"] is True
        assert "_id" not in schemas[name]["required"] and "doctor_id" not in schemas[name]["required"]
    add_and_link = schemas["AddAndLink"]
    assert add_and_link["properties"]["appointment_id"]["writeOnly"] is True
    assert add_and_link["properties"]["appointment_id"]["pattern"] == "^[0-9a-fA-F]{24}$"
    assert add_and_link["required"] == ["appointment_id", "firstName", "lastName"]
    assert add_and_link["properties"]["address"] == {"$ref": "#/components/schemas/Address"}


def test_path_ids_are_documented_as_24_hex_strings(document):
    parameters = document["paths"]["/appointments/{appointment_id}"]["get"]["parameters"]

    assert parameters[0] == {"in": "path", "name": "appointment_id", "required": True,
                             "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{24}$"}}


def test_lists_document_a_page_of_items_and_the_next_cursor(document):
    response = document["paths"]["/patients"]["get"]["responses"]["200"]
    schema = response["content"]["application/json"]["schema"]

    assert schema["properties"]["data"] == {"type": "array", "items": {"$ref": "#/components/schemas/Patient"}}
    assert schema["properties"]["next"]["type"] == ["string", "null"]


def test_bearer_scheme_protects_every_operation_but_the_public_ones(document):
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert "security" not in document
    public = {(path, method) for path, method, operation in operations(document) if "security" not in operation}
    assert public == {("/healthz", "get"), ("/readyz", "get"), ("/openapi.json", "get"), ("/fhir/metadata", "get")}
    for path, method, operation in operations(document):
        if (path, method) not in public:
            assert operation["security"] == [{"bearerAuth": []}], (method, path)
            assert "401" in operation["responses"], (method, path)


def test_real_answers_match_their_documented_schemas(app, client, document):
    healthz = client.get("/healthz")
    unauthorized = client.get("/patients?uid=doctor_a")

    documented_healthz = document["paths"]["/healthz"]["get"]["responses"]["200"]
    documented_401 = resolve(document, document["paths"]["/patients"]["get"]["responses"]["401"])
    assert_matches(document, documented_healthz["content"]["application/json"]["schema"], healthz.get_json())
    assert unauthorized.status_code == 401
    assert_matches(document, documented_401["content"]["application/json"]["schema"], unauthorized.get_json())
    assert healthz.headers["X-Request-ID"]


def test_the_document_is_built_once_per_app(app):
    assert build_spec(app) is build_spec(app)


def test_docs_page_is_swagger_ui_served_from_local_assets(client):
    response = client.get("/docs", follow_redirects=True)
    html = response.get_data(as_text=True)

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert re.findall(r'src="([^"]+)"', html) == ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui-standalone-preset.js",
                                                  "/docs/swagger-initializer.js"]
    # No absolute URL at all: nothing is fetched from elsewhere, and no host is named.
    assert re.findall(r"https?://", html) == []
    with client.get("/docs/swagger-initializer.js") as initializer:
        script = initializer.get_data(as_text=True)
    assert 'url: "/openapi.json"' in script
    assert "validatorUrl: null" in script


def test_docs_page_never_names_the_host_the_request_named(client):
    response = client.get("/docs/", headers={"Host": "evil.example"})

    assert response.status_code == 200
    assert "evil.example" not in response.get_data(as_text=True)


def test_docs_page_runs_only_the_services_own_files_and_no_inline_script(client):
    response = client.get("/docs/")
    html = response.get_data(as_text=True)

    directives = response.headers["Content-Security-Policy"].split(";")
    policy = dict(directive.strip().split(" ", 1) for directive in directives)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"].split()[0] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    # Every script is a file the service serves: an inline one would be refused by the policy above.
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", html))
    assert "<style" not in html and " style=" not in html
    for path in re.findall(r'(?:src|href)="([^"]+)"', html):
        with client.get(path) as asset:
            assert asset.status_code == 200, path


def test_the_one_inline_style_the_docs_page_allows_is_the_swagger_logo_it_serves(client):
    # A new swagger-ui whose logo style changed would be refused by the policy: this says which hash to change.
    logo_style = ".logo_small_svg__cls-2{fill:#fff}.logo_small_svg__cls-3{fill:#85ea2d}"
    with client.get("/docs/swagger-ui-standalone-preset.js") as preset:
        assert f'createElement("style",null,"{logo_style}")' in preset.get_data(as_text=True)

    policy = client.get("/docs/").headers["Content-Security-Policy"]
    style_src = next(directive.split()[1:] for directive in policy.split(";") if directive.split()[0] == "style-src")
    digest = base64.b64encode(hashlib.sha256(logo_style.encode()).digest()).decode()
    assert style_src == ["'self'", f"'sha256-{digest}'"]


@pytest.mark.parametrize("asset", ["swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css",
                                   "index.css"])
def test_swagger_ui_assets_are_served_by_the_service(client, asset):
    # A file response holds the file open until it is closed.
    with client.get(f"/docs/{asset}") as response:
        assert response.status_code == 200
        assert response.data


def test_an_unknown_docs_asset_is_a_json_404(client):
    response = client.get("/docs/nothing-here.js")

    assert response.status_code == 404
    assert response.get_json() == {"success": False, "error": "Not found"}


def test_every_token_operation_documents_its_429_with_retry_after_and_no_public_one_does(document):
    for path, method, operation in operations(document):
        assert ("429" in operation["responses"]) == ("security" in operation), (method, path)
    too_many = document["components"]["responses"]["TooManyRequests"]
    assert too_many["headers"]["Retry-After"] == {"$ref": "#/components/headers/RetryAfter"}
    assert document["components"]["headers"]["RetryAfter"]["required"] is True


def test_a_real_429_matches_its_documented_schema(document):
    limited = create_app(make_config(MONGO_CLIENT=mongomock.MongoClient(), RATE_LIMIT=True,
                                     RATE_LIMIT_PER_ADDRESS="1/minute", RATE_LIMIT_STORAGE_URI="memory://"))
    client = limited.test_client()
    client.get("/patients?uid=doctor_a")

    refused = client.get("/patients?uid=doctor_a")

    documented = resolve(document, document["paths"]["/patients"]["get"]["responses"]["429"])
    retry_after = resolve(document, documented["headers"]["Retry-After"])
    assert refused.status_code == 429
    assert_matches(document, documented["content"]["application/json"]["schema"], refused.get_json())
    assert_matches(document, retry_after["schema"], int(refused.headers["Retry-After"]))
