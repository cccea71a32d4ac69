"""`gunicorn wsgi:app` starts and serves with only the documented variables, and refuses without a key."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pymongo
import pytest
from bson import ObjectId

from tests.conftest import SECRET, jane, make_token
from tests.live import MASTER_KEY_B64
from tests.servers import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")


def bare_environment(**variables):
    """Return an environment with none of the service's settings but the given ones."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MONGODB_", "JWT_", "LOG_LEVEL", "CORS_", "ALLOW_", "WEB_CONCURRENCY", "HOST", "PORT",
                                  "FIELD_ENCRYPTION", "NEW_FIELD_ENCRYPTION"))}
    env.update(variables)
    return env


def call(url, body=None, token=None):
    """Send a request and return (status, decoded JSON body)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
@pytest.mark.realdb
def test_gunicorn_serves_with_only_uri_database_and_secret(replica_set_server):
    port = free_port()
    # PORT only keeps the test off the default port; every other setting comes from gunicorn.conf.py.
    # The field-encryption master key is required: without it the service refuses to start.
    env = bare_environment(MONGODB_URI=replica_set_server.uri, MONGODB_DB="gunicorn_test", JWT_SECRET=SECRET,
                           FIELD_ENCRYPTION_KEY=MASTER_KEY_B64, PORT=str(port))
    appointment_id = ObjectId()
    with pymongo.MongoClient(replica_set_server.uri) as mongo:
        mongo.gunicorn_test.appointments.insert_one({"_id": appointment_id, "doctor_id": "doc", "patient_id": None})
    server = subprocess.Popen([GUNICORN, "wsgi:app"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                assert call(base + "/healthz") == (200, {"success": True, "data": {"status": "ok"}})
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start serving"
                time.sleep(0.2)
        status, body = call(base + "/patients/add_and_link?uid=doc", jane(str(appointment_id)), make_token("doc"))
        assert status == 201 and body["data"]["doctor_id"] == "doc"
        with pymongo.MongoClient(replica_set_server.uri) as mongo:
            stored = mongo.gunicorn_test.patients.find_one({"_id": ObjectId(body["data"]["_id"])})
        assert "sealed" in stored and "firstName" not in stored and "lastName" not in stored
    finally:
        server.terminate()
        server.wait(timeout=15)
        with pymongo.MongoClient(replica_set_server.uri) as mongo:
            mongo.drop_database("gunicorn_test")


@pytest.mark.slow
def test_without_key_material_the_service_refuses_to_start_with_one_line():
    env = bare_environment(MONGODB_URI="mongodb://127.0.0.1:1/?directConnection=true")
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "JWT_SECRET" in result.stderr
