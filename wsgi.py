"""The WSGI entry point: `gunicorn wsgi:app`."""
import sys

from app import create_app
from config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # One line saying what to set, not a traceback.
    print(f"clinic-records: cannot start: {error}", file=sys.stderr)
    raise SystemExit(1) from None
