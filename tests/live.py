"""Run the service as production runs it, `gunicorn wsgi:app` from the repository root, for tests over real sockets."""
import base64
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from config import LOCAL_MASTER_KEY_BYTES
from scripts.processes import bare_environment, free_port, stop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUNICORN = os.path.join(os.path.dirname(sys.executable), "gunicorn")
# The tests' field-encryption master key (base64), fixed so that a failing test can be rerun by hand.
MASTER_KEY_B64 = base64.b64encode(b"clinic test master key ".ljust(LOCAL_MASTER_KEY_BYTES, b".")).decode()


class LiveService:
    """One `gunicorn wsgi:app` process on a free port, its output kept in a file for the test to read."""

    def __init__(self, log_path, *, args=(), **variables):
        self.port = free_port()
        self.log_path = str(log_path)
        self.env = bare_environment(HOST="127.0.0.1", PORT=self.port, FIELD_ENCRYPTION_KEY=MASTER_KEY_B64, **variables)
        self.args = list(args)
        self.process = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        """Start gunicorn and wait until /healthz answers 200."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([GUNICORN, "wsgi:app", *self.args], cwd=ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not answer /healthz within {timeout} s:\n{self.log()}")
            time.sleep(0.2)

    def log(self):
        """Return everything gunicorn and the service wrote so far."""
        with open(self.log_path, "rb") as log:
            return log.read().decode("utf-8", "replace")

    def stop(self):
        """Stop gunicorn gracefully, killing it if it does not exit in time."""
        stop(self.process, 20)
