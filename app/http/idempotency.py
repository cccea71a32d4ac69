"""The Idempotency-Key header: a retried write gets the first answer again instead of running twice."""
import hashlib
import json
import logging
import re
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec

from flask import Response, g, request
from pymongo.errors import PyMongoError

from app.http.answers import refusal_answer, response
from app.http.refusals import (
    DatabaseUnavailable,
    IdempotencyKeyReused,
    IdempotentRequestInProgress,
    InvalidIdempotencyKey,
    is_refusal,
    status_of,
)
from app.http.request_work import database
from app.store.exceptions import KeyAlreadyUsed, KeyTakenOver
from app.store.idempotency_keys import HeldKey, IdempotencyStore

log = logging.getLogger("clinic.idempotency")
KEY = re.compile(r"^[\x20-\x7e]{1,255}\Z")
# A write view's parameters (its path ids), passed through as they came.
ViewParameters = ParamSpec("ViewParameters")


def idempotent(view: Callable[ViewParameters, Response]) -> Callable[ViewParameters, Response]:
    """Run a write view at most once per (doctor, Idempotency-Key), giving its kept answer again after."""
    # The view claims the key through web.unit_of_work once the request has passed its checks, and its unit of work
    # keeps the answer with its writes. What is left here: the answer kept before, and a refusal that rolled back.

    @wraps(view)
    def guarded(*args: ViewParameters.args, **kwargs: ViewParameters.kwargs) -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        if not KEY.match(key):
            raise InvalidIdempotencyKey()
        keyed = g.keyed_request = KeyedRequest(key)
        try:
            return view(*args, **kwargs)
        except KeyAlreadyUsed as before:
            return keyed.replay(before.record)
        except Exception as error:
            if keyed.held_key is None:
                raise  # refused before the key was claimed: the key stays free for the corrected retry
            return keyed.settle(error)

    return guarded


class KeyedRequest:
    """A write sent with an Idempotency-Key: the key, its claim once the request is valid, and its fingerprint."""

    def __init__(self, key: str) -> None:
        self._key = key
        self._fingerprint: str | None = None
        self._keys: IdempotencyStore | None = None
        self.held_key: HeldKey | None = None

    def claim(self, doctor_id: str) -> HeldKey:
        """Claim the key for this validated request (or raise KeyAlreadyUsed) and return it, held."""
        self._fingerprint = _fingerprint()
        self._keys = database().idempotency_keys()
        self.held_key = HeldKey(self._keys, self._keys.claim(doctor_id, self._key, self._fingerprint))
        return self.held_key

    def settle(self, error: Exception) -> Response:
        """Keep the answer of a refusal that rolled its work back and give it, or free the key after a failure."""
        held_key = self.held_key
        assert held_key is not None  # only a request that claimed its key is settled
        if not is_refusal(error) or status_of(error) >= 500:
            try:
                held_key.release()  # not an answer: the client may retry
            except PyMongoError as failure:
                # The key stays "running" until taken over as abandoned.
                log.error("idempotency key not released (%s)", type(failure).__name__)
            raise error
        answer = refusal_answer(error)
        try:
            held_key.keep(answer)
        except KeyTakenOver:
            # Another run took the key over as abandoned: its answer is the key's, not this refusal.
            return response(refusal_answer(IdempotentRequestInProgress()))
        except PyMongoError as failure:
            # Not kept, so not given: the retry that takes the key over runs again, and may be answered otherwise.
            log.error("idempotency key not settled (%s)", type(failure).__name__)
            return response(refusal_answer(DatabaseUnavailable()))
        return response(answer)

    def replay(self, record: dict[str, Any]) -> Response:
        """Answer with the kept answer, or refuse a key that is busy or was used for another request."""
        # claim() found the key used: it had taken the fingerprint and the store first.
        assert self._keys is not None and self._fingerprint is not None
        if not self._keys.same_request(record, self._fingerprint):
            raise IdempotencyKeyReused()
        if record["state"] != "done":
            raise IdempotentRequestInProgress()
        replayed = response(self._keys.answer_of(record))
        replayed.headers["Idempotent-Replayed"] = "true"
        return replayed


def _fingerprint() -> str:
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
