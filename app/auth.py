"""Bearer tokens: who is calling, and for which doctor they may act."""
from dataclasses import dataclass

import jwt

from app.exceptions import MissingDoctorId, NotAllowedForDoctor, NotAuthenticated, TokenKeysUnavailable

# Never more than a minute of clock skew between the token issuer and us.
LEEWAY_SECONDS = 60
JWKS_CACHE_SECONDS = 300
JWKS_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Caller:
    """The verified subject of a token and whether it holds the admin role."""

    subject: str
    is_admin: bool

    def may_act_for(self, doctor_id):
        """Tell whether this caller may act for the given doctor."""
        return self.is_admin or self.subject == doctor_id


class TokenVerifier:
    """Verify bearer tokens against the configured key material, built once per service."""

    def __init__(self, config):
        # One key source, in this order of precedence, so the algorithm is never chosen by the token.
        self._jwks = None
        if config.JWT_JWKS_URL:
            self._jwks = jwt.PyJWKClient(
                config.JWT_JWKS_URL, cache_keys=True, lifespan=JWKS_CACHE_SECONDS, timeout=JWKS_TIMEOUT_SECONDS
            )
            self._key, self._algorithms = None, ["RS256"]
        elif config.JWT_PUBLIC_KEY:
            self._key, self._algorithms = config.JWT_PUBLIC_KEY, ["RS256"]
        else:
            self._key, self._algorithms = config.JWT_SECRET, ["HS256"]
        self._audience = config.JWT_AUDIENCE
        self._issuer = config.JWT_ISSUER
        self._admin_role = config.JWT_ADMIN_ROLE
        self._options = {"require": ["exp", "sub"], "verify_aud": bool(config.JWT_AUDIENCE)}

    def verify(self, authorization):
        """Return the caller of an `Authorization: Bearer` header value, or refuse with 401."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("Missing bearer token")
        token = token.strip()
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
        if not isinstance(subject, str) or not subject.strip():
            raise NotAuthenticated("Invalid token")
        roles = claims.get("roles")
        is_admin = isinstance(roles, list) and self._admin_role in roles
        return Caller(subject=subject, is_admin=is_admin)

    def _signing_key(self, token):
        """Return the key that must have signed this token."""
        if self._jwks is None:
            return self._key
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError:
            raise TokenKeysUnavailable() from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError):
            raise NotAuthenticated("Invalid token") from None


def acting_doctor(caller, uid):
    """Return the doctor this request acts for, refusing a missing uid (400) or one the caller may not use (403)."""
    if uid is None or not uid.strip():
        raise MissingDoctorId()
    if not caller.may_act_for(uid):
        raise NotAllowedForDoctor()
    return uid
