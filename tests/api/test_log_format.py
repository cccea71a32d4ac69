"""LOG_FORMAT: today's text lines by default, one JSON object per line for log collectors, and the same privacy."""
import io
import json
import logging
import re

import pytest

from app import create_app
from app.http.middleware.log_format import formatter_for
from tests.api.test_privacy import HISTORY_MARKER, NAME_MARKER, send_marked_patients
from tests.conftest import make_config

MOCK_ONLY = pytest.mark.parametrize("backend", ["mongomock"], indirect=True)


@pytest.fixture
def service_logging(mongo, request):
    """Build the service in a LOG_FORMAT; return it and a buffer holding what its log handler writes from then on."""

    def build(log_format):
        client, name = mongo
        app = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name, LOG_FORMAT=log_format))
        handler = next(h for h in logging.getLogger("clinic").handlers if getattr(h, "clinic", False))
        written = io.StringIO()
        stream = handler.setStream(written)

        def restore():
            # The handler outlives the app: later tests expect stderr and the default format.
            handler.setStream(stream)
            handler.setFormatter(formatter_for("text"))

        request.addfinalizer(restore)
        return app, written

    return build


@MOCK_ONLY
def test_text_is_the_default_and_keeps_todays_request_line(service_logging):
    app, written = service_logging("text")

    assert app.test_client().get("/healthz?probe=1", headers={"X-Request-ID": "abc-123"}).status_code == 200

    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO clinic\.requests GET /healthz 200 \d+\.\dms "
                        r"request_id=abc-123\n", written.getvalue())


@MOCK_ONLY
def test_json_writes_one_object_per_line_with_the_request_fields_as_keys(service_logging):
    app, written = service_logging("json")

    app.test_client().get("/healthz?probe=1", headers={"X-Request-ID": "abc-123"})
    app.test_client().get("/nope/anything")

    first, second = [json.loads(line) for line in written.getvalue().splitlines()]
    assert {key: first[key] for key in ("level", "logger", "method", "route", "status", "request_id")} == {
        "level": "INFO", "logger": "clinic.requests", "method": "GET", "route": "/healthz", "status": 200,
        "request_id": "abc-123"}
    assert re.fullmatch(r"GET /healthz 200 \d+\.\dms request_id=abc-123", first["message"])
    assert isinstance(first["duration_ms"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", first["time"])
    # An unknown path is logged as no route at all: the path a client chose never reaches the log.
    assert (second["route"], second["status"]) == ("-", 404)
    assert "anything" not in written.getvalue() and "probe" not in written.getvalue()


def test_patient_data_tokens_and_query_strings_never_reach_the_json_logs(service_logging, add_appointment):
    app, written = service_logging("json")
    statuses, token = send_marked_patients(app.test_client(), add_appointment())

    assert statuses == [201, 409, 404, 400]
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    assert [line["status"] for line in lines if line["logger"] == "clinic.requests"] == [201, 409, 404, 400]
    for secret in (NAME_MARKER, HISTORY_MARKER, token, "uid="):
        assert secret not in written.getvalue()
