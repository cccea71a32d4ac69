"""Service configuration, read from the environment."""
import os


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message is one line naming the variable."""


def _int(name, default):
    """Read an integer variable, failing loudly on a malformed value."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


class Config:
    """Settings of one running service; every value comes from an environment variable."""

    def __init__(self, **overrides):
        env = os.environ.get
        self.MONGODB_URI = env("MONGODB_URI") or "mongodb://localhost:27017"
        self.MONGODB_DB = env("MONGODB_DB") or "clinic"
        self.MONGODB_TIMEOUT_MS = _int("MONGODB_TIMEOUT_MS", 5000)
        self.JWT_SECRET = env("JWT_SECRET") or None
        self.JWT_PUBLIC_KEY = env("JWT_PUBLIC_KEY") or None
        self.JWT_JWKS_URL = env("JWT_JWKS_URL") or None
        self.JWT_AUDIENCE = env("JWT_AUDIENCE") or None
        self.JWT_ISSUER = env("JWT_ISSUER") or None
        self.JWT_ADMIN_ROLE = env("JWT_ADMIN_ROLE") or "admin"
        self.LOG_LEVEL = (env("LOG_LEVEL") or "INFO").upper()
        self.CORS_ORIGINS = [origin.strip() for origin in (env("CORS_ORIGINS") or "").split(",") if origin.strip()]
        # A client handed in by tests (mongomock or a client for a real server); None builds one from the URI.
        self.MONGO_CLIENT = None
        for key, value in overrides.items():
            setattr(self, key, value)

    def validate(self):
        """Refuse to start without token key material or with impossible values."""
        if not (self.JWT_SECRET or self.JWT_PUBLIC_KEY or self.JWT_JWKS_URL):
            raise ConfigError(
                "no token key material: set JWT_SECRET (HS256), JWT_PUBLIC_KEY (PEM) or JWT_JWKS_URL (RS256 JWKS)"
            )
        for origin in self.CORS_ORIGINS:
            # Exact origins only: a wildcard would let any site's scripts read patient data.
            if "*" in origin or not origin.startswith(("http://", "https://")):
                raise ConfigError(f"CORS_ORIGINS entries must be exact origins like https://app.example, got {origin!r}")
        if self.MONGODB_TIMEOUT_MS <= 0:
            raise ConfigError("MONGODB_TIMEOUT_MS must be a positive number of milliseconds")
        return self
