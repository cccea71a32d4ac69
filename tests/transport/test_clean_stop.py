"""A stopped `gunicorn wsgi:app` leaves a clean log: its workers release libmongocrypt before the interpreter ends."""
import urllib.request

import pytest

from tests.conftest import make_token
from tests.live import LiveService

SECRET = "s" * 40


@pytest.mark.slow
@pytest.mark.realdb
def test_workers_that_encrypted_stop_without_a_traceback(replica_set_server, tmp_path):
    service = LiveService(tmp_path / "gunicorn.log", MONGODB_URI=replica_set_server.uri, MONGODB_DB="clean_stop",
                          JWT_SECRET=SECRET).start()
    try:
        request = urllib.request.Request(service.base + "/patients?uid=doctor_a",
                                         headers={"Authorization": "Bearer " + make_token(secret=SECRET)})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    finally:
        service.stop()
    log = service.log()
    assert "field_encryption=on" in log and "Worker exiting" in log
    assert "Traceback" not in log and "Exception ignored" not in log, log
