"""Redirects the URL map asks for (/docs to /docs/, /patients//x to /patients/x), answered with a path."""
from urllib.parse import urlsplit

from flask import redirect, request
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Response


def redirect_by_path() -> Response | None:
    """Answer a redirect to a path on this service, never to the Host the request named."""
    # Werkzeug builds the target from the Host header, so `Host: evil.example` sent the browser to evil.example.
    wanted = request.routing_exception
    if not isinstance(wanted, RequestRedirect):
        return None
    target = urlsplit(wanted.new_url)
    # One leading slash: `//host/...` would be read as another host again.
    path = "/" + target.path.lstrip("/")
    return redirect(f"{path}?{target.query}" if target.query else path, wanted.code)
