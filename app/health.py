"""Liveness and readiness probes; neither needs a token."""
from flask import Blueprint

from app.api_docs import documented
from app.schemas import ProbeSchema
from app.web import database, success

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@documented(summary="Check that the process is up", tag="health", public=True, responses={200: ProbeSchema})
def healthz():
    """Answer while the process runs, without touching the database."""
    return success({"status": "ok"})


@bp.get("/readyz")
@documented(summary="Check that the database answers", tag="health", public=True,
            responses={200: ProbeSchema, 503: "Database unavailable: it did not answer a ping in time"})
def readyz():
    """Answer 200 when the database answers a ping within the timeout, else 503 (via the error handlers)."""
    database().ping()
    return success({"status": "ready"})
