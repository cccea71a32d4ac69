"""Cross-origin access for the clinic's browser frontends, through flask-cors, from an exact allow-list."""
from flask_cors import CORS

ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "If-Match", "X-Request-ID"]
EXPOSED_HEADERS = ["X-Request-ID", "Idempotent-Replayed", "ETag", "Location"]
ALLOWED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def register(app, origins):
    """Allow the listed origins; with none listed, answer no cross-origin request at all."""
    if not origins:
        return
    CORS(
        app,
        origins=origins,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        methods=ALLOWED_METHODS,
        supports_credentials=False,
        max_age=600,
    )
