"""The OpenAPI document at /openapi.json and Swagger UI at /docs, served from the package's own assets."""
import os

import flask_swagger_ui
from flask import Blueprint, Response, abort, current_app, jsonify, send_from_directory

from app.http.documented import documented, open_to_all
from app.http.openapi import build_spec
from app.http.request_input import refuse_repeated_query_parameters

bp = Blueprint("docs", __name__)
# No token here: the repeated-parameter check token routes make after authenticating runs first instead.
bp.before_request(refuse_repeated_query_parameters)

# The page and its initializer are files of ours, not flask-swagger-ui's template: that one put the Host header
# into the page (its OAuth2 redirect URL) and ran an inline script, which the page's policy would refuse.
PAGE_FOLDER = os.path.join(os.path.dirname(__file__), "documentation_page")
OWN_FILES = ("swagger-initializer.js",)
SWAGGER_UI_FOLDER = os.path.join(os.path.dirname(flask_swagger_ui.__file__), "dist")
SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "index.css",
                    "favicon-32x32.png", "favicon-16x16.png")
with open(os.path.join(PAGE_FOLDER, "index.html"), encoding="utf-8") as page_file:
    PAGE = page_file.read()

# The service's own files only: no inline script or style, nothing fetched from another host, no form posted
# anywhere, and no other site may frame the page. `data:` images are the icons swagger-ui.css draws inline; the
# hash is the one inline style there is, the <style> of the Swagger logo in swagger-ui-standalone-preset.js.
SWAGGER_LOGO_STYLE = "'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='"
PAGE_POLICY = (f"default-src 'none'; script-src 'self'; style-src 'self' {SWAGGER_LOGO_STYLE}; img-src 'self' data:; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

swagger_ui = Blueprint("swagger_ui", __name__, url_prefix="/docs")


@swagger_ui.after_request
def confine_page(response: Response) -> Response:
    """Let the docs page run only the service's own files, and never inside another site's frame."""
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    return response


@swagger_ui.get("/")
@open_to_all
def page() -> Response:
    """Answer the Swagger UI page, the same whatever Host the request names."""
    return Response(PAGE, mimetype="text/html")


@swagger_ui.get("/<asset>")
@open_to_all
def asset(asset: str) -> Response:
    """Answer one of the files the page loads; anything else is a 404."""
    if asset in OWN_FILES:
        return send_from_directory(PAGE_FOLDER, asset)
    if asset in SWAGGER_UI_FILES:
        return send_from_directory(SWAGGER_UI_FOLDER, asset)
    abort(404)


OPENAPI_RESPONSE = {
    "description": "The OpenAPI 3.1 document of this service",
    "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}},
    "content": {"application/json": {"schema": {"type": "object"}}},
}


@bp.get("/openapi.json")
@documented(summary="Get this OpenAPI document", tag="docs", public=True, responses={200: OPENAPI_RESPONSE})
def openapi_document() -> Response:
    """Answer the service's OpenAPI document."""
    return jsonify(build_spec(current_app))
