"""Headers every answer carries, and redirects that never name the Host a client sent."""
import mongomock
import pytest

from app import create_app
from tests.conftest import bearer, make_config

FORGED_HOST = "evil.example"


@pytest.fixture
def client():
    return create_app(make_config(MONGO_CLIENT=mongomock.MongoClient())).test_client()


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("GET", "/healthz", {}, 200),
    ("GET", "/nowhere", {}, 404),
    ("DELETE", "/healthz", {}, 405),
    ("GET", "/patients?uid=doctor_a", {}, 401),
    ("GET", "/patients?uid=doctor_a&uid=doctor_b", {"headers": bearer()}, 400),
    ("POST", "/patients/add_and_link?uid=doctor_a", {"headers": bearer(), "data": b"x" * (65 * 1024),
                                                     "content_type": "application/json"}, 413),
    ("GET", "/docs", {}, 308),
    ("GET", "/docs/", {}, 200),
    ("GET", "/openapi.json", {}, 200),
])
def test_every_answer_tells_the_browser_to_read_it_only_as_its_content_type(client, method, path, kwargs, status):
    response = client.open(path, method=method, **kwargs)

    assert response.status_code == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_docs_redirect_names_a_path_never_the_host_the_request_named(client):
    response = client.get("/docs", headers={"Host": FORGED_HOST})

    assert response.status_code == 308
    assert response.headers["Location"] == "/docs/"
    assert FORGED_HOST not in response.get_data(as_text=True)


def test_a_redirect_to_merged_slashes_keeps_the_query_and_names_no_host(client):
    response = client.get("/appointments//65f8a1b2c3d4e5f6789012ef?uid=doctor_a", headers={"Host": FORGED_HOST})

    assert response.status_code == 308
    assert response.headers["Location"] == "/appointments/65f8a1b2c3d4e5f6789012ef?uid=doctor_a"
