"""The OpenAPI document at /openapi.json and Swagger UI at /docs, served from the package's own assets."""
from flask import Blueprint, current_app, jsonify
from flask_swagger_ui import get_swaggerui_blueprint

from app.http.api_docs import documented
from app.http.openapi import build_spec
from app.http.web import refuse_repeated_query_parameters

bp = Blueprint("docs", __name__)
# No token here: the repeated-parameter check token routes make after authenticating runs first instead.
bp.before_request(refuse_repeated_query_parameters)

swagger_ui = get_swaggerui_blueprint(
    "/docs",
    "/openapi.json",
    # No online validator: its badge would send the document's URL to a third-party host on every visit.
    config={"app_name": "Clinic patient records", "validatorUrl": None},
)

OPENAPI_RESPONSE = {
    "description": "The OpenAPI 3.1 document of this service",
    "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}},
    "content": {"application/json": {"schema": {"type": "object"}}},
}


@bp.get("/openapi.json")
@documented(summary="Get this OpenAPI document", tag="docs", public=True, responses={200: OPENAPI_RESPONSE})
def openapi_document():
    """Answer the service's OpenAPI document."""
    return jsonify(build_spec(current_app))
