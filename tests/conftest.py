"""Fixtures: the app over mongomock and over real servers (replica set and standalone), tokens, data."""
import collections
import copy
import threading
import uuid

import mongomock
import pymongo
import pytest
from _pytest.nodeid import NodeId
from bson import ObjectId

from app import create_app
from app.http.routes.patients import ADD_AND_LINK_EXAMPLE
from config import Config, local_master_key
from scripts.mint_token import mint
from tests import mongomock_key_vault
from tests.live import MASTER_KEY_B64
from tests.servers import SecantusServer

SECRET = "test-secret-" + "s" * 60
MASTER_KEY = local_master_key("FIELD_ENCRYPTION_KEY", MASTER_KEY_B64)
# replica_set sends a transaction's writes in one client bulkWrite (the server reports 8.2); replica_set_per_command
# is the same server with MONGODB_CLIENT_BULK_WRITE=off: one command per write, as on MongoDB before 8.0.
BACKENDS = ["mongomock", "replica_set", "replica_set_per_command", "standalone"]
SERVERS = {"replica_set": "replica_set", "replica_set_per_command": "replica_set", "standalone": "standalone"}


def make_config(**overrides):
    """Return a Config that ignores token settings from the environment, with overrides applied."""
    settings = dict(JWT_SECRET=SECRET, JWT_PUBLIC_KEY=None, JWT_JWKS_URL=None, JWT_AUDIENCE=None,
                    JWT_ISSUER=None, JWT_ADMIN_ROLE="admin", MONGODB_TIMEOUT_MS=5000, LOG_LEVEL="INFO",
                    ALLOW_STANDALONE=True, FIELD_ENCRYPTION=True, MASTER_KEY=MASTER_KEY,
                    # The suite sends many requests with one token; only the tests of the limits turn them on.
                    RATE_LIMIT=False)
    settings.update(overrides)
    if isinstance(settings.get("MONGO_CLIENT"), mongomock.MongoClient) and "KEY_VAULT_CLIENT" not in settings:
        # pymongo's ClientEncryption reads its key vault as raw BSON, which mongomock cannot give by itself.
        settings["KEY_VAULT_CLIENT"] = mongomock_key_vault.MongoClient(settings["MONGO_CLIENT"])
    return Config(**settings)


def make_token(sub="doctor_a", *, secret=SECRET, **options):
    """Mint a token as the clinic's identity provider would, signed with the tests' secret unless told otherwise."""
    return mint(sub, secret, **options)


class Clock:
    """A monotonic clock that moves only when the test moves it, so a cache's windows are crossed exactly."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        """Let seconds pass."""
        self.now += seconds


class CommandsStarted(pymongo.monitoring.CommandListener):
    """A command listener that looks at commands as they start; a subclass's started() says what it keeps."""

    def started(self, event):
        pass

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def service_watched_by(listener, uri, request, db_name=None):
    """Return the service over db_name (a fresh database, dropped after the test, when None) through a client whose
    commands the listener sees, and that database as the client sees it."""
    watched = pymongo.MongoClient(uri, tz_aware=True, event_listeners=[listener])
    request.addfinalizer(watched.close)
    if db_name is None:
        db_name = "watched_" + ObjectId().binary.hex()[:8]
        request.addfinalizer(lambda: watched.drop_database(db_name))
    return create_app(make_config(MONGO_CLIENT=watched, MONGODB_DB=db_name)), watched[db_name]


def bearer(sub="doctor_a", **kwargs):
    """Return headers carrying a fresh token for sub."""
    return {"Authorization": "Bearer " + make_token(sub, **kwargs)}


@pytest.fixture(scope="session")
def session_servers():
    """The session's servers, stopped together at its end: each takes a second or two to close its storage."""
    servers = []
    yield servers
    for server in servers:
        server.process.terminate()
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def replica_set_server(tmp_path_factory, session_servers):
    """A real server advertising a single-node replica set: transactions are used."""
    server = SecantusServer(tmp_path_factory.mktemp("rs") / "data").start()
    session_servers.append(server)
    return server


@pytest.fixture(scope="session")
def standalone_server(tmp_path_factory, session_servers):
    """A real server advertising a standalone topology: no transactions."""
    server = SecantusServer(tmp_path_factory.mktemp("standalone") / "data", standalone=True).start()
    session_servers.append(server)
    return server


def pytest_collection_modifyitems(items):
    """Mark the tests parametrised onto a real server, so `-m "not realdb"` keeps to mongomock, give every test an
    id of its own, then order the files: the longest and the slow ones first, each file's tests together."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and callspec.params.get("backend", "mongomock") != "mongomock":
            item.add_marker(pytest.mark.realdb)
        if item.nodeid.rpartition("::")[2] != item.name:
            # schemathesis names each operation's test `test_...[GET /healthz]`, but pytest 9.2 builds the node id
            # from the function's bare name, so the operations would share one id, and a parallel run, which
            # hands out tests by id, would run one of them. pytest has no public way to set an id.
            item._id = NodeId.parse(f"{item.parent.nodeid}::{item.name}")
    shared = [nodeid for nodeid, count in collections.Counter(item.nodeid for item in items).items() if count > 1]
    if shared:
        raise pytest.UsageError(f"tests share a node id, so a parallel run would run one of each: {shared[:3]}")
    # `make test` hands whole files to parallel workers in this order. The longest (20 s of make chaos, the fuzzer
    # against gunicorn, the bench: those that ask for a longer timeout) start at once, then the other slow ones,
    # rather than last, with the other workers idle until they end.
    longest, slow, first_seen = {}, set(), {}
    for index, item in enumerate(items):
        timeout = item.get_closest_marker("timeout")
        seconds = (timeout.args[0] if timeout.args else timeout.kwargs.get("timeout", 0)) if timeout else 0
        longest[item.path] = max(longest.get(item.path, 0), seconds)
        if item.get_closest_marker("slow"):
            slow.add(item.path)
        first_seen.setdefault(item.path, index)
    items.sort(key=lambda item: (-longest[item.path], item.path not in slow, first_seen[item.path]))


@pytest.fixture(params=BACKENDS)
def backend(request):
    """The name of the database backend a test runs on."""
    return request.param


@pytest.fixture
def mongo(backend, request):
    """A client for the backend, and a database name of this test's own, dropped afterwards."""
    name = "test_" + uuid.uuid4().hex[:12]
    if backend == "mongomock":
        client = mongomock.MongoClient(tz_aware=True)
    else:
        server = request.getfixturevalue(f"{SERVERS[backend]}_server")
        client = pymongo.MongoClient(server.uri, tz_aware=True, serverSelectionTimeoutMS=5000)
        if backend == "replica_set_per_command":
            request.getfixturevalue("monkeypatch").setenv("MONGODB_CLIENT_BULK_WRITE", "off")
    yield client, name
    if backend != "mongomock":
        try:
            with pymongo.timeout(10):
                client.drop_database(name)
        except pymongo.errors.PyMongoError:
            pass  # every test has a database of its own: one left behind changes no other test
    client.close()


@pytest.fixture
def db(mongo):
    """The test's database, to arrange data and to check what a request left behind."""
    client, name = mongo
    return client[name]


@pytest.fixture
def app(mongo):
    """The service over the test's database."""
    client, name = mongo
    return create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name))


@pytest.fixture
def client(app):
    """A Flask test client for the service."""
    return app.test_client()


@pytest.fixture
def failpoints(mongo):
    """The test's client, with the failCommand failpoint switched off afterwards."""
    client, _ = mongo
    yield client
    client.admin.command("configureFailPoint", "failCommand", mode="off")


@pytest.fixture
def add_appointment(db):
    """Insert an appointment straight into the database and return its id as a string."""

    def add(doctor_id="doctor_a", patient_id=None, **fields):
        appointment_id = ObjectId()
        db.appointments.insert_one({"_id": appointment_id, "doctor_id": doctor_id, "patient_id": patient_id, **fields})
        return str(appointment_id)

    return add


def at_once(app, count, send):
    """Send count requests released together by a barrier, send(client, index) each; return responses by index."""
    start = threading.Barrier(count)
    responses = [None] * count

    def run(index):
        client = app.test_client()
        start.wait()
        responses[index] = send(client, index)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


def jane(appointment_id, **changes):
    """Return the documented example body for this appointment, with changes applied."""
    body = {**copy.deepcopy(ADD_AND_LINK_EXAMPLE), "appointment_id": appointment_id}
    body.update(changes)
    return body


class Unsealed:
    """Open what the service stored sealed, to check a record's values in the database, as the service reads them."""

    def __init__(self, app):
        self._values = app.extensions["clinic.db"].values

    def patient(self, stored):
        """Return a stored patient with its own fields opened, its ids, times and version as stored."""
        from app.store.records import INTERNAL_PATIENT_FIELDS

        kept = {name: value for name, value in stored.items() if name in INTERNAL_PATIENT_FIELDS}
        return {**kept, **self._values.patient_fields(stored, INTERNAL_PATIENT_FIELDS)}

    def version(self, stored):
        """Return a stored earlier version with its fields opened under "patient"."""
        kept = {name: value for name, value in stored.items() if name != "sealed"}
        return {**kept, "patient": self._values.version_fields(stored)}

    def appointment(self, stored):
        """Return a stored appointment with its sealed fields (the reason for the visit) opened."""
        return self._values.appointment_fields(stored)

    def answer(self, stored):
        """Return a stored idempotency record with its answer body opened under "body"."""
        kept = {name: value for name, value in stored.items() if name != "sealed"}
        if "sealed" in stored or "body" in stored:
            kept["body"] = self._values.answer_body(stored)
        return kept


@pytest.fixture
def unsealed(app):
    """Open the service's sealed records (see Unsealed)."""
    app.extensions["clinic.db"].prepare()
    return Unsealed(app)
