"""The service's gunicorn worker: gevent, a cap on a request's headers, parser refusals in the envelope, a stop
when the app cannot load, and no keep-alive after a body the app left unread.

Kept outside the `app` package: gunicorn imports the worker class in the master, before gevent patches
anything, and importing `app` there would load pymongo and its locks unpatched.
"""
import json
import traceback

import gevent
from gunicorn.arbiter import Arbiter
from gunicorn.http.errors import (
    ExpectationFailed,
    ForbiddenProxyRequest,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.util import close_graceful, write_nonblock
from gunicorn.workers.ggevent import GeventWorker

from config import Config

# First match wins; the messages name the fault, never the request: it may carry patient names in `q=`.
PARSER_REFUSALS = (
    (LimitRequestLine, 414, "URI Too Long", "Request line too long"),
    (LimitRequestHeaders, 431, "Request Header Fields Too Large", "Request headers too large"),
    (UnsupportedTransferCoding, 501, "Not Implemented", "Unsupported transfer coding"),
    (ExpectationFailed, 417, "Expectation Failed", "Expectation failed"),
    (ForbiddenProxyRequest, 403, "Forbidden", "Forbidden"),
    (ParseException, 400, "Bad Request", "Bad request"),
)
# After answering a request whose body it left unread, the worker stops sending and reads what the client
# still sends for up to this long before it closes: closing at once, with unread bytes, would send a reset
# that can destroy the answer before the client reads it (RFC 9112 9.6).
LINGER_S = 1.0


class ClinicWorker(GeventWorker):
    """A gevent worker: each connection is a greenlet, so slow or idle clients hold memory, not a worker."""

    def init_process(self):
        """Read the cap on a request's headers, then run the worker."""
        # gunicorn.conf.py has validated it in the master; gunicorn has no setting of its own to carry it here.
        self.max_header_bytes = Config().MAX_HEADER_BYTES
        super().init_process()

    def load_wsgi(self):
        """Load the app, or exit with APP_LOAD_ERROR so that the arbiter stops instead of respawning forever."""
        try:
            super().load_wsgi()
        except (Exception, SystemExit) as error:
            # wsgi.py has already said why in one line; an exit status of 1 would get this worker rebooted.
            if not isinstance(error, SystemExit):
                self.log.error("cannot load the app: %s at %s", type(error).__name__, _where(error))
            raise SystemExit(Arbiter.APP_LOAD_ERROR) from None

    def handle_request(self, listener_name, req, sock, addr):
        """Serve a request whose headers fit the cap, then let the other connections run before this one's next."""
        body = req.body = BodyReadToItsEnd(req)
        try:
            if header_bytes(req.headers) > self.max_header_bytes:
                # Refused before the app sees it: handle_error answers 431 in the envelope, and the connection closes.
                raise LimitRequestHeaders("headers over MAX_HEADER_BYTES")
            return super().handle_request(listener_name, req, sock, addr)
        except StopIteration:
            if not body.read_to_its_end:
                close_graceful(sock, LINGER_S)
            raise
        finally:
            # A kept-alive client whose requests never wait on I/O (/healthz in a loop) would otherwise keep
            # the worker to itself: greenlets only switch when one blocks.
            gevent.sleep(0)

    def handle_error(self, req, client, addr, exc):
        """Answer a request the parser refused, or an error outside the app, in the envelope; log the class only."""
        status, reason, message = 500, "Internal Server Error", "Internal server error"
        for kind, kind_status, kind_reason, kind_message in PARSER_REFUSALS:
            if isinstance(exc, kind):
                status, reason, message = kind_status, kind_reason, kind_message
                break
        if status == 500:
            self.log.error("error outside the app: %s at %s", type(exc).__name__, _where(exc))
        else:
            self.log.warning("refused by the HTTP parser: %s", type(exc).__name__)
        body = json.dumps({"success": False, "error": message}, separators=(",", ":")).encode()
        head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1")
        try:
            write_nonblock(client, head + body)
        except OSError:
            pass  # the client has gone; nothing to answer


def header_bytes(headers):
    """Return the size of a request's headers as sent: each `Name: value` and its line end."""
    return sum(len(name) + len(value) + 4 for name, value in headers)


class BodyReadToItsEnd:
    """A request's body (wsgi.input) that knows whether the app read it to its end."""

    def __init__(self, request):
        self._request = request
        self._body = request.body
        # Bytes still to come of a declared length; None for a chunked body, which ends with its last chunk.
        self._left = _declared_length(request)
        self.read_to_its_end = self._left == 0
        self._closes_anyway = request.must_close
        self._close_unless_read()

    def read(self, size=None):
        """Read up to size bytes (all that is left by default)."""
        data = self._body.read(size)
        # gunicorn's body returns fewer bytes than asked for only once the body has ended.
        self._note(data, ended=size is None or size < 0 or len(data) < size)
        return data

    def readline(self, size=None):
        """Read one line."""
        data = self._body.readline(size)
        self._note(data, ended=not data and size != 0)
        return data

    def readlines(self, size=None):
        """Read the remaining lines."""
        lines = self._body.readlines(size)
        self._note(b"".join(lines), ended=True)
        return lines

    def __iter__(self):
        """Iterate over the remaining lines."""
        return iter(self.readline, b"")

    @property
    def failed(self):
        """Tell whether a read of the body raised (gunicorn then reuses no connection)."""
        return getattr(self._body, "failed", False)

    def _close_unless_read(self):
        """Have the connection closed after the answer for as long as the body is not read to its end."""
        # The rest of an unread body (401, 408, 413, a body sent to /healthz) is not ours to wait for: gunicorn
        # would read it to find the next request, for as long as a client trickles it. Decided on every read,
        # so it holds when the answer's head is sent and says Connection: close.
        self._request.must_close = self._closes_anyway or not self.read_to_its_end

    def _note(self, data, ended):
        """Count what was read, and whether the body has ended."""
        if self._left is None:
            self.read_to_its_end = self.read_to_its_end or ended
        else:
            self._left -= len(data)
            self.read_to_its_end = self._left <= 0
        self._close_unless_read()


def _declared_length(request):
    """Return the request's Content-Length (0 if none), or None when its body is chunked."""
    length = 0
    for name, value in request.headers:
        if name == "TRANSFER-ENCODING":
            return None  # gunicorn refuses any Transfer-Encoding that does not end with chunked
        if name == "CONTENT-LENGTH":
            length = int(value)  # gunicorn has checked it is a whole number
    return length


def _where(error):
    """Return the file and line an exception was raised at, never its text."""
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "unknown"
