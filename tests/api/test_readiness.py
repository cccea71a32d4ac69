"""/readyz follows the database; /healthz does not touch it."""
import pytest

from app import create_app
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
