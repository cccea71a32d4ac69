"""The clinic patient-records service: an app factory and nothing that connects at import time."""
import json
import logging
import sys
from typing import Any, TextIO

from flask import Flask
from flask.json.provider import DefaultJSONProvider

from app import commands
from app.http import callers, error_handlers, rate_limits, request_input
from app.http.auth import TokenVerifier
from app.http.middleware import cors, redirects, request_log, response_headers
from app.http.middleware.body_deadline import BodyDeadline
from app.http.middleware.body_limit import MAX_BODY_BYTES, BodyLimit
from app.http.middleware.log_format import formatter_for
from app.store.db import ClinicDatabase, build_client
from config import Config


def create_app(config: Config | None = None) -> Flask:
    """Build the service from a Config (the environment's by default)."""
    config = (config or Config()).validate()
    _configure_logging(config.LOG_LEVEL, config.LOG_FORMAT)

    app = Flask(__name__)
    app.json = StorableJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    body_limited = BodyLimit(app.wsgi_app, MAX_BODY_BYTES)
    # Outermost: BodyLimit's read is timed too. Replacing wsgi_app is Flask's documented way in for WSGI middleware,
    # which mypy, reading the attribute as a method, does not allow.
    app.wsgi_app = BodyDeadline(body_limited, config.BODY_TIMEOUT_S)  # type: ignore[method-assign]
    app.url_map.converters["patient_id"] = request_input.PatientIdConverter

    client = config.MONGO_CLIENT or build_client(config)
    database = ClinicDatabase(client, config.MONGODB_DB, config.MONGODB_TIMEOUT_MS, config.ALLOW_STANDALONE,
                        master_key=config.MASTER_KEY, key_vault_client=config.KEY_VAULT_CLIENT,
                        client_bulk_write=config.MONGODB_CLIENT_BULK_WRITE)
    if not config.FIELD_ENCRYPTION:
        logging.getLogger("clinic").warning(
            "FIELD_ENCRYPTION=off: patient values are stored unencrypted; for development only")
    # A master key that does not open the data key is a setting to fix, not an outage to wait out: it stops here.
    database.try_prepare()
    app.extensions["clinic.db"] = database
    app.extensions["clinic.tokens"] = TokenVerifier(config)
    app.extensions["clinic.rate_limits"] = rate_limits.build(config, client)

    from app.http.routes import appointments, audit_trail, documentation, fhir, health, patients

    app.register_blueprint(health.bp)
    app.register_blueprint(patients.bp)
    app.register_blueprint(appointments.bp)
    app.register_blueprint(audit_trail.bp)
    app.register_blueprint(fhir.bp)
    app.register_blueprint(documentation.bp)
    app.register_blueprint(documentation.swagger_ui)
    error_handlers.register(app)
    request_log.register(app)
    app.after_request(response_headers.forbid_storing)
    app.after_request(response_headers.forbid_sniffing)
    cors.register(app, config.CORS_ORIGINS)
    # After CORS's hook: a browser's preflight is answered 200 even on a path that redirects.
    app.before_request(redirects.redirect_by_path)
    # Last: a request redirected, preflighted or routed nowhere is answered without a token.
    app.before_request(callers.authenticate)
    commands.register(app)
    return app


class StorableJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading as malformed what Python parses but the service cannot handle or store."""

    sort_keys = False  # keep the documented field order
    compact = True

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse JSON text, refusing a key given twice, nesting deeper than the parser goes and lone surrogates."""
        kwargs.setdefault("object_pairs_hook", _object_without_repeated_keys)
        try:
            value = super().loads(s, **kwargs)
            # BSON strings are UTF-8: a lone surrogate would fail at insert time, as a 500, after validation.
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except (RecursionError, UnicodeEncodeError) as error:
            # A ValueError is what get_json(silent=True) reads as malformed, so it answers 400 like any bad JSON.
            raise ValueError("JSON nested too deeply or not valid Unicode") from error
        return value


def _object_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing one that gives a key twice."""
    value = dict(pairs)
    if len(value) != len(pairs):
        # A gateway reading the first value and the service the last must never disagree: malformed, so 400.
        raise ValueError("JSON object with a repeated key")
    return value


class _ServiceLogHandler(logging.StreamHandler[TextIO]):
    """The handler the service logs through, marked `clinic` so that the next app built finds it instead of adding
    another."""

    clinic = True


def _configure_logging(level: str, log_format: str) -> None:
    """Send the service's logs to stderr once, in the given format, and keep the driver's command logs off."""
    logger = logging.getLogger("clinic")
    logger.setLevel(level)
    handler = next((h for h in logger.handlers if getattr(h, "clinic", False)), None)
    if handler is None:
        handler = _ServiceLogHandler(sys.stderr)
        logger.addHandler(handler)
    # Set on every build, not only the first: the latest app's LOG_FORMAT is the one in force.
    handler.setFormatter(formatter_for(log_format))
    # pymongo logs whole commands, patient documents included, at DEBUG: never let them through.
    logging.getLogger("pymongo").setLevel(logging.WARNING)
