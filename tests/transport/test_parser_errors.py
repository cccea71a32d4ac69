"""What gunicorn's HTTP parser refuses answers in the envelope, and no log line carries the request line."""
import json

import pytest

from tests.transport.wire import exchange

MARKER = "Zqxmarker"


def refused(port, request):
    """Send a raw request the parser refuses; return (status, headers, decoded JSON body)."""
    status, headers, body = exchange(port, request)
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert headers["connection"].lower() == "close"
    assert headers["x-content-type-options"] == "nosniff"
    return status, json.loads(body)


@pytest.mark.slow
@pytest.mark.realdb
@pytest.mark.parametrize("request_bytes, status, error", [
    pytest.param(f"NOT A REQUEST?q={MARKER}malformed\r\n\r\n".encode(), 400, "Bad request", id="malformed-line"),
    pytest.param(f"GET /patients?uid=doc&q={MARKER}long{'a' * 5000} HTTP/1.1\r\nHost: clinic\r\n\r\n".encode(),
                 414, "Request line too long", id="line-too-long"),
    pytest.param(f"GET /patients?q={MARKER}big HTTP/1.1\r\nHost: clinic\r\nX-Big: {'b' * 9000}\r\n\r\n".encode(),
                 431, "Request headers too large", id="header-too-large"),
    pytest.param((f"GET /patients?q={MARKER}many HTTP/1.1\r\nHost: clinic\r\n"
                  + "".join(f"X-H{i}: v\r\n" for i in range(120)) + "\r\n").encode(),
                 431, "Request headers too large", id="too-many-headers"),
])
def test_a_request_the_parser_refuses_answers_the_envelope_and_logs_no_query(service, stored, request_bytes,
                                                                             status, error):
    assert refused(service.port, request_bytes) == (status, {"success": False, "error": error})
    assert MARKER not in service.log()
    assert stored.patients.count_documents({}) == 0
