"""The Idempotency-Key header: a retried write gets the first answer again instead of running twice."""
import hashlib
import json
import logging
import re
from functools import wraps

from flask import current_app, g, jsonify, make_response, request
from pymongo.errors import PyMongoError

from app.http.web import current_caller, database
from app.service.refusals import (
    DatabaseUnavailable,
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
    InvalidIdempotencyKey,
    Refusal,
)
from app.store.errors import AnsweredBefore, KeyStillClaimed
from app.store.idempotency_keys import IdempotencyStore

log = logging.getLogger("clinic.idempotency")
KEY = re.compile(r"^[\x20-\x7e]{1,255}\Z")
# Headers that are part of the answer, stored and replayed with it.
REPLAYED_HEADERS = ("Location", "ETag")


def idempotent(view):
    """Run a write view at most once per (doctor, Idempotency-Key), replaying its stored answer after."""
    # The key is claimed only once the request has passed its checks (web.unit_of_work), so a request refused
    # before any work (400, 401, 403) leaves the key free for the corrected retry.

    @wraps(view)
    def guarded(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        current_caller()  # an unauthenticated caller learns nothing about keys
        if not KEY.match(key):
            raise InvalidIdempotencyKey()
        keyed = g.keyed_request = KeyedRequest(database(), key)
        try:
            response = make_response(view(*args, **kwargs))
        except AnsweredBefore as before:
            return keyed.replay(before.record)
        except Exception as error:  # noqa: BLE001 - every outcome is answered, and remembered or released
            response = make_response(current_app.handle_user_exception(error))
        return keyed.settle(response)

    return guarded


class KeyedRequest:
    """A write sent with an Idempotency-Key: claimed once valid, its answer stored with its work (atomic phases)."""

    def __init__(self, database, key):
        self._database = database
        self._store = None
        self._key = key
        self._fingerprint = None
        self._claim = None
        self._shape = None
        # Set by the unit of work once the answer committed together with the work.
        self.stored = False

    def claim(self, doctor_id, shape):
        """Claim the key for this validated request (or raise AnsweredBefore); shape(result) is its success response."""
        self._fingerprint = _fingerprint()
        # Built once the database is prepared (the unit of work was), so that it knows how values are stored.
        self._store = IdempotencyStore(self._database.db, self._database.values)
        try:
            self._claim = self._store.claim(doctor_id, self._key, self._fingerprint)
        except KeyStillClaimed:
            raise IdempotentRequestInProgress() from None
        self._shape = shape
        return self

    def write(self, records, outcome):
        """Store the answer to the unit of work's outcome in its own session, so both commit or neither."""
        response = make_response(current_app.handle_user_exception(outcome) if isinstance(outcome, Refusal)
                                 else self._shape(outcome))
        if not self._store.complete(self._claim, *_answer(response), writes=records.writes):
            # Another run took the key over as abandoned: this run's work must not commit beside its.
            raise IdempotentRequestInProgress()

    def settle(self, response):
        """Store the answer of a refusal that rolled its work back, or free the key after a server error; return
        the response to send."""
        if self._claim is None or self.stored:
            return response
        refused = response.status_code < 500
        try:
            if not refused:
                self._store.release(self._claim)  # not an answer: the client may retry
            elif not self._store.complete(self._claim, *_answer(response)):
                # Another run took the key over as abandoned: its answer is the key's, not this refusal.
                return make_response(current_app.handle_user_exception(IdempotentRequestInProgress()))
        except PyMongoError as error:
            # The key stays "running" until taken over as abandoned.
            log.error("idempotency key not settled (%s)", type(error).__name__)
            if refused:
                # Not kept, so not given: the retry that takes the key over runs again, and may be answered otherwise.
                return make_response(current_app.handle_user_exception(DatabaseUnavailable()))
        return response

    def replay(self, record):
        """Answer with the stored response, or refuse a key that is busy or was used for another request."""
        if not self._store.same_request(record, self._fingerprint):
            raise IdempotencyKeyReused()
        if record["state"] != "done":
            raise IdempotentRequestInProgress()
        response = make_response(jsonify(self._store.answer_body(record)), record["status"])
        response.headers.update(record.get("headers") or {})
        response.headers["Idempotent-Replayed"] = "true"
        return response


def _answer(response):
    """Return what is stored of a response to replay it: status, body and the headers that belong to it."""
    headers = {name: response.headers[name] for name in REPLAYED_HEADERS if name in response.headers}
    return response.status_code, response.get_json(), headers


def _fingerprint():
    """Hash what the request means: method, path, query parameters in any order, and the JSON body in any layout."""
    body = request.get_json(silent=True)
    content = (request.get_data() if body is None
               else json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    query = json.dumps(sorted(request.args.items(multi=True)), ensure_ascii=False).encode()
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), query, content):
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two requests hash alike by shifting bytes
        digest.update(part)
    return digest.hexdigest()
