"""Hold every read of a request body to one deadline for the whole body, so a trickled body cannot hold a worker."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

import gevent
from werkzeug.exceptions import RequestTimeout

# _typeshed exists only for the type checker: the WSGI protocol's types, as werkzeug's own are written.
if TYPE_CHECKING:
    from _typeshed.wsgi import InputStream, StartResponse, WSGIApplication, WSGIEnvironment

# What one read gives: bytes, or a list of lines.
Read = TypeVar("Read")


class BodyDeadline:
    """WSGI middleware giving the app a body that must arrive whole within `seconds` of its first read (else 408)."""

    def __init__(self, wsgi_app: WSGIApplication, seconds: float) -> None:
        self.wsgi_app = wsgi_app
        self.seconds = seconds

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve the request with its body under the deadline."""
        environ["wsgi.input"] = BodyInTime(environ["wsgi.input"], self.seconds)
        return self.wsgi_app(environ, start_response)


class BodyInTime:
    """A request body whose reads together end within one deadline, started by the first read; late, they raise 408."""

    # No readinto: Werkzeug's LimitedStream would use it, and reads `read` otherwise, which is what is timed here.

    def __init__(self, stream: InputStream, seconds: float) -> None:
        self._stream = stream
        self._seconds = seconds
        self._deadline: float | None = None
        self._late = False

    def read(self, size: int = -1) -> bytes:
        """Read up to size bytes (all that is left by default) before the deadline."""
        return self._in_time(self._stream.read, size)

    def readline(self, size: int = -1) -> bytes:
        """Read one line before the deadline."""
        return self._in_time(self._stream.readline, size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Read the remaining lines before the deadline."""
        return self._in_time(self._stream.readlines, hint)

    def __iter__(self) -> Iterator[bytes]:
        """Iterate over the lines before the deadline."""
        return iter(self.readline, b"")

    def _in_time(self, read: Callable[[int], Read], size: int) -> Read:
        """Run one read with what is left of the body's deadline, refusing with 408 once it has passed."""
        if self._deadline is None:
            self._deadline = time.monotonic() + self._seconds
        remaining = self._deadline - time.monotonic()
        if self._late or remaining <= 0:
            raise self._timed_out()
        # A gevent timer, not a socket timeout: it bounds the read wherever it blocks, in the server's chunk
        # parser as in recv, and the server's reader cannot swallow it (gevent.Timeout is no Exception).
        timer = gevent.Timeout.start_new(remaining)
        try:
            return read(size)
        except gevent.Timeout as fired:
            if fired is not timer:
                raise
            raise self._timed_out() from None
        finally:
            timer.close()

    def _timed_out(self) -> RequestTimeout:
        """Remember that the body came too late (the server's reader stopped mid-body) and return the 408."""
        self._late = True
        return RequestTimeout()
