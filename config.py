"""Service configuration, read from the environment."""
import base64
import binascii
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from limits import parse_many
from limits.storage import SCHEMES as RATE_LIMIT_STORAGE_SCHEMES

# RFC 7518 3.2: an HS256 key must be at least as long as the hash it keys.
MIN_SECRET_BYTES = 32


# libmongocrypt's local master key: 96 random bytes, given base64-encoded.
LOCAL_MASTER_KEY_BYTES = 96
KMS_PROVIDERS = ("aws", "azure", "gcp", "kmip")

LOG_FORMATS = ("text", "json")

# A browser's own headers and a bearer token take 2 to 3 KB: a cap below this would refuse ordinary requests.
MIN_HEADER_BYTES = 4096
# gunicorn worker processes when WEB_CONCURRENCY is unset.
DEFAULT_WORKERS = 2
# Requests a token's subject may send: more than a doctor's busiest page (a burst of ten), far less than a script
# (a loop of writes runs at a hundred a second); 300 a minute is a request every 0.2 s, sustained, for a minute.
RATE_LIMIT_PER_SUBJECT = "10/second;300/minute"
# Requests without a valid token, per client address: a frontend whose token expired needs one or two to sign in.
RATE_LIMIT_PER_ADDRESS = "5/second;60/minute"


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message is one line naming the variable."""


@dataclass(frozen=True)
class MasterKey:
    """The key that wraps the data keys: a local key or a KMS key, as libmongocrypt names them."""

    # The KMS provider name the data keys record ("local:<id>", "aws", ...), its credentials, and for a KMS the
    # key to wrap under ({"region": ..., "key": ...} for AWS); repr=False keeps key material out of tracebacks.
    provider: str
    credentials: dict = field(repr=False)
    key: dict | None = None

    def kms_providers(self):
        """Return the kms_providers mapping pymongo's ClientEncryption takes."""
        return {self.provider: self.credentials}


def local_master_key(variable, raw):
    """Read a base64 local master key; its provider name carries a digest so old and new keys can meet in a rotation."""
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != LOCAL_MASTER_KEY_BYTES:
        raise ConfigError(f"{variable} must be {LOCAL_MASTER_KEY_BYTES} random bytes in base64 "
                          "(python3 -c 'import os, base64; "
                          f"print(base64.b64encode(os.urandom({LOCAL_MASTER_KEY_BYTES})).decode())')")
    # A digest, not the key: it names the key in the key vault and in errors, and gives away nothing of it.
    return MasterKey("local:" + hashlib.sha256(b"clinic master key\0" + key).hexdigest()[:16], {"key": key})


def _json_object(variable, raw):
    """Parse a variable holding a JSON object."""
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(f"{variable} must be a JSON object")
    return value


def master_key_from_env(prefix=""):
    """Read the master key from {prefix}FIELD_ENCRYPTION_KEY or {prefix}FIELD_ENCRYPTION_KMS_*; None if neither."""
    env = os.environ.get
    local = env(prefix + "FIELD_ENCRYPTION_KEY") or ""
    provider = (env(prefix + "FIELD_ENCRYPTION_KMS_PROVIDER") or "").strip().lower()
    if local and provider:
        raise ConfigError(f"set {prefix}FIELD_ENCRYPTION_KEY or {prefix}FIELD_ENCRYPTION_KMS_PROVIDER, not both")
    if local:
        return local_master_key(prefix + "FIELD_ENCRYPTION_KEY", local)
    if not provider:
        return None
    if provider not in KMS_PROVIDERS:
        raise ConfigError(f"{prefix}FIELD_ENCRYPTION_KMS_PROVIDER must be one of {', '.join(KMS_PROVIDERS)}")
    # Empty credentials ask pymongo to take them from the environment (an AWS role, a GCP or Azure identity).
    credentials_name = prefix + "FIELD_ENCRYPTION_KMS_CREDENTIALS"
    credentials = _json_object(credentials_name, env(credentials_name))
    key = _json_object(prefix + "FIELD_ENCRYPTION_MASTER_KEY", env(prefix + "FIELD_ENCRYPTION_MASTER_KEY"))
    if not key and provider != "kmip":
        raise ConfigError(f"{prefix}FIELD_ENCRYPTION_MASTER_KEY must name the {provider} key (a JSON object)")
    return MasterKey(provider, credentials, key)


def _choice(name, choices):
    """Read a variable naming one of the choices (any case; the first by default), failing loudly on anything else."""
    raw = (os.environ.get(name) or choices[0]).strip().lower()
    if raw not in choices:
        raise ConfigError(f"{name} must be {' or '.join(choices)}, got {raw!r}")
    return raw


def _switch(name):
    """Read an on/off variable (on by default), failing loudly on anything else."""
    return _choice(name, ("on", "off")) == "on"


# Not environs: it refuses an empty variable, which here means the default (`make run PORT=`), refuses nan and inf
# before validate() can, and words every refusal its own way ('Environment variable "X" invalid: ...').
def number_setting(name, default, kind=int, *, least=None, most=None, what=None):
    """Read a whole number (or, with kind=float, a number of seconds) from the environment, the default when unset
    or empty, failing loudly on a malformed value or one outside least..most."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    # Written so that nan, which compares false with everything, is outside any bound.
    if value is None or not (least is None or value >= least) or not (most is None or value <= most):
        what = what or ("an integer" if kind is int else "a number of seconds")
        raise ConfigError(f"{name} must be {what}, got {raw!r}")
    return value


def gunicorn_workers():
    """Return how many gunicorn workers WEB_CONCURRENCY asks for (DEFAULT_WORKERS when unset)."""
    return number_setting("WEB_CONCURRENCY", DEFAULT_WORKERS, least=1, what="a positive whole number")


def _flag(name):
    """Read a yes/no variable (1/true/yes or 0/false/no), failing loudly on anything else."""
    raw = (os.environ.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def rsa_public_key(pem):
    """Load JWT_PUBLIC_KEY, refusing one that is not an RSA public key in PEM form."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError("JWT_PUBLIC_KEY must be an RSA public key in PEM form (-----BEGIN PUBLIC KEY-----)")
    return key


class Config:
    """Settings of one running service; every value comes from an environment variable."""

    def __init__(self, **overrides):
        env = os.environ.get
        self.MONGODB_URI = env("MONGODB_URI") or "mongodb://localhost:27017"
        self.MONGODB_DB = env("MONGODB_DB") or "clinic"
        self.MONGODB_TIMEOUT_MS = number_setting("MONGODB_TIMEOUT_MS", 5000)
        self.JWT_SECRET = env("JWT_SECRET") or None
        self.JWT_PUBLIC_KEY = env("JWT_PUBLIC_KEY") or None
        self.JWT_JWKS_URL = env("JWT_JWKS_URL") or None
        self.JWT_AUDIENCE = env("JWT_AUDIENCE") or None
        self.JWT_ISSUER = env("JWT_ISSUER") or None
        self.JWT_ADMIN_ROLE = env("JWT_ADMIN_ROLE") or "admin"
        # A token living longer than this (exp - iat) is refused: a leaked long-lived token is a standing key.
        self.JWT_MAX_LIFETIME_SECONDS = number_setting("JWT_MAX_LIFETIME_SECONDS", 86400)
        # A request body must arrive whole within this many seconds of its first read, else 408 and the connection
        # closes: a body trickled a byte at a time would otherwise hold its connection for as long as it likes.
        self.BODY_TIMEOUT_S = number_setting("BODY_TIMEOUT_S", 10.0, float)
        self.LOG_LEVEL = (env("LOG_LEVEL") or "INFO").upper()
        # text: one line per entry, as a person reads them; json: one JSON object per line, for log collectors.
        self.LOG_FORMAT = _choice("LOG_FORMAT", LOG_FORMATS)
        # A transaction's writes in one client bulkWrite where the server takes it (MongoDB 8.0+); off sends one
        # command per write, as on older servers.
        self.MONGODB_CLIENT_BULK_WRITE = _switch("MONGODB_CLIENT_BULK_WRITE")
        # Without transactions a crash mid-request can leave half a write behind; only development opts in.
        self.ALLOW_STANDALONE = _flag("ALLOW_STANDALONE")
        # Patient values are encrypted in the service; off (development only) stores them as given.
        self.FIELD_ENCRYPTION = _switch("FIELD_ENCRYPTION")
        self.MASTER_KEY = master_key_from_env() if self.FIELD_ENCRYPTION else None
        # Every header of a request together, counted as `Name: value` and its line end; gunicorn holds each one
        # (8190 bytes) and their number (100), which together let about 800 KB through.
        self.MAX_HEADER_BYTES = number_setting("MAX_HEADER_BYTES", 32 * 1024)
        # Floods are refused with 429 per token subject and, without a valid token, per client address; off: no limit.
        self.RATE_LIMIT = _switch("RATE_LIMIT")
        self.RATE_LIMIT_PER_SUBJECT = env("RATE_LIMIT_PER_SUBJECT") or RATE_LIMIT_PER_SUBJECT
        self.RATE_LIMIT_PER_ADDRESS = env("RATE_LIMIT_PER_ADDRESS") or RATE_LIMIT_PER_ADDRESS
        # Where requests are counted (a `limits` storage URI); None: the service's own database, shared by its workers.
        self.RATE_LIMIT_STORAGE_URI = env("RATE_LIMIT_STORAGE_URI") or None
        self.CORS_ORIGINS = [origin.strip() for origin in (env("CORS_ORIGINS") or "").split(",") if origin.strip()]
        # A client handed in by tests (mongomock or a client for a real server); None builds one from the URI.
        self.MONGO_CLIENT = None
        # The client the key vault is read through; None uses the service's own (tests hand in an adapter).
        self.KEY_VAULT_CLIENT = None
        for key, value in overrides.items():
            setattr(self, key, value)

    def validate(self):
        """Refuse to start without token key material or with impossible values."""
        if not (self.JWT_SECRET or self.JWT_PUBLIC_KEY or self.JWT_JWKS_URL):
            raise ConfigError(
                "no token key material: set JWT_SECRET (HS256), JWT_PUBLIC_KEY (PEM) or JWT_JWKS_URL (RS256 JWKS)"
            )
        if self.JWT_SECRET and len(self.JWT_SECRET.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes for HS256 "
                              "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))' makes one)")
        if self.JWT_PUBLIC_KEY:
            rsa_public_key(self.JWT_PUBLIC_KEY)
        for origin in self.CORS_ORIGINS:
            # Exact origins only: a wildcard would let any site's scripts read patient data.
            if "*" in origin or not origin.startswith(("http://", "https://")):
                raise ConfigError(
                    f"CORS_ORIGINS entries must be exact origins like https://app.example, got {origin!r}")
        if self.MONGODB_TIMEOUT_MS <= 0:
            raise ConfigError("MONGODB_TIMEOUT_MS must be a positive number of milliseconds")
        if not 0 < self.BODY_TIMEOUT_S < float("inf"):  # also refuses nan
            raise ConfigError("BODY_TIMEOUT_S must be a positive number of seconds")
        if self.FIELD_ENCRYPTION and self.MASTER_KEY is None:
            raise ConfigError(f"no master key for field encryption: set FIELD_ENCRYPTION_KEY (base64 of "
                              f"{LOCAL_MASTER_KEY_BYTES} bytes) or FIELD_ENCRYPTION_KMS_PROVIDER "
                              "(see docs/security.md), or FIELD_ENCRYPTION=off for development")
        if type(self.JWT_MAX_LIFETIME_SECONDS) is not int or self.JWT_MAX_LIFETIME_SECONDS <= 0:
            raise ConfigError("JWT_MAX_LIFETIME_SECONDS must be a positive whole number of seconds")
        if type(self.MAX_HEADER_BYTES) is not int or self.MAX_HEADER_BYTES < MIN_HEADER_BYTES:
            raise ConfigError(f"MAX_HEADER_BYTES must be a whole number of bytes, at least {MIN_HEADER_BYTES}")
        if self.RATE_LIMIT:
            _rate_limits("RATE_LIMIT_PER_SUBJECT", self.RATE_LIMIT_PER_SUBJECT)
            _rate_limits("RATE_LIMIT_PER_ADDRESS", self.RATE_LIMIT_PER_ADDRESS)
            _rate_limit_storage(self.RATE_LIMIT_STORAGE_URI)
        return self


def _rate_limits(name, raw):
    """Refuse a rate limit setting that is not one or more limits like 10/second;300/minute, each of one or more."""
    try:
        limits = parse_many(raw)
    except ValueError:
        limits = []
    if not limits or any(limit.amount < 1 for limit in limits):
        raise ConfigError(f"{name} must be limits like {RATE_LIMIT_PER_SUBJECT} (a count of 1 or more per second, "
                          f"minute, hour or day, separated by ;), got {raw!r}")


def _rate_limit_storage(uri):
    """Refuse a rate limit storage URI the limits library cannot use here (unknown, async, or not installed)."""
    if uri is None:
        return
    scheme, separator, _ = uri.partition("://")
    storage = RATE_LIMIT_STORAGE_SCHEMES.get(scheme) if separator and not scheme.startswith("async+") else None
    if storage is None or not all(importlib.util.find_spec(name) for name in storage.DEPENDENCIES):
        raise ConfigError("RATE_LIMIT_STORAGE_URI must be a limits storage URI whose client is installed "
                          f"(memory:// or mongodb://host:port/), got scheme {scheme!r}")
