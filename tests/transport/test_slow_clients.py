"""Idle sockets, headers sent a byte at a time and bodies that never finish leave the service answering."""
import select
import threading
import time

import pytest
from bson import ObjectId

from tests.conftest import make_token
from tests.transport.wire import connect, get

IDLE = 40
SLOW_HEADERS = 20
SLOW_BODIES = 10
ROUNDS = 5


def still_open(sock):
    """Tell whether the service has neither answered nor closed this connection: nothing to read, not even EOF."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


class Trickle:
    """Send one byte on every held connection every half second, until stopped."""

    def __init__(self, sockets):
        self.sockets = sockets
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stopped.wait(0.5):
            for sock in self.sockets:
                try:
                    sock.send(b"a")
                except OSError:
                    pass  # the service dropped it: that is its right

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(timeout=5)


@pytest.mark.slow
@pytest.mark.realdb
def test_health_and_reads_answer_within_a_second_while_hostile_clients_hold_connections(service, stored):
    appointment_id = ObjectId()
    stored.appointments.insert_one({"_id": appointment_id, "doctor_id": "doc_slow", "patient_id": None,
                                    "reason": "Check-up"})
    token = make_token("doc_slow")
    body_head = (f"POST /patients/add_and_link?uid=doc_slow HTTP/1.1\r\nHost: clinic\r\n"
                 f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: 4000\r\n\r\n{{\"appointment_id\": \"{appointment_id}\", ").encode()
    held = []
    try:
        held += [connect(service.port) for _ in range(IDLE)]
        slow_headers = [connect(service.port) for _ in range(SLOW_HEADERS)]
        slow_bodies = [connect(service.port) for _ in range(SLOW_BODIES)]
        held += slow_headers + slow_bodies
        for sock in slow_headers:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: clinic\r\nX-Slow: ")
        for sock in slow_bodies:
            sock.sendall(body_head)
        time.sleep(1)  # let every hostile connection reach the service and start its trickle

        with Trickle(slow_headers + slow_bodies):
            for round_ in range(ROUNDS):
                started = time.monotonic()
                assert get(service.port, "/healthz") == (200, {"success": True, "data": {"status": "ok"}})
                status, body = get(service.port, f"/appointments/{appointment_id}?uid=doc_slow", token)
                assert time.monotonic() - started < 1
                assert status == 200 and body["data"]["_id"] == str(appointment_id)
                if round_ == 0:  # the answers above came while every hostile connection was held
                    assert all(map(still_open, held))
                time.sleep(0.3)
            assert all(map(still_open, slow_bodies))  # bodies are cut at BODY_TIMEOUT_S (10 s), headers after 5 s
    finally:
        for sock in held:
            sock.close()
    assert stored.patients.count_documents({}) == 0  # no unfinished body was taken for a request
