"""`gunicorn wsgi:app`, `make run` and the image run one configuration: gunicorn.conf.py."""
import os
import re
import subprocess
import sys

import pytest

from scripts.processes import bare_environment
from tests.conftest import SECRET
from tests.live import GUNICORN, MASTER_KEY_B64, ROOT

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import run_dev  # noqa: E402


def test_make_run_starts_plain_gunicorn_wsgi_app():
    assert run_dev.gunicorn_command() == [GUNICORN, "wsgi:app"]


def test_the_image_runs_plain_gunicorn_wsgi_app_listening_on_every_interface():
    with open(os.path.join(ROOT, "Dockerfile")) as dockerfile:
        text = dockerfile.read()
    assert re.search(r'^CMD \["gunicorn", "wsgi:app"\]$', text, re.MULTILINE)
    assert re.search(r"^ENV HOST=0\.0\.0\.0$", text, re.MULTILINE)
    assert re.search(r"^COPY .*gunicorn\.conf\.py", text, re.MULTILINE)


@pytest.mark.slow
def test_plain_gunicorn_reads_the_service_worker_and_no_access_log():
    env = bare_environment(MONGODB_URI="mongodb://127.0.0.1:1", JWT_SECRET=SECRET, FIELD_ENCRYPTION_KEY=MASTER_KEY_B64)
    result = subprocess.run([GUNICORN, "--print-config", "wsgi:app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr

    settings = dict(re.findall(r"^(\w+)\s*=\s*(.*)$", result.stdout, re.MULTILINE))
    assert "ClinicWorker" in settings["worker_class"]
    assert settings["accesslog"] == "None"
    assert settings["keepalive"] == "5"
