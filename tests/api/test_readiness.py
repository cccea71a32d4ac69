"""/readyz follows the database; /healthz does not touch it."""
import time

import pymongo
import pytest

from app import create_app
from scripts.processes import free_port
from tests.conftest import make_config
from tests.servers import SecantusServer


@pytest.mark.slow
@pytest.mark.realdb
def test_readyz_answers_503_while_the_database_is_stopped_and_200_once_it_is_back(tmp_path, request):
    server = SecantusServer(tmp_path / "data").start()
    request.addfinalizer(server.stop)
    app = create_app(make_config(MONGODB_URI=server.uri, MONGODB_TIMEOUT_MS=500))
    request.addfinalizer(app.extensions["clinic.db"].client.close)
    client = app.test_client()

    assert client.get("/readyz").status_code == 200
    server.stop()
    stopped = client.get("/readyz")
    assert stopped.status_code == 503
    assert stopped.get_json() == {"success": False, "error": "Database unavailable"}
    assert client.get("/healthz").status_code == 200
    server.start()
    assert client.get("/readyz").status_code == 200


def test_readyz_answers_503_within_about_a_second_while_the_database_cannot_be_reached(request):
    uri = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    # Start-up's own try at the database is cut short: it would wait the 5 s, and it is not what is timed here.
    with pymongo.timeout(0.2):
        app = create_app(make_config(MONGODB_URI=uri, MONGODB_TIMEOUT_MS=5000))
    request.addfinalizer(app.extensions["clinic.db"].client.close)
    client = app.test_client()

    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.get_json() == {"success": False, "error": "Database unavailable"}
    # The 1 s readiness deadline, which pymongo checks every 0.5 s, with room for a busy machine;
    # MONGODB_TIMEOUT_MS alone would take 5.5 s.
    assert elapsed < 2.5


def test_readyz_answers_200_while_the_database_answers(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"success": True, "data": {"status": "ready"}}
