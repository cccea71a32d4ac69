"""The rate limit holds across gunicorn's workers: they count one subject's requests in one place, not each its own."""
import os
import time
import uuid

import pymongo
import pytest

from tests.conftest import SECRET, make_token
from tests.live import LiveService
from tests.transport.wire import connect, read_response

LIMIT = 10
SENT = 30


@pytest.fixture
def two_workers(replica_set_server, tmp_path):
    """The service with two workers and a small limit per subject, counted in the service's own database."""
    db_name = "rate_limit_workers_" + uuid.uuid4().hex[:8]
    live = LiveService(tmp_path / "gunicorn.log", MONGODB_URI=replica_set_server.uri, MONGODB_DB=db_name,
                       JWT_SECRET=SECRET, WEB_CONCURRENCY=2, RATE_LIMIT="on",
                       RATE_LIMIT_PER_SUBJECT=f"{LIMIT}/minute").start()
    yield live
    live.stop()
    with pymongo.MongoClient(replica_set_server.uri) as client:
        client.drop_database(db_name)


def workers_of(master_pid):
    """Return the pids of the processes the gunicorn master started."""
    children = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The parent pid is the second field after the command, which is in parentheses and may hold spaces.
                parent = int(stat.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == master_pid:
            children.append(int(entry))
    return children


def serving_worker(workers, service_port, client_port):
    """Return the pid of the worker holding the server's end of the connection from client_port."""
    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local_port, remote_port = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
            if (local_port, remote_port) == (service_port, client_port):
                inode = fields[9]
    assert inode is not None, "the server's end of the connection is not in /proc/net/tcp"
    for pid in workers:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def wait_until_each_serves(service, workers, timeout=30):
    """Return once each worker has answered a /healthz: the first answer at start says only that one of them is up,
    and while the other still loads the app, the first takes every connection."""
    deadline, seen = time.monotonic() + timeout, set()
    while seen != set(workers):
        assert time.monotonic() < deadline, f"only {seen} of the workers {workers} answered within {timeout} s"
        with connect(service.port) as connection:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read_response(connection)[0] == 200
            seen.add(serving_worker(workers, service.port, connection.getsockname()[1]))


@pytest.mark.slow
@pytest.mark.realdb
def test_two_workers_admit_one_subjects_limit_between_them_not_each(two_workers):
    workers = workers_of(two_workers.process.pid)
    wait_until_each_serves(two_workers, workers)  # /healthz is open to all: it counts against no limit
    request = (f"GET /appointments?uid=doctor_a HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: Bearer {make_token('doctor_a')}\r\n\r\n").encode()
    connections, served = [], []
    try:
        # One connection after another, each kept open: each new one wakes both workers, and either may take it.
        for _ in range(SENT):
            connection = connect(two_workers.port)
            connections.append(connection)
            connection.sendall(request)
            status, _, _ = read_response(connection)
            # Asked while the connection is still open: the worker holding it is the one that answered.
            served.append((status, serving_worker(workers, two_workers.port, connection.getsockname()[1])))
    finally:
        for connection in connections:
            connection.close()

    statuses = [status for status, _ in served]
    assert len(workers) == 2
    assert {worker for _, worker in served} == set(workers), "one worker served every connection"
    assert (statuses.count(200), statuses.count(429)) == (LIMIT, SENT - LIMIT)
