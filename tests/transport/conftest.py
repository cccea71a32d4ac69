"""One real `gunicorn wsgi:app` per test module, over the replica-set server, with a database of its own."""
import uuid

import pymongo
import pytest

from tests.conftest import SECRET
from tests.live import LiveService


@pytest.fixture(scope="module")
def service(replica_set_server, tmp_path_factory):
    """Serve the app with gunicorn exactly as the image does; its log is kept for the test to read."""
    db_name = "transport_" + uuid.uuid4().hex[:12]
    live = LiveService(tmp_path_factory.mktemp("gunicorn") / "gunicorn.log",
                       MONGODB_URI=replica_set_server.uri, MONGODB_DB=db_name, JWT_SECRET=SECRET).start()
    live.db_name = db_name
    yield live
    live.stop()
    with pymongo.MongoClient(replica_set_server.uri) as client:
        client.drop_database(db_name)


@pytest.fixture
def stored(service, replica_set_server):
    """The service's database, to arrange data and to check what requests left behind."""
    with pymongo.MongoClient(replica_set_server.uri, tz_aware=True) as client:
        yield client[service.db_name]
