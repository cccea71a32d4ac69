"""`gunicorn wsgi:app` without the right master key stops at once with one line, instead of serving or looping."""

import pytest

from scripts.dev_secret import new_master_key
from scripts.processes import bare_environment, free_port
from tests.live import GUNICORN, MASTER_KEY_B64, LiveService
from tests.transport.test_start_refusal import NOWHERE, run_bounded

SECRET = "s" * 40


@pytest.mark.slow
@pytest.mark.parametrize("settings, says", [
    ({}, "no master key for field encryption"),
    ({"FIELD_ENCRYPTION_KEY": "c2hvcnQ="}, "FIELD_ENCRYPTION_KEY must be 96 random bytes"),
], ids=["no-master-key", "short-master-key"])
def test_gunicorn_refuses_to_start_without_a_usable_master_key(settings, says):
    env = bare_environment(MONGODB_URI=NOWHERE, PORT=free_port(), JWT_SECRET=SECRET, **settings)

    status, stdout, stderr = run_bounded([GUNICORN, "wsgi:app"], env)

    assert status != 0 and stdout == ""
    assert stderr.count("\n") == 1 and says in stderr, stderr
    assert "c2hvcnQ=" not in stderr


@pytest.mark.slow
@pytest.mark.realdb
def test_gunicorn_stops_with_one_line_when_the_master_key_does_not_open_the_database(replica_set_server, tmp_path):
    # A database whose data key was made under the tests' master key...
    first = LiveService(tmp_path / "first.log", MONGODB_URI=replica_set_server.uri, MONGODB_DB="other_key",
                        JWT_SECRET=SECRET).start()
    first.stop()
    # ...then the service started with another one.
    other = new_master_key()
    env = bare_environment(MONGODB_URI=replica_set_server.uri, MONGODB_DB="other_key", PORT=free_port(),
                           JWT_SECRET=SECRET, FIELD_ENCRYPTION_KEY=other)

    status, _, stderr = run_bounded([GUNICORN, "wsgi:app"], env)

    assert status != 0
    # One line, said by each worker that tried (the master never opens the database: pymongo must load after
    # gevent patches the worker), and no worker booted again.
    refusals = {line for line in stderr.splitlines() if "cannot start" in line}
    assert len(refusals) == 1 and "configure the master key it was made with" in refusals.pop(), stderr
    assert stderr.count("Booting worker") <= 2, stderr
    assert other not in stderr and MASTER_KEY_B64 not in stderr
