"""The Idempotency-Key header: a retried write gets the first answer again instead of running twice."""
import hashlib
import re
from functools import wraps

from flask import current_app, jsonify, make_response, request

from app.exceptions import IdempotencyKeyReused, IdempotentRequestInProgress, InvalidIdempotencyKey
from app.idempotency_store import IdempotencyStore
from app.web import current_caller, database, is_blank

KEY = re.compile(r"^[\x20-\x7e]{1,255}\Z")


def idempotent(view):
    """Run a write view at most once per (doctor, Idempotency-Key), replaying its stored answer after."""

    @wraps(view)
    def guarded(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        caller = current_caller()
        if not KEY.match(key):
            raise InvalidIdempotencyKey()
        doctor_id = request.args.get("uid")
        if is_blank(doctor_id) or not caller.may_act_for(doctor_id):
            # The view refuses these before writing; a key must not be claimed in a space the caller may not use.
            return view(*args, **kwargs)
        store = IdempotencyStore(database().db)
        fingerprint = _fingerprint()
        claim = store.claim(doctor_id, key, fingerprint)
        if claim.existing is not None:
            return _replay(claim.existing, fingerprint)
        response = _run(view, args, kwargs)
        if response.status_code >= 500:
            store.release(claim.record_id)  # a server error is not an answer: the client may retry
        else:
            store.complete(claim.record_id, response.status_code, response.get_json())
        return response

    return guarded


def _fingerprint():
    """Hash what makes a request the same request: method, route, query and body bytes."""
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.query_string, request.get_data(cache=True)):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _run(view, args, kwargs):
    """Call the view and turn a raised error into the response its handler gives, so it can be stored."""
    try:
        return make_response(view(*args, **kwargs))
    except Exception as error:  # noqa: BLE001 - every outcome is answered and remembered alike
        return make_response(current_app.handle_user_exception(error))


def _replay(record, fingerprint):
    """Answer with the stored response, or refuse a key that is busy or was used for another request."""
    if record["fingerprint"] != fingerprint:
        raise IdempotencyKeyReused()
    if record["state"] != "done":
        raise IdempotentRequestInProgress()
    response = make_response(jsonify(record["body"]), record["status"])
    response.headers["Idempotent-Replayed"] = "true"
    return response
