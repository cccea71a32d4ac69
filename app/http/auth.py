"""Bearer tokens: who is calling, and for which doctor they may act."""
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.types import Options
from marshmallow import ValidationError

from app.http.refusals import MissingBearerToken, NotAuthenticated, TokenKeysUnavailable
from app.service.refusals import MissingDoctorId, NotAllowedForDoctor
from app.service.schemas import DOCTOR_UID, UID_RULE
from config import Config, rsa_public_key

# Never more than a minute of clock skew between the token issuer and us.
LEEWAY_SECONDS = 60
# The JWKS settings are read when a TokenVerifier is built: tests shorten the timeout, and move a clock of their
# own past the others.
JWKS_CACHE_SECONDS = 300
JWKS_TIMEOUT_SECONDS = 5
# A kid the cached key set lacks (a rotation) refetches the set at most this often, so tokens with made-up
# kids cannot turn each request into a request to the identity provider.
JWKS_REFRESH_COOLDOWN_SECONDS = 30
# After a failed fetch, answer 503 without asking again for this long.
JWKS_RETRY_SECONDS = 5
# A token verified once is taken again without verifying its signature and claims for at most this long: the same
# bytes verify the same way until their exp passes or their key set is fetched again, and an entry outlives neither.
# Verifying was the request's largest step after the database's.
VERIFIED_TOKEN_SECONDS = 60
# The most tokens kept verified at once (oldest forgotten first), and the longest kept: memory stays bounded.
VERIFIED_TOKENS_KEPT = 1024
VERIFIED_TOKEN_MAX_LENGTH = 4096


class _IdentityProviderKeys:
    """The identity provider's JWKS, cached; every way of not getting a usable key set is a connection error.

    Every wait is measured on `clock` (time.monotonic unless a test hands in one it moves itself).
    """

    def __init__(self, url: str, clock: Callable[[], float] = time.monotonic) -> None:
        # PyJWKClient only fetches (http(s) only, no redirects, the timeout); the cache is kept here, whole: its
        # per-kid cache never expires, so a key withdrawn from the JWKS would stay trusted.
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=JWKS_TIMEOUT_SECONDS)
        self._clock = clock
        self._lifespan = JWKS_CACHE_SECONDS
        self._cooldown = JWKS_REFRESH_COOLDOWN_SECONDS
        self._retry_seconds = JWKS_RETRY_SECONDS
        self._keys: dict[str, jwt.PyJWK] | None = None  # of the last key set fetched, its signing keys only
        self.fetches = 0  # key sets fetched so far: a token verified under an earlier one is verified again
        self._fetched_at = 0.0
        self._failed_at: float | None = None
        # One fetch at a time: requests waiting on a fetch then read the set it brought.
        self._lock = threading.Lock()

    def get_signing_key(self, kid: str) -> jwt.PyJWK:
        """Return the published signing key under kid, refetching an expired set, and a set lacking the kid
        (a rotation) at most once per cooldown; PyJWKClientError when the set has no such key."""
        with self._lock:
            if self._keys is None or self._clock() > self._fetched_at + self._lifespan:
                self._fetch()
            elif kid not in self._keys and self._clock() - self._fetched_at >= self._cooldown:
                self._fetch()
            key = self._keys.get(kid) if self._keys is not None else None
        if key is None:
            raise jwt.PyJWKClientError(f"no signing key under kid {kid!r}")
        return key

    def _fetch(self) -> None:
        """Fetch and keep the key set, raising PyJWKClientConnectionError for anything but a usable one."""
        # Retried only after a delay: during an outage each unknown kid, and once the cache expires each
        # request, would otherwise wait out its own fetch, one at a time under the lock.
        if self._failed_at is not None and self._clock() - self._failed_at < self._retry_seconds:
            raise jwt.PyJWKClientConnectionError("the last JWKS fetch failed; not retrying yet")
        try:
            key_set = jwt.PyJWKSet.from_dict(self._client.fetch_data())
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, OSError, ValueError) as error:
            # PyJWT wraps only transport errors; a 200 carrying HTML, a non-object or no usable keys would
            # escape as ValueError, PyJWKClientError or PyJWKSetError and read as a bad token or a 500.
            self._failed_at = self._clock()
            raise jwt.PyJWKClientConnectionError(f"JWKS fetch failed ({type(error).__name__})") from error
        keys: dict[str, jwt.PyJWK] = {}
        for key in key_set.keys:  # as PyJWKClient reads a set: keys for signatures, the first of each kid
            # A token's kid is a non-empty string (_key_id): a key under anything else could never be chosen.
            if key.public_key_use in ("sig", None) and isinstance(key.key_id, str) and key.key_id:
                keys.setdefault(key.key_id, key)
        self._keys, self._fetched_at, self._failed_at = keys, self._clock(), None
        self.fetches += 1

    def trusted_until(self) -> float:
        """Return when, on clock, the key set in hand stops being trusted without fetching it again."""
        return self._fetched_at + self._lifespan


class _VerifiedTokens:
    """The callers of tokens verified lately, each until its exp, VERIFIED_TOKEN_SECONDS on clock or the end of trust
    in the keys that verified it, whichever is first; bounded in number and in token length."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._kept: dict[str, tuple[Caller, float, float, int]] = {}

    def caller(self, token: str, keys: int) -> "Caller | None":
        """Return the caller of a token verified lately under the key set `keys` and still within its exp, or None."""
        kept = self._kept.get(token)
        if kept is None:
            return None
        caller, expires, fresh_until, verified_under = kept
        if verified_under != keys or time.time() >= expires or self._clock() >= fresh_until:
            self._kept.pop(token, None)
            return None
        return caller

    def keep(self, token: str, caller: "Caller", expires: float, keys: int, keys_trusted_until: float) -> None:
        """Keep a token's caller after verifying it under the key set `keys`, forgetting the oldest when full."""
        if len(token) > VERIFIED_TOKEN_MAX_LENGTH:
            return
        if len(self._kept) >= VERIFIED_TOKENS_KEPT:
            try:
                oldest = next(iter(self._kept))
            except (StopIteration, RuntimeError):  # emptied, or changed by another thread meanwhile
                oldest = token
            self._kept.pop(oldest, None)
        fresh_until = min(self._clock() + VERIFIED_TOKEN_SECONDS, keys_trusted_until)
        self._kept[token] = (caller, expires, fresh_until, keys)


@dataclass(frozen=True)
class Caller:
    """The verified subject of a token and whether it holds the admin role."""

    subject: str
    is_admin: bool

    def may_act_for(self, doctor_id: str) -> bool:
        """Tell whether this caller may act for the given doctor."""
        return self.is_admin or self.subject == doctor_id


class TokenVerifier:
    """Verify bearer tokens against the configured key material, built once per service; a JWKS's cache and
    delays are measured on clock."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.monotonic) -> None:
        # One key source, in this order of precedence, so the algorithm is never chosen by the token: the identity
        # provider's key set, a public key or a shared secret.
        self._key: _IdentityProviderKeys | RSAPublicKey | str
        if config.JWT_JWKS_URL:
            self._key, self._algorithms = _IdentityProviderKeys(config.JWT_JWKS_URL, clock), ["RS256"]
        elif config.JWT_PUBLIC_KEY:
            self._key, self._algorithms = rsa_public_key(config.JWT_PUBLIC_KEY), ["RS256"]
        else:
            self._key, self._algorithms = config.JWT_SECRET, ["HS256"]
        self._audience = config.JWT_AUDIENCE
        self._issuer = config.JWT_ISSUER
        self._admin_role = config.JWT_ADMIN_ROLE
        self._max_lifetime = config.JWT_MAX_LIFETIME_SECONDS
        self._options: Options = {"require": ["exp", "sub"], "verify_aud": bool(config.JWT_AUDIENCE)}
        self._verified = _VerifiedTokens(clock)

    def verify(self, authorization: str | None) -> Caller:
        """Return the caller of an `Authorization: Bearer` header value, or refuse with 401."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingBearerToken()
        token = token.strip()
        known = self._verified.caller(token, self._key_set())
        if known is not None:
            return known
        try:
            claims = jwt.decode(
                token,
                self._signing_key(token),
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options=self._options,
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("Token expired") from None
        except jwt.InvalidTokenError:
            raise NotAuthenticated("Invalid token") from None
        subject = claims.get("sub")
        # A sub that could never be a uid would act for a doctor whose records no request can read back.
        if not isinstance(subject, str) or not DOCTOR_UID.match(subject):
            raise NotAuthenticated("Invalid token")
        if not self._is_short_lived(claims):
            raise NotAuthenticated("Invalid token")
        roles = claims.get("roles")
        caller = Caller(subject=subject, is_admin=isinstance(roles, list) and self._admin_role in roles)
        trusted_until = (self._key.trusted_until() if isinstance(self._key, _IdentityProviderKeys)
                         else float("inf"))
        self._verified.keep(token, caller, claims["exp"], self._key_set(), trusted_until)
        return caller

    def _key_set(self) -> int:
        """Return which key set verifies tokens now: a refetched JWKS is a new one (a key may have been withdrawn)."""
        return self._key.fetches if isinstance(self._key, _IdentityProviderKeys) else 0

    def _is_short_lived(self, claims: dict[str, Any]) -> bool:
        """Tell whether the token lives at most the configured maximum and was not issued for a future sign-in."""
        now = time.time()
        expires, issued, signed_in = claims["exp"], claims.get("iat", now), claims.get("auth_time", now)
        # PyJWT reads "123" as the number 123; anything but a JSON number is no time at all.
        if not all(_is_number(moment) for moment in (expires, issued, signed_in)):
            return False
        return expires - issued <= self._max_lifetime and signed_in <= now + LEEWAY_SECONDS

    def _signing_key(self, token: str) -> RSAPublicKey | str | jwt.PyJWK:
        """Return the key that must have signed this token."""
        if not isinstance(self._key, _IdentityProviderKeys):
            return self._key
        kid = _key_id(token)
        try:
            # The PyJWK itself, not its raw key: PyJWT then also refuses a token whose alg is not the key's.
            return self._key.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            raise TokenKeysUnavailable() from None
        except jwt.PyJWKClientError:
            # The fetched key set has no signing key under this kid.
            raise NotAuthenticated("Invalid token") from None


def _is_number(value: object) -> bool:
    """Tell whether a claim holds a JSON number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _key_id(token: str) -> str:
    """Return the token's kid, refusing a token without one before any key set is fetched."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        raise NotAuthenticated("Invalid token") from None
    if not isinstance(kid, str) or not kid:
        raise NotAuthenticated("Invalid token")
    return kid


def acting_doctor(caller: Caller, uid: str | None) -> str:
    """Return the doctor this request acts for, refusing a missing or malformed uid (400) or another's (403)."""
    if uid is None or not uid.strip():
        raise MissingDoctorId()
    if not DOCTOR_UID.match(uid):
        raise ValidationError({"uid": [UID_RULE]})
    if not caller.may_act_for(uid):
        raise NotAllowedForDoctor()
    return uid
