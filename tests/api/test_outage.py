"""A database that cannot be reached answers 503 within the timeout, never a hang or a 500."""
import time

import pytest

from app import create_app
from scripts.processes import free_port
from tests.conftest import bearer, jane, make_config


@pytest.mark.slow
def test_unreachable_database_answers_503_within_the_timeout(request):
    uri = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    app = create_app(make_config(MONGODB_URI=uri, MONGODB_TIMEOUT_MS=300))
    client = app.test_client()
    request.addfinalizer(app.extensions["clinic.db"].client.close)

    started = time.monotonic()
    response = client.post("/patients/add_and_link?uid=doctor_a", headers=bearer(),
                           json=jane("65f8a1b2c3d4e5f6789012ef"))
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.get_json() == {"success": False, "error": "Database unavailable"}
    assert elapsed < 5  # bounded by the 0.3 s timeout, with room for a slow machine
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
