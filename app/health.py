"""Liveness and readiness probes; neither needs a token."""
from flask import Blueprint

from app.web import database, success

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer while the process runs, without touching the database."""
    return success({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Answer 200 when the database answers a ping within the timeout, else 503 (via the error handlers)."""
    database().ping()
    return success({"status": "ready"})
