"""Hold a request body sent without a length (chunked) to the limit a declared length is held to."""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_content_length

# _typeshed exists only for the type checker: the WSGI protocol's types, as werkzeug's own are written.
if TYPE_CHECKING:
    from _typeshed.wsgi import InputStream, StartResponse, WSGIApplication, WSGIEnvironment

# The largest body a request may carry: a patient with every field full is a few kilobytes.
MAX_BODY_BYTES = 64 * 1024


class BodyLimit:
    """WSGI middleware that reads an unsized body up to one byte past the limit when the app first reads it."""

    def __init__(self, wsgi_app: WSGIApplication, limit: int) -> None:
        self.wsgi_app = wsgi_app
        self.limit = limit

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Hand the app an unsized body that is refused whole (413) when it goes past the limit."""
        # Werkzeug reads a stream the server ends itself (`wsgi.input_terminated`) up to the limit and
        # stops there without a word: JSON padded to 64 KiB, then anything at all, would be taken.
        if environ.get("wsgi.input_terminated") and get_content_length(environ) is None:
            environ["wsgi.input"] = WholeUnsizedBody(environ["wsgi.input"], self.limit)
        return self.wsgi_app(environ, start_response)


class WholeUnsizedBody:
    """An unsized body read whole, up to one byte past the limit, at its first read: not before the app asks."""

    # Read on demand, not as the request comes in: a route that refuses first (no token: 401) or takes no body
    # (/healthz) never waits for one.

    def __init__(self, stream: InputStream, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._body: io.BytesIO | None = None

    def read(self, size: int = -1) -> bytes:
        """Read up to size bytes of the body (all of it by default)."""
        return self._whole().read(size)

    def readline(self, size: int = -1) -> bytes:
        """Read one line of the body."""
        return self._whole().readline(size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Read the body's remaining lines."""
        return self._whole().readlines(hint)

    def __iter__(self) -> Iterator[bytes]:
        """Iterate over the body's lines."""
        return iter(self._whole())

    def _whole(self) -> io.BytesIO:
        """Return the whole body as a buffer, refusing one past the limit (413)."""
        if self._body is None:
            body = self._stream.read(self._limit + 1)
            if len(body) > self._limit:
                raise RequestEntityTooLarge()
            self._body = io.BytesIO(body)
        return self._body
