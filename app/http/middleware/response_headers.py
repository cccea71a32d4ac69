"""Headers every response carries, whatever answered it."""
from flask import Response


def forbid_storing(response: Response) -> Response:
    """Mark a response as never to be kept by a browser or a proxy cache: it may carry patient data."""
    response.headers["Cache-Control"] = "no-store"
    return response


def forbid_sniffing(response: Response) -> Response:
    """Mark a response as to be read only as its Content-Type says: a browser must not guess HTML out of JSON."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
