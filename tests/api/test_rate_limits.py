"""Floods are refused per token subject, and per client address without a valid token; the rest is answered."""
import pymongo
import pytest

from app import create_app
from config import Config
from tests.conftest import CommandsStarted, bearer, jane, make_config

FRONTEND = "https://frontend.example"
RATE_LIMIT_SETTINGS = ("RATE_LIMIT", "RATE_LIMIT_PER_SUBJECT", "RATE_LIMIT_PER_ADDRESS", "RATE_LIMIT_STORAGE_URI")


def limited_app(mongo, backend, **settings):
    """Return the service with its rate limits on, counted in the test's own database (mongomock: in memory)."""
    client, name = mongo
    # mongomock cannot run the moving window's update (a condition on the array's n-th entry): it counts in memory.
    storage = "memory://" if backend == "mongomock" else None
    settings = {"RATE_LIMIT": True, "RATE_LIMIT_STORAGE_URI": storage, **settings}
    return create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name, **settings))


def assert_too_many_requests(response, window_seconds):
    """Check a 429 in the envelope with a Retry-After of whole seconds within the window."""
    assert response.status_code == 429
    assert response.get_json() == {"success": False, "error": "Too many requests"}
    assert response.headers["Retry-After"].isdigit()
    assert 1 <= int(response.headers["Retry-After"]) <= window_seconds


def test_a_burst_from_one_subject_is_refused_with_retry_after_while_a_calm_subject_is_answered(mongo, backend):
    client = limited_app(mongo, backend, RATE_LIMIT_PER_SUBJECT="3/minute").test_client()

    burst = [client.get("/appointments?uid=doctor_a", headers=bearer("doctor_a")).status_code for _ in range(3)]
    refused = client.get("/appointments?uid=doctor_a", headers=bearer("doctor_a"))
    calm = [client.get("/appointments?uid=doctor_b", headers=bearer("doctor_b")).status_code for _ in range(3)]

    assert burst == [200, 200, 200]
    assert_too_many_requests(refused, 60)
    assert calm == [200, 200, 200]


def test_an_admin_flood_counts_against_its_own_subject_not_the_doctor_it_acts_for(mongo, backend):
    client = limited_app(mongo, backend, RATE_LIMIT_PER_SUBJECT="2/minute").test_client()
    admin = bearer("ops_1", roles=["admin"])

    flood = [client.get("/appointments?uid=doctor_a", headers=admin).status_code for _ in range(3)]
    doctor = client.get("/appointments?uid=doctor_a", headers=bearer("doctor_a"))

    assert flood == [200, 200, 429]
    assert doctor.status_code == 200


def test_a_refused_flood_of_add_and_link_keeps_no_patient_and_writes_no_audit_record(mongo, backend, db):
    client = limited_app(mongo, backend, RATE_LIMIT_PER_SUBJECT="2/minute").test_client()
    missing_appointment = "65f8a1b2c3d4e5f6789012ef"

    # The documented 404 keeps its patient: within the limit each one is stored, past it none is.
    statuses = [client.post("/patients/add_and_link?uid=doctor_a", json=jane(missing_appointment),
                            headers=bearer("doctor_a")).status_code for _ in range(6)]

    assert statuses == [404, 404, 429, 429, 429, 429]
    assert db.patients.count_documents({}) == 2
    assert db.audit.count_documents({"outcome": 429}) == 0


def test_a_flood_with_an_idempotency_key_counts_each_request_once(mongo, backend):
    client = limited_app(mongo, backend, RATE_LIMIT_PER_SUBJECT="2/minute").test_client()
    headers = {**bearer("doctor_a"), "Idempotency-Key": "link-once"}
    missing_appointment = "65f8a1b2c3d4e5f6789012ef"

    statuses = [client.post("/patients/add_and_link?uid=doctor_a", json=jane(missing_appointment),
                            headers=headers).status_code for _ in range(3)]

    # The first answer, then its replay; the third request is the one over the limit.
    assert statuses == [404, 404, 429]


def test_requests_without_a_valid_token_are_limited_per_address(mongo, backend):
    client = limited_app(mongo, backend, RATE_LIMIT_PER_ADDRESS="2/minute").test_client()
    flooder = {"REMOTE_ADDR": "127.0.0.2"}

    no_token = client.get("/appointments?uid=doctor_a", environ_base=flooder)
    bad_token = client.get("/appointments?uid=doctor_a", headers={"Authorization": "Bearer not.a.token"},
                           environ_base=flooder)
    refused = client.post("/patients/add_and_link?uid=doctor_a", json=jane("65f8a1b2c3d4e5f6789012ef"),
                          environ_base=flooder)
    elsewhere = client.get("/appointments?uid=doctor_a", environ_base={"REMOTE_ADDR": "127.0.0.3"})
    with_a_token = client.get("/appointments?uid=doctor_a", headers=bearer("doctor_a"), environ_base=flooder)

    assert (no_token.status_code, bad_token.status_code) == (401, 401)
    assert_too_many_requests(refused, 60)
    assert elsewhere.status_code == 401
    assert with_a_token.status_code == 200


def test_probes_documents_and_preflights_are_never_limited_nor_counted(mongo, backend):
    app = limited_app(mongo, backend, RATE_LIMIT_PER_ADDRESS="1/minute", CORS_ORIGINS=[FRONTEND])
    client = app.test_client()
    preflight = {"Origin": FRONTEND, "Access-Control-Request-Method": "POST"}

    answers = [client.get(path).status_code for path in ("/healthz", "/readyz", "/openapi.json") for _ in range(5)]
    answers += [client.options("/patients/add_and_link", headers=preflight).status_code for _ in range(5)]
    first = client.get("/appointments?uid=doctor_a")
    second = client.get("/appointments?uid=doctor_a")

    assert answers == [200] * 20
    # The address's one request a minute was still there for its first token-less request.
    assert (first.status_code, second.status_code) == (401, 429)


@pytest.mark.parametrize("switch, statuses", [("on", [200, 429, 429]), ("off", [200, 200, 200])])
def test_rate_limit_off_lifts_the_limit(monkeypatch, mongo, backend, switch, statuses):
    monkeypatch.setenv("RATE_LIMIT", switch)
    monkeypatch.setenv("RATE_LIMIT_PER_SUBJECT", "1/minute")
    from_environment = Config()
    client = limited_app(mongo, backend, **{name: getattr(from_environment, name)
                                            for name in RATE_LIMIT_SETTINGS[:3]}).test_client()

    answers = [client.get("/appointments?uid=doctor_a", headers=bearer("doctor_a")).status_code for _ in range(3)]

    assert answers == statuses


class CommandNames(CommandsStarted):
    """Note the name of every command a client sends."""

    def __init__(self):
        self.names = []

    def started(self, event):
        self.names.append(event.command_name)


@pytest.mark.realdb
def test_the_window_index_is_made_at_start_and_each_request_counts_in_one_write_per_limit(replica_set_server, request):
    commands = CommandNames()
    watched = pymongo.MongoClient(replica_set_server.uri, tz_aware=True, event_listeners=[commands])
    request.addfinalizer(watched.close)
    request.addfinalizer(lambda: watched.drop_database("rate_limit_round_trips"))
    app = create_app(make_config(MONGO_CLIENT=watched, MONGODB_DB="rate_limit_round_trips", RATE_LIMIT=True,
                                 RATE_LIMIT_PER_SUBJECT="10/second;300/minute"))
    client = app.test_client()
    index = watched.rate_limit_round_trips.rate_limit_windows.index_information()["expireAt_1"]

    commands.names.clear()
    client.get("/appointments?uid=doctor_a", headers=bearer("doctor_a"))

    assert index["expireAfterSeconds"] == 0
    # A createIndexes racing the first counts into a new collection hangs secantusd-py: none is sent per request.
    assert "createIndexes" not in commands.names
    assert commands.names.count("update") == 2
