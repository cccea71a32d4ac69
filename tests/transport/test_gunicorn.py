"""`gunicorn wsgi:app` starts and serves with only the documented variables, and refuses without a key."""
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pymongo
import pytest
from bson import ObjectId

from scripts.processes import bare_environment
from tests.conftest import SECRET, jane, make_token
from tests.live import ROOT, LiveService


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
def test_gunicorn_serves_with_only_uri_database_and_secret(replica_set_server, tmp_path):
    # LiveService adds HOST (its default) and PORT, to keep the test off the default port, and the field-encryption
    # master key, without which the service refuses to start; RATE_LIMIT=None leaves rate limits at their default.
    # Every other setting comes from gunicorn.conf.py and the defaults.
    live = LiveService(tmp_path / "gunicorn.log", MONGODB_URI=replica_set_server.uri, MONGODB_DB="gunicorn_test",
                       JWT_SECRET=SECRET, RATE_LIMIT=None)
    appointment_id = ObjectId()
    with pymongo.MongoClient(replica_set_server.uri) as mongo:
        mongo.gunicorn_test.appointments.insert_one({"_id": appointment_id, "doctor_id": "doc", "patient_id": None})
    live.start()
    try:
        assert call(live.base + "/healthz") == (200, {"success": True, "data": {"status": "ok"}})
        status, body = call(live.base + "/patients/add_and_link?uid=doc", jane(str(appointment_id)),
                            make_token("doc"))
        assert status == 201 and body["data"]["doctor_id"] == "doc"
        with pymongo.MongoClient(replica_set_server.uri) as mongo:
            stored = mongo.gunicorn_test.patients.find_one({"_id": ObjectId(body["data"]["_id"])})
        assert "sealed" in stored and "firstName" not in stored and "lastName" not in stored
    finally:
        live.stop()
        with pymongo.MongoClient(replica_set_server.uri) as mongo:
            mongo.drop_database("gunicorn_test")
    assert live.process.returncode == 0, live.log()  # stopped by its SIGTERM, not killed


@pytest.mark.slow
def test_without_key_material_the_service_refuses_to_start_with_one_line():
    env = bare_environment(MONGODB_URI="mongodb://127.0.0.1:1/?directConnection=true")
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "JWT_SECRET" in result.stderr
