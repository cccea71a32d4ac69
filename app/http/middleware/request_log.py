"""One log line per request, tied to a request id; never a body, a query string, a raw path or a header value."""
import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

log = logging.getLogger("clinic.requests")

# Only ids that cannot forge or break a log line are echoed; anything else is replaced.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")


def _start() -> None:
    """Note the start time and the request id."""
    g.started = time.perf_counter()
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _finish(response: Response) -> Response:
    """Log the request's line and echo its id."""
    duration_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers["X-Request-ID"] = request_id
    # The route's template, not the path: a client-chosen path could carry anything.
    route = request.url_rule.rule if request.url_rule else "-"
    fields = {"method": request.method, "route": route, "status": response.status_code,
              "duration_ms": round(duration_ms, 1), "request_id": request_id}
    # The same fields twice: in the message for the text line, and as `extra` keys of their own for LOG_FORMAT=json.
    log.info("%(method)s %(route)s %(status)s %(duration_ms).1fms request_id=%(request_id)s", fields, extra=fields)
    return response


def register(app: Flask) -> None:
    """Install the request logging hooks on the app."""
    app.before_request(_start)
    app.after_request(_finish)
