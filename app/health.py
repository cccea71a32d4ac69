"""Liveness and readiness probes; neither needs a token."""
from flask import Blueprint

from app.api_docs import documented
from app.schemas import ProbeSchema
from app.web import database, refuse_repeated_query_parameters, success

bp = Blueprint("health", __name__)
# No token here: the repeated-parameter check token routes make after authenticating runs first instead.
bp.before_request(refuse_repeated_query_parameters)


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
