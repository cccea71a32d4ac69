"""Keep the development JWT secret in instance/jwt_secret."""
import os
import secrets
import tempfile
from pathlib import Path

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"
SECRET_FILE = INSTANCE_DIR / "jwt_secret"


def ensure_instance_dir():
    """Create instance/ (git-ignored, private to the user) if it is missing."""
    INSTANCE_DIR.mkdir(mode=0o700, exist_ok=True)
    return INSTANCE_DIR


def load_or_create_secret(path=SECRET_FILE):
    """Return the development secret, creating it with mode 0600 on first use."""
    ensure_instance_dir()
    if not path.exists():
        _create_secret(path)
    secret = path.read_text().strip()
    if not secret:
        raise SystemExit(f"{path} is empty: delete it to get a new secret")
    return secret


def _create_secret(path):
    """Write a fresh secret to path unless another process got there first."""
    # Written to a temporary file and hard-linked into place, so a concurrent
    # `make token` and `make run` never read a half-written secret and agree.
    fd, tmp = tempfile.mkstemp(dir=path.parent)  # mkstemp files are 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
