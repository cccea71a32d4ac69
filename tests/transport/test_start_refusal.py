"""A bad setting stops `gunicorn wsgi:app` and `make run` at once, with one line naming it, instead of a crash loop."""
import os
import signal
import subprocess
import sys

import pytest

from scripts.processes import bare_environment, free_port
from tests.conftest import SECRET
from tests.live import GUNICORN, MASTER_KEY_B64, ROOT

NOWHERE = "mongodb://127.0.0.1:1/?directConnection=true&serverSelectionTimeoutMS=200"
NOT_A_PEM = "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"
DEADLINE = 10
# A good field-encryption master key: each case below has exactly one bad (or missing) setting.
KEY = {"FIELD_ENCRYPTION_KEY": MASTER_KEY_B64}


def run_bounded(command, env):
    """Run command in a session of its own; kill the whole session if it outlives the deadline."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        stdout, stderr = process.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"{command[1]} still running after {DEADLINE} s")
    return process.returncode, stdout, stderr


@pytest.mark.slow
@pytest.mark.parametrize("settings, variable", [
    ({**KEY, "JWT_SECRET": "x"}, "JWT_SECRET"),
    ({**KEY, "JWT_SECRET": SECRET, "CORS_ORIGINS": "127.0.0.1:5510"}, "CORS_ORIGINS"),
    ({**KEY, "JWT_SECRET": SECRET, "MONGODB_TIMEOUT_MS": "abc"}, "MONGODB_TIMEOUT_MS"),
    ({**KEY, "JWT_PUBLIC_KEY": NOT_A_PEM}, "JWT_PUBLIC_KEY"),
    ({**KEY}, "JWT_SECRET"),
    ({**KEY, "JWT_SECRET": SECRET, "WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
    ({**KEY, "JWT_SECRET": SECRET, "MAX_HEADER_BYTES": "100"}, "MAX_HEADER_BYTES"),
    ({**KEY, "JWT_SECRET": SECRET, "RATE_LIMIT": "on", "RATE_LIMIT_PER_SUBJECT": "lots"}, "RATE_LIMIT_PER_SUBJECT"),
], ids=["short-secret", "origin-without-scheme", "timeout-not-a-number", "public-key-not-pem", "no-key",
        "no-workers", "header-cap-too-small", "rate-limit-not-limits"])
def test_gunicorn_refuses_a_bad_setting_with_one_line_naming_it(settings, variable):
    env = bare_environment(MONGODB_URI=NOWHERE, PORT=free_port(), **settings)

    status, stdout, stderr = run_bounded([GUNICORN, "wsgi:app"], env)

    assert status != 0
    assert stderr.count("\n") == 1 and variable in stderr, stderr
    assert stdout == ""


@pytest.mark.slow
def test_a_worker_that_cannot_load_the_app_stops_gunicorn_instead_of_being_respawned():
    # Every setting good, the master key too: gunicorn.conf.py passes and the workers boot, then fail to load.
    env = bare_environment(MONGODB_URI=NOWHERE, PORT=free_port(), JWT_SECRET=SECRET, **KEY)

    status, _, stderr = run_bounded([GUNICORN, "tests.transport.unloadable_app:app"], env)

    assert status != 0
    assert 1 <= stderr.count("Booting worker") <= 2, stderr  # one per worker, never a second round


@pytest.mark.slow
def test_make_run_refuses_a_short_secret_with_one_line_before_starting_a_database():
    db_port = free_port()
    # A master key of its own, so that run_dev.py does not make a development key in instance/ for this test.
    env = bare_environment(JWT_SECRET="x", EMBEDDED_DB_PORT=db_port, PORT=free_port(), **KEY)

    status, _, stderr = run_bounded([sys.executable, "scripts/run_dev.py"], env)

    assert status != 0
    assert stderr.count("\n") == 1 and "JWT_SECRET" in stderr, stderr
