"""Cross-origin access for the clinic's browser frontends, through flask-cors, from an exact allow-list."""
from flask import Flask, Response, current_app, request
from flask_cors import CORS

ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "If-Match", "X-Request-ID"]
EXPOSED_HEADERS = ["X-Request-ID", "Idempotent-Replayed", "ETag", "Location"]
ALLOWED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def register(app: Flask, origins: list[str]) -> None:
    """Allow the listed origins; with none listed, answer no cross-origin request at all."""
    if not origins:
        return
    app.before_request(answer_preflight)
    app.after_request(vary_by_origin)
    CORS(
        app,
        origins=origins,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        methods=ALLOWED_METHODS,
        supports_credentials=False,
        max_age=600,
        # flask-cors sends Vary only when more than one origin is listed; vary_by_origin sends it on every answer.
        vary_header=False,
    )


def vary_by_origin(response: Response) -> Response:
    """Tell caches that the answer depends on the request's Origin: only listed origins get the CORS headers."""
    response.vary.add("Origin")
    return response


def answer_preflight() -> Response | None:
    """Answer a browser's preflight on any path as Flask answers OPTIONS on a route: 200, no body."""
    # flask-cors only adds headers to the answer a request gets, and Flask answers OPTIONS only on known paths:
    # elsewhere the preflight got 404, which a browser reports as "Failed to fetch" instead of sending the real
    # request and showing its 404 or 405 envelope. flask-cors still decides which origin gets the headers.
    preflight = (request.method == "OPTIONS" and "Origin" in request.headers
                 and "Access-Control-Request-Method" in request.headers)
    return current_app.make_default_options_response() if preflight else None
