"""Keep the development JWT secret and field-encryption master key in instance/."""
import base64
import os
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # config.py, for the scripts that run as `python scripts/<name>.py` and import this
from config import LOCAL_MASTER_KEY_BYTES  # noqa: E402 - the length the service takes

# CLINIC_INSTANCE_DIR moves it: the tests run `make run` on a directory of their own, beside a developer's.
DEFAULT_INSTANCE_DIR = ROOT / "instance"
INSTANCE_DIR = Path(os.environ.get("CLINIC_INSTANCE_DIR") or DEFAULT_INSTANCE_DIR).absolute()
SECRET_FILE = INSTANCE_DIR / "jwt_secret"
# Losing this file loses every patient record in instance/db: the data is encrypted under it.
MASTER_KEY_FILE = INSTANCE_DIR / "field_encryption_key"


def ensure_instance_dir():
    """Create instance/ (git-ignored, private to the user) if it is missing."""
    INSTANCE_DIR.mkdir(mode=0o700, exist_ok=True)
    return INSTANCE_DIR


def load_or_create_secret(path=SECRET_FILE):
    """Return the development secret, creating it with mode 0600 on first use."""
    ensure_instance_dir()
    if not path.exists():
        _create_secret(path, secrets.token_urlsafe(48))
    secret = path.read_text().strip()
    if not secret:
        raise SystemExit(f"{path} is empty: delete it to get a new secret")
    return secret


def new_master_key():
    """Return a fresh local master key, base64-encoded as FIELD_ENCRYPTION_KEY takes it."""
    return base64.b64encode(os.urandom(LOCAL_MASTER_KEY_BYTES)).decode()


def load_or_create_master_key(path=MASTER_KEY_FILE):
    """Return the development master key, creating it with mode 0600 on first use."""
    ensure_instance_dir()
    if not path.exists():
        _create_secret(path, new_master_key())
    key = path.read_text().strip()
    if not key:
        raise SystemExit(f"{path} is empty: restore it from your backup (a new key cannot read instance/db)")
    return key


def replace_master_key(key, path=MASTER_KEY_FILE):
    """Put a new master key in place of the old one in one step (after a rotation)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.replace(tmp, path)


def _create_secret(path, value):
    """Write a fresh secret to path unless another process got there first."""
    # Written to a temporary file and hard-linked into place, so a concurrent
    # `make token` and `make run` never read a half-written secret and agree.
    fd, tmp = tempfile.mkstemp(dir=path.parent)  # mkstemp files are 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
