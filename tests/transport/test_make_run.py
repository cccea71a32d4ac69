"""`make run` refuses a taken port or a second run on its instance/ in one line, nothing it started outlives it, and
its database keeps every write it acknowledged through kill -9."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pymongo
import pytest
from bson import ObjectId

from scripts import embedded_db
from scripts.processes import bare_environment, free_port
from tests.conftest import SECRET, bearer, jane
from tests.live import MASTER_KEY_B64, ROOT
from tests.servers import SecantusServer
from tests.transport.test_start_refusal import run_bounded

RUN_DEV = [sys.executable, "scripts/run_dev.py"]
START_TIMEOUT = 60
GONE_TIMEOUT = 15  # the launcher's children get SIGTERM; gunicorn's graceful_timeout is 10 s


def run_dev_environment(instance, port, db_port):
    """Return the environment of a make run on instance/, listening on port, its database on db_port."""
    # A secret and master key of their own: nothing is created outside the test's directory.
    return bare_environment(CLINIC_INSTANCE_DIR=instance, PORT=port, EMBEDDED_DB_PORT=db_port,
                            JWT_SECRET=SECRET, FIELD_ENCRYPTION_KEY=MASTER_KEY_B64)


def processes_of(instance):
    """Return {pid: command} of every live process started with CLINIC_INSTANCE_DIR=instance."""
    marker = f"CLINIC_INSTANCE_DIR={instance}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        if marker in environment and state != "Z":
            found[int(entry.name)] = command
    return found


def kill_everything_of(instance, *processes):
    """SIGKILL the given processes and every one started with this instance/, whatever happened in the test."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
    for pid in processes_of(instance):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_until_gone(instance, timeout=GONE_TIMEOUT):
    """Return what is still alive of instance's processes after timeout seconds, or {} as soon as none is."""
    deadline = time.monotonic() + timeout
    while (alive := processes_of(instance)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def port_is_free(port):
    """Return whether 127.0.0.1:port can be bound, as gunicorn binds it."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def healthz(port):
    """Return the status of GET /healthz on port, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status
    except (OSError, urllib.error.URLError):
        return None


def start(command, env, log_path, port):
    """Start command (run_dev or make run) and return it once /healthz on port answers 200."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while healthz(port) != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            log = Path(log_path).read_text(errors="replace")
            raise AssertionError(f"{command[-1]} did not answer /healthz (status {process.poll()}):\n{log}")
        time.sleep(0.2)
    return process


def names(commands):
    """Return the sorted kinds (run_dev.py, gunicorn, secantusd-py) of the commands, one per process."""
    kinds = ("run_dev.py", "gunicorn", "secantusd-py")
    return sorted(kind for command in commands for kind in kinds if kind in command)


@pytest.mark.slow
@pytest.mark.realdb
def test_a_taken_port_is_refused_in_one_line_naming_port_before_the_database_starts(tmp_path):
    instance, db_port = tmp_path / "instance", free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        try:
            status, _, stderr = run_bounded(RUN_DEV, run_dev_environment(instance, port, db_port))
            left = processes_of(instance)
        finally:
            kill_everything_of(instance)

    assert status != 0
    assert stderr.count("\n") == 1, stderr
    assert f"127.0.0.1:{port} is already in use" in stderr and "set PORT" in stderr, stderr
    assert left == {} and port_is_free(db_port)
    assert not (instance / "db").exists()


def make_run():
    """Return `make run` with this virtualenv counted as installed (whatever the requirements' dates)."""
    venv = os.path.dirname(os.path.dirname(sys.executable))
    return ["make", "-s", "-o", f"{venv}/.installed", f"VENV={venv}", "run"]


@pytest.mark.slow
@pytest.mark.realdb
@pytest.mark.parametrize("killed", ["run_dev", "make"])
def test_nothing_outlives_a_make_run_whose_runner_or_make_is_killed_with_sigkill(tmp_path, killed):
    instance, port, db_port = tmp_path / "instance", free_port(), free_port()
    command = RUN_DEV if killed == "run_dev" else make_run()  # make runs only run_dev.py
    process = None
    try:
        process = start(command, run_dev_environment(instance, port, db_port), tmp_path / f"{killed}.log", port)
        started = processes_of(instance)
        # run_dev, secantusd-py, gunicorn's master and its two workers.
        assert names(started.values()) == ["gunicorn"] * 3 + ["run_dev.py", "secantusd-py"], started

        process.kill()
        process.wait()
        alive = wait_until_gone(instance)
    finally:
        kill_everything_of(instance, process)

    assert alive == {}, f"still running {GONE_TIMEOUT} s after kill -9 of {killed}: {alive}"
    assert port_is_free(port) and port_is_free(db_port)


@pytest.mark.slow
@pytest.mark.realdb
def test_a_second_make_run_on_the_same_instance_is_refused_in_one_line_and_the_first_keeps_serving(tmp_path):
    instance, port = tmp_path / "instance", free_port()
    first = None
    try:
        first = start(RUN_DEV, run_dev_environment(instance, port, free_port()), tmp_path / "first.log", port)
        other_port, other_db_port = free_port(), free_port()

        status, _, stderr = run_bounded(RUN_DEV, run_dev_environment(instance, other_port, other_db_port))

        assert status != 0
        assert stderr.count("\n") == 1, stderr
        assert f"another make run holds {instance / 'db'} (pid {first.pid}); stop it first" in stderr, stderr
        assert healthz(port) == 200
        assert port_is_free(other_port) and port_is_free(other_db_port)
    finally:
        kill_everything_of(instance, first)


BURST, CLIENTS = 160, 4


def add_and_link_all(port, appointment_ids):
    """Send add_and_link for each appointment from CLIENTS clients at once; return the patient ids answered 201."""
    headers = {**bearer(), "Content-Type": "application/json"}

    def link(appointment_id):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/patients/add_and_link?uid=doctor_a",
                                         data=json.dumps(jane(str(appointment_id))).encode(), headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201
            return ObjectId(json.load(response)["data"]["_id"])

    with ThreadPoolExecutor(CLIENTS) as clients:
        return list(clients.map(link, appointment_ids))


@pytest.mark.slow
@pytest.mark.realdb
def test_every_link_answered_201_survives_kill_9_of_the_database_make_run_started(tmp_path):
    instance, port, db_port = tmp_path / "instance", free_port(), free_port()
    runner = None
    try:
        runner = start(RUN_DEV, run_dev_environment(instance, port, db_port), tmp_path / "run_dev.log", port)
        with pymongo.MongoClient(embedded_db.uri(db_port)) as scheduler:
            appointment_ids = scheduler.clinic.appointments.insert_many(
                [{"doctor_id": "doctor_a", "patient_id": None} for _ in range(BURST)]).inserted_ids
        answered = add_and_link_all(port, appointment_ids)

        # Right after the last 201: a commit acknowledged before its log reached the disk is lost now.
        database = [pid for pid, command in processes_of(instance).items() if "secantusd-py" in command]
        assert len(database) == 1, processes_of(instance)
        os.kill(database[0], signal.SIGKILL)
    finally:
        kill_everything_of(instance, runner)
    assert wait_until_gone(instance) == {}

    restarted = SecantusServer(instance / "db").start()  # the same storage, as the next make run opens it
    try:
        with pymongo.MongoClient(restarted.uri) as direct:
            kept = {patient["_id"] for patient in direct.clinic.patients.find({}, {"_id": 1})}
            linked = {stored["_id"]: stored["patient_id"] for stored in direct.clinic.appointments.find()}
    finally:
        restarted.stop()
    assert len(answered) == BURST
    assert set(answered) - kept == set(), "acknowledged patients lost"
    lost_links = [str(a) for a, p in zip(appointment_ids, answered, strict=True) if linked.get(a) != p]
    assert lost_links == [], "acknowledged links lost"
