"""The OpenAPI document says what the service does: its uid rule, its headers and the transport-level errors."""
import re

import mongomock
import pytest

from app import create_app
from tests.conftest import bearer, make_config

TRANSPORT_ERRORS = {"400", "413", "414", "431"}


@pytest.fixture(scope="module")
def app():
    return create_app(make_config(MONGO_CLIENT=mongomock.MongoClient(tz_aware=True)))


@pytest.fixture(scope="module")
def document(app):
    return app.test_client().get("/openapi.json").get_json()


def operations(document):
    """Yield (label, operation) for every operation of the document."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def parameter(document, path, method, name):
    """Return the schema of one documented parameter."""
    return next(p["schema"] for p in document["paths"][path][method]["parameters"] if p["name"] == name)


def matches(pattern, text):
    """Match as JSON Schema does, where `$` is the end of the text and never before a final newline."""
    return re.search(pattern.removesuffix("$") + r"\Z", text) is not None


def test_every_operation_documents_the_transport_level_errors(document):
    missing = {label: sorted(TRANSPORT_ERRORS - set(operation["responses"]))
               for label, operation in operations(document)}
    assert {label: statuses for label, statuses in missing.items() if statuses} == {}


def test_every_401_documents_its_bearer_challenge(document):
    unauthorized = document["components"]["responses"]["Unauthorized"]
    challenge = document["components"]["headers"]["BearerChallenge"]

    assert unauthorized["headers"]["WWW-Authenticate"] == {"$ref": "#/components/headers/BearerChallenge"}
    assert challenge["required"] is True
    assert challenge["schema"]["enum"] == ["Bearer", 'Bearer error="invalid_token"']


def test_every_response_documents_cache_control_no_store(document):
    assert document["components"]["headers"]["CacheControl"]["schema"] == {"type": "string", "const": "no-store"}
    for label, operation in operations(document):
        for response in operation["responses"].values():
            if "$ref" not in response and label != "GET /openapi.json":
                assert response["headers"]["Cache-Control"] == {"$ref": "#/components/headers/CacheControl"}


@pytest.mark.parametrize("uid", ["doctor_uid_123", "Xy7aB3cD9eF1gH2iJ4kL5mN6oP7q", "d" * 128, "a!~z", "d" * 129,
                                 "doc tor", "\xa0", "\x1c", "médecin", "doc\n", "doc\x00", "\x7f"])
def test_the_documented_uid_pattern_is_exactly_what_the_service_accepts(app, document, uid):
    schema = parameter(document, "/appointments", "get", "uid")
    documented = matches(schema["pattern"], uid) and len(uid) <= schema["maxLength"]
    response = app.test_client().get("/appointments", query_string={"uid": uid},
                                     headers=bearer("ops", roles=["admin"]))

    assert response.status_code == (200 if documented else 400), response.get_json()


@pytest.mark.parametrize("key", ["k", "link-65f8a1b2c3d4e5f6789012ef", "a b", "~" * 255])
def test_a_documented_idempotency_key_is_one_the_service_accepts(app, document, key):
    schema = parameter(document, "/appointments", "post", "Idempotency-Key")
    response = app.test_client().post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"},
                                      headers={**bearer(), "Idempotency-Key": key})

    assert matches(schema["pattern"], key) and len(key) <= schema["maxLength"]
    assert response.status_code == 201, response.get_json()
    assert not matches(schema["pattern"], " k") and not matches(schema["pattern"], "k\x00")


@pytest.mark.parametrize("cursor", ["1796115600123_6b0827c1a5d7ad9a3eafca5d", "-5_6B0827C1A5D7AD9A3EAFCA5D",
                                    "6b0827c1a5d7ad9a3eafca5d", "_6b0827c1a5d7ad9a3eafca5d", "1_" + "f" * 23,
                                    "6b0827c1a5d7ad9a3eafca5d\n", "1796115600123"])
@pytest.mark.parametrize("path", ["/appointments", "/patients", "/audit", "/patients/{patient_id}/history"])
def test_the_documented_cursor_pattern_is_exactly_what_a_list_accepts(app, document, path, cursor):
    schema = parameter(document, path, "get", "after")
    documented = matches(schema["pattern"], cursor) and len(cursor) <= schema["maxLength"]
    # No such patient: a history reads its cursor first, so a cursor it accepts answers 404.
    accepted = 404 if "{patient_id}" in path else 200
    response = app.test_client().get(path.replace("{patient_id}", "6b0827c1a5d7ad9a3eafca5e"),
                                     query_string={"uid": "doctor_a", "after": cursor}, headers=bearer())

    assert response.status_code == (accepted if documented else 400), response.get_json()
    # A bare id is the cursor of the appointments another program dated otherwise (the second part of a list).
    assert matches(schema["pattern"], "6b0827c1a5d7ad9a3eafca5d")
