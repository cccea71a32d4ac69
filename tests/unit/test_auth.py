"""Bearer token verification and who may act for which doctor."""
import base64
import json
import time

import jwt
import pytest
from marshmallow import ValidationError

from app.http import auth
from app.http.answers import refusal_answer
from app.http.auth import Caller, TokenVerifier, acting_doctor
from app.http.refusals import NotAuthenticated
from app.service.refusals import MissingDoctorId, NotAllowedForDoctor
from config import ConfigError
from tests.conftest import SECRET, Clock, make_config, make_token


@pytest.fixture
def verifier():
    return TokenVerifier(make_config())


def unsigned(claims):
    """Return a token with `alg: none`."""
    part = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_a_good_token_names_its_subject(verifier):
    caller = verifier.verify("Bearer " + make_token("doc_1"))
    assert caller == Caller(subject="doc_1", is_admin=False)


def test_the_scheme_is_case_insensitive_and_admin_role_is_read(verifier):
    assert verifier.verify("bearer " + make_token("ops", roles=["admin", "x"])).is_admin is True


@pytest.mark.parametrize("header", [
    None, "", "Bearer ", "Token abc", "Bearer a.b.c",
    "Bearer " + unsigned({"sub": "doc", "exp": int(time.time()) + 60}),
    "Bearer " + make_token(ttl=-61),
    "Bearer " + make_token(sub=None),
    "Bearer " + make_token(sub=""),
    "Bearer " + jwt.encode({"sub": "doc"}, SECRET, algorithm="HS256"),
], ids=["none", "empty", "no-token", "other-scheme", "garbage", "alg-none", "expired", "no-sub", "empty-sub", "no-exp"])
def test_bad_tokens_are_not_authenticated(verifier, header):
    with pytest.raises(NotAuthenticated):
        verifier.verify(header)


def test_a_token_expired_within_the_leeway_is_accepted(verifier):
    assert verifier.verify("Bearer " + make_token("doc", ttl=-30)).subject == "doc"


def test_audience_and_issuer_are_checked_when_configured():
    verifier = TokenVerifier(make_config(JWT_AUDIENCE="clinic", JWT_ISSUER="https://id.example"))
    good = make_token("doc", aud="clinic", iss="https://id.example")
    assert verifier.verify("Bearer " + good).subject == "doc"
    for bad in (make_token("doc", aud="other", iss="https://id.example"), make_token("doc", aud="clinic")):
        with pytest.raises(NotAuthenticated):
            verifier.verify("Bearer " + bad)


def test_a_doctor_acts_only_for_themselves_and_an_admin_for_anyone():
    assert acting_doctor(Caller("doc", False), "doc") == "doc"
    assert acting_doctor(Caller("ops", True), "doc") == "doc"
    with pytest.raises(NotAllowedForDoctor):
        acting_doctor(Caller("doc", False), "other")
    for missing in (None, "", "  "):
        with pytest.raises(MissingDoctorId):
            acting_doctor(Caller("ops", True), missing)


def test_a_refused_token_carries_the_invalid_token_challenge_and_a_missing_one_plain_bearer(verifier):
    with pytest.raises(NotAuthenticated) as missing:
        verifier.verify(None)
    with pytest.raises(NotAuthenticated) as refused:
        verifier.verify("Bearer a.b.c")
    assert refusal_answer(missing.value).headers == {"WWW-Authenticate": "Bearer"}
    assert refusal_answer(refused.value).headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}


@pytest.mark.parametrize("sub", ["d" * 129, "doc tor", "doc\x00", "doc\n", "\xa0", "médecin", 42],
                         ids=["129", "space", "nul", "lf", "nbsp", "accent", "number"])
def test_a_subject_that_could_never_be_a_uid_is_not_authenticated(verifier, sub):
    token = jwt.encode({"sub": sub, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    with pytest.raises(NotAuthenticated, match="Invalid token"):
        verifier.verify("Bearer " + token)


def test_a_subject_of_128_printable_characters_is_a_caller(verifier):
    sub = "a!~" + "d" * 125
    assert verifier.verify("Bearer " + make_token(sub)).subject == sub


def timed(**claims):
    """Return a bearer header value for a token with exactly these time claims."""
    return "Bearer " + jwt.encode({"sub": "doc", **claims}, SECRET, algorithm="HS256")


def test_token_lifetime_is_bounded_by_the_configured_maximum():
    verifier = TokenVerifier(make_config(JWT_MAX_LIFETIME_SECONDS=600))
    now = int(time.time())
    assert verifier.verify(timed(iat=now, exp=now + 600)).subject == "doc"
    assert verifier.verify(timed(exp=now + 590)).subject == "doc"
    for too_long in (timed(iat=now, exp=now + 601), timed(exp=now + 700), timed(iat=now - 3600, exp=now + 60)):
        with pytest.raises(NotAuthenticated, match="Invalid token"):
            verifier.verify(too_long)


def test_the_default_maximum_lifetime_is_a_day(verifier):
    now = int(time.time())
    assert verifier.verify(timed(iat=now, exp=now + 86400)).subject == "doc"
    with pytest.raises(NotAuthenticated):
        verifier.verify(timed(iat=now, exp=now + 86401))


@pytest.mark.parametrize("claims", [
    {"auth_time": 120}, {"auth_time": "0"}, {"auth_time": True}, {"auth_time": None}, {"iat_text": True},
], ids=["future-sign-in", "text", "bool", "null", "iat-text"])
def test_a_sign_in_in_the_future_or_a_time_that_is_not_a_number_is_refused(verifier, claims):
    now = int(time.time())
    payload = {"iat": now, "exp": now + 600}
    if claims.pop("iat_text", False):
        payload["iat"] = str(now)
    payload.update({name: now + value if type(value) is int else value for name, value in claims.items()})
    with pytest.raises(NotAuthenticated, match="Invalid token"):
        verifier.verify(timed(**payload))


def test_a_sign_in_within_the_leeway_is_accepted(verifier):
    now = int(time.time())
    assert verifier.verify(timed(iat=now, exp=now + 600, auth_time=now + 59)).subject == "doc"
    assert verifier.verify(timed(iat=now, exp=now + 600, auth_time=now - 86400 * 30)).subject == "doc"


@pytest.mark.parametrize("value", ["0", "-5", "day"])
def test_a_maximum_lifetime_that_is_not_a_positive_integer_refuses_to_start(monkeypatch, value):
    monkeypatch.setenv("JWT_MAX_LIFETIME_SECONDS", value)
    with pytest.raises(ConfigError, match="JWT_MAX_LIFETIME_SECONDS"):
        make_config().validate()


def test_the_maximum_lifetime_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("JWT_MAX_LIFETIME_SECONDS", "3600")
    assert make_config().validate().JWT_MAX_LIFETIME_SECONDS == 3600
    monkeypatch.delenv("JWT_MAX_LIFETIME_SECONDS")
    assert make_config().validate().JWT_MAX_LIFETIME_SECONDS == 86400


@pytest.mark.parametrize("uid", ["doc tor", "médecin", "d" * 129, "doc\x00", "doc\x7f"])
def test_a_uid_outside_the_pattern_is_a_validation_error_even_for_an_admin(uid):
    with pytest.raises(ValidationError) as refused:
        acting_doctor(Caller("ops", True), uid)
    assert refused.value.messages == {"uid": ["Must be 1 to 128 printable ASCII characters without spaces."]}


def test_a_uid_of_only_unicode_or_control_whitespace_is_missing():
    for blank in ("\xa0", "\x1c", "\u2003", "\t"):
        with pytest.raises(MissingDoctorId):
            acting_doctor(Caller("ops", True), blank)


@pytest.fixture
def decodes(monkeypatch):
    """Count the tokens PyJWT decodes (verifies), letting each decode as it would."""
    counted = []
    decode = jwt.decode

    def counting(token, *args, **kwargs):
        counted.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", counting)
    return counted


def test_a_verified_token_is_taken_again_without_verifying_it_until_a_minute_passes(decodes):
    clock = Clock()
    verifier = TokenVerifier(make_config(), clock=clock)
    token = make_token("doc_1", roles=["admin"])
    assert [verifier.verify("Bearer " + token) for _ in range(3)] == [Caller("doc_1", True)] * 3
    assert len(decodes) == 1
    clock.advance(auth.VERIFIED_TOKEN_SECONDS - 1)
    verifier.verify("Bearer " + token)
    assert len(decodes) == 1
    clock.advance(1)
    assert verifier.verify("Bearer " + token) == Caller("doc_1", True)
    assert len(decodes) == 2


def test_a_verified_token_is_verified_again_once_its_exp_passes(verifier, decodes, monkeypatch):
    token = make_token("doc_1", ttl=5)
    verifier.verify("Bearer " + token)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    decodes.clear()
    monkeypatch.setattr(auth.time, "time", lambda: expires + auth.LEEWAY_SECONDS + 1)
    # Past its exp and the leeway, on the clock the verifier reads: verified again, by PyJWT's own clock here.
    verifier.verify("Bearer " + token)
    assert decodes == [token]


def test_a_bad_token_is_never_taken_as_verified(verifier, decodes):
    token = make_token("doc_1")[:-2] + "xx"
    for _ in range(2):
        with pytest.raises(NotAuthenticated):
            verifier.verify("Bearer " + token)
    assert len(decodes) == 2


def test_the_verified_tokens_kept_are_bounded_oldest_forgotten_first(verifier, decodes, monkeypatch):
    monkeypatch.setattr(auth, "VERIFIED_TOKENS_KEPT", 2)
    first, second, third = (make_token(f"doc_{n}") for n in range(3))
    for token in (first, second, third, third, second):
        verifier.verify("Bearer " + token)
    assert decodes == [first, second, third]
    verifier.verify("Bearer " + first)
    assert decodes == [first, second, third, first]


def test_a_token_longer_than_kept_ones_is_verified_each_time(verifier, decodes):
    token = make_token("doc_1", note="x" * auth.VERIFIED_TOKEN_MAX_LENGTH)
    verifier.verify("Bearer " + token)
    verifier.verify("Bearer " + token)
    assert len(decodes) == 2
