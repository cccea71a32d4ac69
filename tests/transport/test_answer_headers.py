"""Under gunicorn: no answer names a forged Host."""
import pytest

from tests.transport.wire import exchange


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
