"""CORS for browser frontends: only listed origins, never a wildcard."""
import mongomock
import pytest

from app import create_app
from config import ConfigError
from tests.conftest import bearer, make_config

FRONTEND = "https://clinic.example"


@pytest.fixture
def cors_client():
    return create_app(make_config(MONGO_CLIENT=mongomock.MongoClient(), CORS_ORIGINS=[FRONTEND])).test_client()


def preflight(client, origin):
    """Send the browser's preflight for a POST with a token and a JSON body."""
    return client.options("/patients/add_and_link?uid=doctor_a", headers={
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key, X-Request-ID",
    })


def test_an_allowed_origin_gets_itself_back_and_the_needed_headers(cors_client):
    response = preflight(cors_client, FRONTEND)

    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-request-id"} <= allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("method,path", [
    ("PUT", "/appointments/65f8a1b2c3d4e5f6789012ef/patient?uid=doctor_a"),
    ("DELETE", "/appointments/65f8a1b2c3d4e5f6789012ef/patient?uid=doctor_a"),
    ("PATCH", "/patients/65f8a1b2c3d4e5f6789012cd?uid=doctor_a"),
])
def test_an_allowed_origin_may_put_patch_and_delete_with_if_match(cors_client, method, path):
    response = cors_client.options(path, headers={
        "Origin": FRONTEND,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "Authorization, Content-Type, If-Match",
    })

    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert method in {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "if-match"} <= allowed


def test_an_allowed_origin_can_read_the_etag_and_location_of_an_answer(cors_client):
    response = cors_client.get("/healthz", headers={"Origin": FRONTEND})

    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"X-Request-ID", "Idempotent-Replayed", "ETag", "Location"} <= exposed


def test_another_origin_gets_no_allow_origin(cors_client):
    response = preflight(cors_client, "https://evil.example")

    assert "Access-Control-Allow-Origin" not in response.headers


def test_an_actual_request_from_an_allowed_origin_can_read_the_request_id(cors_client):
    response = cors_client.get("/healthz", headers={"Origin": FRONTEND})

    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]


def test_with_no_origins_configured_nobody_is_allowed():
    client = create_app(make_config(MONGO_CLIENT=mongomock.MongoClient(), CORS_ORIGINS=[])).test_client()

    assert "Access-Control-Allow-Origin" not in preflight(client, FRONTEND).headers


@pytest.mark.parametrize("origin", ["*", "https://*.example", "clinic.example"])
def test_wildcards_and_bare_hosts_are_refused_at_start(origin):
    with pytest.raises(ConfigError, match="CORS_ORIGINS"):
        make_config(CORS_ORIGINS=[origin]).validate()


def preflight_for(client, method, path, origin=FRONTEND):
    """Send the browser's preflight for a request with a token, for any method and path."""
    return client.options(path, headers={
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "Authorization, Content-Type",
    })


@pytest.mark.parametrize("method,path,status,error", [
    ("GET", "/nope", 404, "Not found"),
    ("POST", "/patients/add_and_link/extra?uid=doctor_a", 404, "Not found"),
    ("DELETE", "/healthz", 405, "Method not allowed"),
    ("PUT", "/patients/add_and_link?uid=doctor_a", 405, "Method not allowed"),
])
def test_an_allowed_origin_gets_a_2xx_preflight_then_the_real_answer_in_the_envelope(cors_client, method, path,
                                                                                    status, error):
    ask = preflight_for(cors_client, method, path)

    assert 200 <= ask.status_code < 300
    assert ask.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert method in {m.strip() for m in ask.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"authorization", "content-type"} <= {
        h.strip().lower() for h in ask.headers["Access-Control-Allow-Headers"].split(",")}
    assert ask.headers["Access-Control-Max-Age"] == "600"

    real = cors_client.open(path, method=method, headers={"Origin": FRONTEND, **bearer()})

    assert real.status_code == status
    assert real.get_json() == {"success": False, "error": error}
    assert real.headers["Access-Control-Allow-Origin"] == FRONTEND


@pytest.mark.parametrize("path", ["/nope", "/healthz"])
def test_another_origin_gets_no_cors_headers_on_a_preflight_to_any_path(cors_client, path):
    response = preflight_for(cors_client, "GET", path, origin="https://evil.example")

    assert not [name for name in response.headers.keys() if name.lower().startswith("access-control-")]


def test_an_options_request_that_is_not_a_preflight_still_gets_the_404_envelope(cors_client):
    response = cors_client.options("/nope", headers={"Origin": FRONTEND})

    assert response.status_code == 404
    assert response.get_json() == {"success": False, "error": "Not found"}
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND


def test_with_no_origins_configured_a_preflight_to_an_unknown_path_is_a_plain_404():
    client = create_app(make_config(MONGO_CLIENT=mongomock.MongoClient(), CORS_ORIGINS=[])).test_client()

    response = preflight_for(client, "GET", "/nope")

    assert response.status_code == 404
    assert response.get_json() == {"success": False, "error": "Not found"}
    assert "Access-Control-Allow-Origin" not in response.headers


def vary(response):
    """Return the request headers a response says it depends on, in lower case, over every Vary line."""
    return [name.strip().lower() for line in response.headers.getlist("Vary") for name in line.split(",")]


@pytest.mark.parametrize("origins", [[FRONTEND], [FRONTEND, "https://ops.example"]])
@pytest.mark.parametrize("method, path, status", [
    ("GET", "/healthz", 200),
    ("GET", "/nope", 404),
    ("DELETE", "/healthz", 405),
    ("GET", "/patients?uid=doctor_a", 401),
])
def test_an_answer_with_cors_headers_says_once_that_it_varies_by_origin(origins, method, path, status):
    client = create_app(make_config(MONGO_CLIENT=mongomock.MongoClient(), CORS_ORIGINS=origins)).test_client()

    response = client.open(path, method=method, headers={"Origin": FRONTEND})

    assert response.status_code == status
    assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert vary(response) == ["origin"]


def test_a_preflight_says_that_it_varies_by_origin(cors_client):
    assert vary(preflight(cors_client, FRONTEND)) == ["origin"]


def test_the_answer_another_origin_gets_varies_by_origin_too(cors_client):
    # A cache keeping this answer, without the CORS headers, must not hand it to the frontend.
    response = cors_client.get("/healthz", headers={"Origin": "https://evil.example"})

    assert "Access-Control-Allow-Origin" not in response.headers
    assert vary(response) == ["origin"]
