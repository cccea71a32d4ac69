"""Bearer token verification and who may act for which doctor."""
import base64
import json
import time

import jwt
import pytest

from app.auth import Caller, TokenVerifier, acting_doctor
from app.exceptions import MissingDoctorId, NotAllowedForDoctor, NotAuthenticated
from tests.conftest import SECRET, make_config, make_token


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
