"""RS256 tokens as production issues them: keys from a JWKS URL (as Firebase Authentication publishes them) or a PEM."""
import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import mongomock
import pytest
from bson import ObjectId
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from app import create_app
from app.http import auth
from app.http.auth import Caller, TokenVerifier
from app.http.refusals import NotAuthenticated, TokenKeysUnavailable
from tests.conftest import Clock, jane, make_config
from tests.jwks_server import JwksServer, SigningKey

AUDIENCE = "clinic-project"
ISSUER = "https://securetoken.google.com/clinic-project"
# How long a fetch may take before the client gives up on a silent endpoint, in the tests that wait for that.
QUICK_TIMEOUT = 0.2


@pytest.fixture(scope="module")
def key():
    return SigningKey("key-2026-01")


@pytest.fixture(scope="module")
def next_key():
    return SigningKey("key-2026-02")


@pytest.fixture(autouse=True)
def quick_fetches(monkeypatch):
    """Give up on a silent endpoint after a second; the cache and refresh limits keep their production values."""
    monkeypatch.setattr(auth, "JWKS_TIMEOUT_SECONDS", 1)


@pytest.fixture
def short_timeout(monkeypatch):
    """Give up on a silent endpoint quickly; list it before the fixtures that build verifiers."""
    monkeypatch.setattr(auth, "JWKS_TIMEOUT_SECONDS", QUICK_TIMEOUT)


@pytest.fixture
def clock():
    """A clock for the verifier's key cache, at rest until the test moves it."""
    return Clock()


@pytest.fixture
def jwks(key):
    """A JWKS endpoint publishing `key`."""
    server = JwksServer(key).start()
    yield server
    server.stop()


@pytest.fixture
def verifier(jwks, clock):
    """A verifier reading its keys from the `jwks` endpoint, its cache timed by `clock`."""
    return jwks_verifier(jwks, clock)


def jwks_verifier(server, clock=time.monotonic, **settings):
    """Return a verifier reading its keys from the server's JWKS URL, its cache timed by clock."""
    return TokenVerifier(make_config(JWT_JWKS_URL=server.url, JWT_SECRET=None, **settings), clock=clock)


def pem_verifier(key, **settings):
    """Return a verifier holding the key's public PEM, as JWT_PUBLIC_KEY would."""
    return TokenVerifier(make_config(JWT_PUBLIC_KEY=key.public_pem().decode(), JWT_SECRET=None, **settings))


def b64url(data):
    """Encode bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header, sign=lambda signing_input: b"", sub="doctor_a"):
    """Return a token with exactly this header, fresh claims for sub, and the signature `sign` computes."""
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + 3600}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    return signing_input + "." + b64url(sign(signing_input.encode()))


def hs256_signed_with_public_key(key):
    """Return an HS256 token whose HMAC secret is the RSA public key's PEM (PyJWT refuses to mint one)."""
    secret = key.public_pem()
    return hand_made({"alg": "HS256", "typ": "JWT", "kid": key.kid},
                     lambda signing_input: hmac.new(secret, signing_input, hashlib.sha256).digest())


def rs256_signed_by(key):
    """Return a signer for hand_made that signs as RS256 with the key."""
    return lambda signing_input: key.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def refuses(verifier, token):
    """Tell whether the verifier refuses the token as not authenticated."""
    try:
        verifier.verify("Bearer " + token)
    except NotAuthenticated:
        return True
    return False


def test_a_token_signed_with_a_published_key_names_its_subject(verifier, jwks, key):
    assert verifier.verify("Bearer " + key.token("doc_1")) == Caller(subject="doc_1", is_admin=False)
    assert verifier.verify("Bearer " + key.token("ops_1", roles=["admin"])) == Caller("ops_1", is_admin=True)
    assert jwks.requests == 1


def test_twenty_verifications_fetch_the_key_set_once(verifier, jwks, key):
    for number in range(20):
        assert verifier.verify("Bearer " + key.token(f"doc_{number}")).subject == f"doc_{number}"
    assert jwks.requests == 1


def test_a_kid_the_key_set_lacks_is_not_authenticated(verifier, jwks, key, next_key):
    assert refuses(verifier, next_key.token())
    # The published kid on a token another key signed: the kid is found, the signature is not good.
    assert refuses(verifier, next_key.token(kid=key.kid))
    assert jwks.requests == 1


@pytest.mark.parametrize("header", [
    {"alg": "RS256", "typ": "JWT"},
    {"alg": "RS256", "kid": ""},
    {"alg": "RS256", "kid": ["key-2026-01"]},
], ids=["no-kid", "empty-kid", "kid-not-a-string"])
def test_a_token_without_a_usable_kid_is_refused_without_asking_the_endpoint(verifier, jwks, key, header):
    token = hand_made(header, rs256_signed_by(key))
    assert refuses(verifier, token)
    assert jwks.requests == 0


def test_a_hand_made_rs256_token_is_accepted_so_the_kid_tests_above_can_fail(verifier, key):
    token = hand_made({"alg": "RS256", "kid": key.kid}, rs256_signed_by(key))
    assert verifier.verify("Bearer " + token).subject == "doctor_a"


def test_a_rotated_key_is_picked_up_by_the_same_verifier_with_one_refetch(verifier, clock, jwks, key, next_key):
    assert verifier.verify("Bearer " + key.token("doc_1")).subject == "doc_1"
    jwks.keys = [next_key]
    clock.advance(auth.JWKS_REFRESH_COOLDOWN_SECONDS)
    assert verifier.verify("Bearer " + next_key.token("doc_2")).subject == "doc_2"
    assert verifier.verify("Bearer " + next_key.token("doc_3")).subject == "doc_3"
    assert jwks.requests == 2
    # The refetched set no longer holds the old key, and the cooldown keeps the old kid from fetching again.
    assert refuses(verifier, key.token("doc_1"))
    assert jwks.requests == 2


def test_a_new_kid_within_the_refresh_cooldown_waits_for_it(verifier, clock, jwks, key, next_key):
    verifier.verify("Bearer " + key.token())
    jwks.keys = [key, next_key]
    assert refuses(verifier, next_key.token())
    clock.advance(auth.JWKS_REFRESH_COOLDOWN_SECONDS - 1)
    assert refuses(verifier, next_key.token())
    assert jwks.requests == 1
    clock.advance(1)
    assert verifier.verify("Bearer " + next_key.token("doc_2")).subject == "doc_2"
    assert jwks.requests == 2


def test_tokens_with_random_unknown_kids_cause_at_most_one_refetch(verifier, clock, jwks, key):
    verifier.verify("Bearer " + key.token())
    clock.advance(auth.JWKS_REFRESH_COOLDOWN_SECONDS)
    for _ in range(10):
        assert refuses(verifier, key.token(kid=uuid.uuid4().hex))
    assert jwks.requests == 2


def test_unknown_kids_at_production_settings_cause_no_refetch_right_after_a_fetch(verifier, jwks, key):
    verifier.verify("Bearer " + key.token())
    for _ in range(10):
        assert refuses(verifier, key.token(kid=uuid.uuid4().hex))
    assert jwks.requests == 1


def test_a_withdrawn_key_is_refused_once_the_cached_key_set_expires(verifier, clock, jwks, key, next_key):
    assert verifier.verify("Bearer " + key.token()).subject == "doctor_a"
    jwks.keys = [next_key]
    assert verifier.verify("Bearer " + key.token()).subject == "doctor_a"
    clock.advance(auth.JWKS_CACHE_SECONDS - 1)
    assert verifier.verify("Bearer " + key.token()).subject == "doctor_a"
    assert jwks.requests == 1
    clock.advance(2)
    assert refuses(verifier, key.token())
    assert jwks.requests == 2


@pytest.mark.parametrize("mode", ["jwks", "pem"])
def test_hs256_signed_with_the_rsa_public_key_is_refused(jwks, key, mode):
    verifier = jwks_verifier(jwks) if mode == "jwks" else pem_verifier(key)
    assert verifier.verify("Bearer " + key.token("doc_1")).subject == "doc_1"
    assert refuses(verifier, hs256_signed_with_public_key(key))


@pytest.mark.parametrize("mode", ["jwks", "pem"])
@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(jwks, key, mode, alg):
    verifier = jwks_verifier(jwks) if mode == "jwks" else pem_verifier(key)
    assert refuses(verifier, hand_made({"alg": alg, "typ": "JWT", "kid": key.kid}))


@pytest.mark.parametrize("mode", ["jwks", "pem"])
def test_audience_and_issuer_are_checked_when_configured(jwks, key, mode):
    settings = dict(JWT_AUDIENCE=AUDIENCE, JWT_ISSUER=ISSUER)
    verifier = jwks_verifier(jwks, **settings) if mode == "jwks" else pem_verifier(key, **settings)
    assert verifier.verify("Bearer " + key.token("doc_1", aud=AUDIENCE, iss=ISSUER)).subject == "doc_1"
    for claims in (dict(aud="other-project", iss=ISSUER), dict(aud=AUDIENCE, iss="https://evil.example"),
                   dict(iss=ISSUER), dict(aud=AUDIENCE)):
        assert refuses(verifier, key.token("doc_1", **claims)), claims


def test_a_kid_that_names_a_key_of_another_type_is_refused(jwks, key):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = {**jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "ec-1", "use": "sig"}
    jwks.keys = [key, ec_jwk]
    verifier = jwks_verifier(jwks)
    assert refuses(verifier, key.token(kid="ec-1"))
    now = int(time.time())
    assert refuses(verifier, jwt.encode({"sub": "doc", "exp": now + 60}, ec_key, "ES256", headers={"kid": "ec-1"}))


def stalled(server):
    """Make the endpoint answer only after the client has given up."""
    server.stall_seconds = 5


@pytest.mark.parametrize("outage", [
    lambda server: setattr(server, "status", 500),
    lambda server: setattr(server, "status", 404),
    lambda server: server.stop(),
    stalled,
    lambda server: setattr(server, "body", b"<html>Service Unavailable</html>"),
    lambda server: setattr(server, "body", b'["not", "a", "key", "set"]'),
    lambda server: setattr(server, "body", b'{"keys": []}'),
    lambda server: setattr(server, "body", b'{"keys": [{"kty": "unknown", "kid": "x"}]}'),
], ids=["http-500", "http-404", "connection-refused", "timeout", "html", "json-array", "no-keys", "no-usable-keys"])
def test_a_key_set_that_cannot_be_fetched_makes_keys_unavailable(short_timeout, jwks, key, outage):
    verifier = jwks_verifier(jwks)
    outage(jwks)
    started = time.monotonic()
    with pytest.raises(TokenKeysUnavailable):
        verifier.verify("Bearer " + key.token())
    assert time.monotonic() - started < 2


def test_a_failed_fetch_is_not_retried_until_the_retry_delay_passes(verifier, clock, jwks, key):
    jwks.status = 500
    for _ in range(10):
        with pytest.raises(TokenKeysUnavailable):
            verifier.verify("Bearer " + key.token())
    assert jwks.requests == 1
    jwks.status = 200
    clock.advance(auth.JWKS_RETRY_SECONDS - 1)
    with pytest.raises(TokenKeysUnavailable):
        verifier.verify("Bearer " + key.token())
    assert jwks.requests == 1
    clock.advance(1)
    assert verifier.verify("Bearer " + key.token("doc_1")).subject == "doc_1"
    assert jwks.requests == 2


def test_during_an_outage_cached_keys_still_verify_and_unknown_kids_fetch_once(verifier, clock, jwks, key):
    verifier.verify("Bearer " + key.token())
    jwks.status = 500
    clock.advance(auth.JWKS_REFRESH_COOLDOWN_SECONDS)
    for _ in range(10):
        with pytest.raises(TokenKeysUnavailable):
            verifier.verify("Bearer " + key.token(kid=uuid.uuid4().hex))
        assert verifier.verify("Bearer " + key.token("doc_1")).subject == "doc_1"
    assert jwks.requests == 2


# Through the HTTP app, as a doctor's frontend calls it.

DB_NAME = "clinic_jwks"


@pytest.fixture
def mongo_client():
    return mongomock.MongoClient(tz_aware=True)


@pytest.fixture
def http(jwks, mongo_client):
    """A test client for the service verifying tokens against the `jwks` endpoint."""
    app = create_app(make_config(MONGO_CLIENT=mongo_client, MONGODB_DB=DB_NAME, JWT_JWKS_URL=jwks.url,
                                 JWT_SECRET=None))
    return app.test_client()


@pytest.fixture
def db(mongo_client):
    return mongo_client[DB_NAME]


def authorized(token):
    """Return headers carrying the token."""
    return {"Authorization": "Bearer " + token}


def test_over_http_a_published_key_token_lists_the_doctors_appointments(http, db, jwks, key):
    db.appointments.insert_one({"doctor_id": "doctor_a", "patient_id": None})
    db.appointments.insert_one({"doctor_id": "doctor_b", "patient_id": None})
    for _ in range(3):
        response = http.get("/appointments?uid=doctor_a", headers=authorized(key.token("doctor_a")))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["success"] is True
        assert [item["doctor_id"] for item in body["data"]] == ["doctor_a"]
    assert jwks.requests == 1


@pytest.mark.parametrize("token", [
    lambda key, next_key: next_key.token(),
    lambda key, next_key: hs256_signed_with_public_key(key),
    lambda key, next_key: hand_made({"alg": "none", "kid": key.kid}),
    lambda key, next_key: key.token(ttl=-3600),
], ids=["unknown-kid", "hs256-with-public-key", "alg-none", "expired"])
def test_over_http_bad_tokens_answer_401_and_write_nothing(http, db, key, next_key, token):
    appointment_id = str(db.appointments.insert_one({"doctor_id": "doctor_a", "patient_id": None}).inserted_id)
    response = http.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id),
                         headers=authorized(token(key, next_key)))
    assert response.status_code == 401
    assert response.get_json()["success"] is False
    assert response.get_json()["error"] in ("Invalid token", "Token expired")
    assert db.patients.count_documents({}) == 0


@pytest.mark.parametrize("outage", [
    lambda server: setattr(server, "status", 500),
    lambda server: server.stop(),
    stalled,
], ids=["http-500", "connection-refused", "timeout"])
def test_over_http_an_unreachable_key_set_answers_503_in_the_envelope(short_timeout, http, jwks, key, outage):
    outage(jwks)
    response = http.get("/appointments?uid=doctor_a", headers=authorized(key.token("doctor_a")))
    assert response.status_code == 503
    assert response.get_json() == {"success": False, "error": "Token signing keys unavailable"}


def test_over_http_a_token_for_another_doctor_is_forbidden_and_writes_nothing(http, db, key):
    appointment_id = str(db.appointments.insert_one({"doctor_id": "doctor_b", "patient_id": None}).inserted_id)
    response = http.post("/patients/add_and_link?uid=doctor_b", json=jane(appointment_id),
                         headers=authorized(key.token("doctor_a")))
    assert response.status_code == 403
    assert response.get_json() == {"success": False, "error": "Token does not allow acting for this doctor"}
    assert db.patients.count_documents({}) == 0
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is None


def test_over_http_an_admin_token_acts_for_any_doctor(http, db, key):
    appointment_id = str(db.appointments.insert_one({"doctor_id": "doctor_b", "patient_id": None}).inserted_id)
    response = http.post("/patients/add_and_link?uid=doctor_b", json=jane(appointment_id),
                         headers=authorized(key.token("ops_1", roles=["admin"])))
    assert response.status_code == 201, response.get_json()
    patient = response.get_json()["data"]
    assert patient["doctor_id"] == "doctor_b"
    stored = db.appointments.find_one({"_id": ObjectId(appointment_id)})
    assert str(stored["patient_id"]) == patient["_id"]
    assert db.patients.count_documents({"doctor_id": "doctor_b"}) == 1
