"""Liveness and readiness probes; neither needs a token."""
from flask import Blueprint, Response

from app.http.answers import response, success
from app.http.documented import documented
from app.http.refusals import DatabaseUnavailable
from app.http.request_input import refuse_repeated_query_parameters
from app.http.request_work import database
from app.service.schemas import ProbeSchema

# Readiness probes give up after a second or so (Kubernetes' default timeoutSeconds is 1): a database that
# cannot answer a ping this fast counts as down, instead of the probe waiting out MONGODB_TIMEOUT_MS. The driver
# looks at a server selection's deadline every half second, so a database that is down answers 503 in 1 to 1.5 s.
READINESS_DEADLINE_S = 1.0

bp = Blueprint("health", __name__)
# No token here: the repeated-parameter check token routes make after authenticating runs first instead.
bp.before_request(refuse_repeated_query_parameters)


@bp.get("/healthz")
@documented(summary="Check that the process is up", tag="health", public=True, responses={200: ProbeSchema})
def healthz() -> Response:
    """Answer while the process runs, without touching the database."""
    return response(success({"status": "ok"}))


@bp.get("/readyz")
@documented(summary="Check that the database answers", tag="health", public=True,
            refusals=(DatabaseUnavailable,), responses={200: ProbeSchema, 503: "it did not answer a ping in time"})
def readyz() -> Response:
    """Answer 200 when the database answers a ping within the readiness deadline, else 503 (via the errors)."""
    database().ping(READINESS_DEADLINE_S)
    return response(success({"status": "ready"}))
