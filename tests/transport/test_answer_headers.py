"""Under gunicorn: the cap on a request's headers together, nosniff, and no answer naming a forged Host."""
import json

import pytest

from tests.conftest import make_token
from tests.transport.wire import connect, exchange, read_response

MAX_HEADER_BYTES = 32 * 1024  # the default
MARKER = "Zqxmarker"


def request_with_headers(path, headers):
    """Return a GET for path with these headers, in this order, closing the connection after the answer."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in [("Host", "clinic"), *headers, ("Connection", "close")])
    return f"GET {path} HTTP/1.1\r\n{lines}\r\n".encode("latin-1")


def padding_to(total, *headers):
    """Return the given headers plus X-Pad-<n> ones that bring all of a request's headers to total bytes as sent."""
    def size(pairs):
        return sum(len(name) + len(value) + 4 for name, value in pairs)

    used = size([("Host", "clinic"), *headers, ("Connection", "close")])
    pads = []
    while used + size(pads) < total:
        name = f"X-Pad-{len(pads)}"
        room = total - used - size(pads) - len(name) - 4
        pads.append((name, "p" * min(room, 8000)))
    return [*headers, *pads]


@pytest.mark.slow
@pytest.mark.realdb
def test_95_headers_of_8000_bytes_are_refused_with_431_in_the_envelope_and_the_connection_closed(service, stored):
    headers = [(f"X-Big-{i}", MARKER + "b" * (8000 - len(MARKER))) for i in range(95)]

    with connect(service.port, timeout=10) as sock:
        sock.sendall(request_with_headers("/patients?uid=doctor_a", headers))
        status, answer_headers, body = read_response(sock, timeout=10)
        assert sock.recv(1) == b""  # closed by the service

    assert status == 431
    assert json.loads(body) == {"success": False, "error": "Request headers too large"}
    assert answer_headers["connection"].lower() == "close"
    assert answer_headers["x-content-type-options"] == "nosniff"
    assert MARKER not in service.log()


@pytest.mark.slow
@pytest.mark.realdb
def test_headers_up_to_the_cap_are_served_and_one_byte_more_is_refused(service):
    at_cap = request_with_headers("/healthz", padding_to(MAX_HEADER_BYTES))
    over_cap = request_with_headers("/healthz", padding_to(MAX_HEADER_BYTES + 1))

    assert exchange(service.port, at_cap)[0] == 200
    status, _, body = exchange(service.port, over_cap)
    assert (status, json.loads(body)) == (431, {"success": False, "error": "Request headers too large"})


@pytest.mark.slow
@pytest.mark.realdb
def test_a_request_with_a_token_and_a_few_kb_of_headers_is_answered_as_before(service):
    token = ("Authorization", f"Bearer {make_token('doctor_a')}")
    headers = padding_to(4 * 1024, token, ("Accept", "application/json"), ("User-Agent", "Mozilla/5.0 " + "x" * 200))

    status, answer_headers, body = exchange(service.port, request_with_headers("/patients?uid=doctor_a", headers))

    assert (status, json.loads(body)) == (200, {"success": True, "data": [], "next": None})
    assert answer_headers["x-content-type-options"] == "nosniff"


@pytest.mark.slow
@pytest.mark.realdb
def test_a_forged_host_is_named_neither_in_the_docs_redirect_nor_in_the_docs_page(service):
    def forged(path):
        return f"GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".encode()

    status, headers, body = exchange(service.port, forged("/docs"))
    assert (status, headers["location"]) == (308, "/docs/")
    assert b"evil.example" not in body

    status, headers, body = exchange(service.port, forged("/docs/"))
    assert status == 200
    assert b"evil.example" not in body
    assert headers["x-frame-options"] == "DENY"
    assert "script-src 'self';" in headers["content-security-policy"]
