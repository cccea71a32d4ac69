"""A body must arrive whole within BODY_TIMEOUT_S, and a request without a token never waits for its body."""
import json
import select
import time
import uuid

import pymongo
import pytest
from bson import ObjectId

from tests.conftest import SECRET, jane, make_token
from tests.live import LiveService
from tests.transport.wire import Trickle, chunked, connect, get, read_response, still_open

DEADLINE_S = 2.0
# What the service may take beyond the deadline to answer and close, on a busy two-core machine.
GRACE_S = 1.5
# A bound on the honest requests' answers that a busy two-core machine keeps; gevent answers in milliseconds.
ANSWER_WITHIN_S = 10
SLOW_PER_KIND = 15  # of each framing, with a token and without: 60 in all
TIMED_OUT = {"success": False, "error": "Request body not received in time"}
NO_TOKEN = {"success": False, "error": "Missing bearer token"}
FRAMINGS = ("chunked", "length")
# Every route that takes a body, with a path that reaches it; the ids are fixed, so that the tests are named the
# same in every process that collects them (pytest-xdist's workers).
NO_SUCH_RECORD = "6b1000000000000000000001"
BODY_ROUTES = (
    ("POST", "/patients/add_and_link?uid=doc_body"),
    ("PATCH", f"/patients/{NO_SUCH_RECORD}?uid=doc_body"),
    ("POST", "/appointments?uid=doc_body"),
    ("PUT", f"/appointments/{NO_SUCH_RECORD}/patient?uid=doc_body"),
)


@pytest.fixture(scope="module")
def service(replica_set_server, tmp_path_factory):
    """gunicorn as the image runs it, with a body deadline short enough to wait out in a test."""
    db_name = "slow_bodies_" + uuid.uuid4().hex[:12]
    live = LiveService(tmp_path_factory.mktemp("gunicorn") / "gunicorn.log", MONGODB_URI=replica_set_server.uri,
                       MONGODB_DB=db_name, JWT_SECRET=SECRET, BODY_TIMEOUT_S=DEADLINE_S).start()
    live.db_name = db_name
    yield live
    live.stop()
    with pymongo.MongoClient(replica_set_server.uri) as client:
        client.drop_database(db_name)


def request_head(method, path, framing, *, token=None, length=4000, expect_continue=False):
    """Return the head of a request whose body is chunked or of a declared length, and follows separately."""
    lines = [f"{method} {path} HTTP/1.1", "Host: clinic", "Content-Type: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines.append("Transfer-Encoding: chunked" if framing == "chunked" else f"Content-Length: {length}")
    if expect_continue:
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def closed_by_service(sock, timeout):
    """Tell whether the service ends the connection (end of stream, not another answer) within timeout."""
    readable, _, _ = select.select([sock], [], [], timeout)
    if not readable:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return False  # a reset can destroy an answer the client has not read yet: the service must not send one


def assert_answered_and_closed(sock, status, envelope, timeout):
    """Read one answer in the envelope with Connection: close, then the end of the connection."""
    got, headers, body = read_response(sock, timeout)
    assert (got, json.loads(body)) == (status, envelope)
    assert headers["connection"] == "close"
    assert closed_by_service(sock, 1)
    return headers


@pytest.fixture
def appointments(stored, request):
    """Make free appointments of a doctor named after the test; return the doctor and a function adding one."""
    doctor = "doc_" + uuid.uuid4().hex[:8]

    def add():
        appointment_id = ObjectId()
        stored.appointments.insert_one({"_id": appointment_id, "doctor_id": doctor, "patient_id": None})
        return str(appointment_id)

    return doctor, add


@pytest.mark.slow
@pytest.mark.realdb
def test_slow_bodies_are_cut_at_the_deadline_while_health_and_reads_answer(service, stored, appointments):
    doctor, add_appointment = appointments
    appointment_id = add_appointment()
    token = make_token(doctor)
    path = f"/patients/add_and_link?uid={doctor}"
    body_start = json.dumps(jane(appointment_id))[:-1].encode() + b", "  # a body that never ends
    with_token, without_token = [], []  # with_token: [socket, framing, head sent at, 100 Continue read at]
    try:
        for framing in FRAMINGS:
            for _ in range(SLOW_PER_KIND):
                sock = connect(service.port)
                sock.sendall(request_head("POST", path, framing, token=token, expect_continue=True))
                with_token.append([sock, framing, time.monotonic(), None])
        # Each 100 Continue says that the service has handed its request to the app, which now reads the body: the
        # deadline started between the head's sending and the 100's arrival.
        for held in with_token:
            sock, framing = held[:2]
            assert read_response(sock, 5)[0] == 100
            held[3] = time.monotonic()
            sock.sendall((b"fff\r\n" if framing == "chunked" else b"") + body_start)
        for framing in FRAMINGS:
            for _ in range(SLOW_PER_KIND):
                sock = connect(service.port)
                sock.sendall(request_head("POST", path, framing) + (b"fff\r\n" if framing == "chunked" else b""))
                without_token.append(sock)
        slow = [sock for sock, _, _, _ in with_token]

        with Trickle(slow + without_token):
            rounds_while_held = 0
            while True:
                started = time.monotonic()
                assert get(service.port, "/healthz", timeout=ANSWER_WITHIN_S) == (
                    200, {"success": True, "data": {"status": "ok"}})
                status, body = get(service.port, f"/appointments/{appointment_id}?uid={doctor}", token,
                                   timeout=ANSWER_WITHIN_S)
                assert time.monotonic() - started < ANSWER_WITHIN_S
                assert status == 200 and body["data"]["patient_id"] is None
                # Nothing is cut before the deadline: every body whose deadline cannot have passed yet (it started
                # after its head was sent) is still being read.
                open_now = [(still_open(sock), sent_at) for sock, _, sent_at, _ in with_token]
                looked = time.monotonic()
                not_due = [is_open for is_open, sent_at in open_now if looked < sent_at + DEADLINE_S]
                assert all(not_due), f"{not_due.count(False)} bodies cut before their deadline"
                rounds_while_held += bool(not_due)
                if looked > with_token[-1][2] + DEADLINE_S - 0.6:
                    break
                time.sleep(0.2)
            assert rounds_while_held > 0
            for sock in without_token:
                headers = assert_answered_and_closed(sock, 401, NO_TOKEN, 1)
                assert headers["www-authenticate"] == "Bearer"
            for sock, _, _, continued_at in with_token:
                assert_answered_and_closed(sock, 408, TIMED_OUT, continued_at + DEADLINE_S + GRACE_S - time.monotonic())
    finally:
        for sock in [held[0] for held in with_token] + without_token:
            sock.close()
    assert stored.patients.count_documents({"doctor_id": doctor}) == 0


@pytest.mark.slow
@pytest.mark.realdb
@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_a_request_without_a_token_is_refused_before_its_body_and_its_connection_closed(service, method, path,
                                                                                          framing):
    with connect(service.port) as sock:
        sock.sendall(request_head(method, path, framing))  # and not one byte of the body
        headers = assert_answered_and_closed(sock, 401, NO_TOKEN, DEADLINE_S / 2)
    assert headers["www-authenticate"] == "Bearer"


@pytest.mark.slow
@pytest.mark.realdb
@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/healthz", 200), ("GET", "/readyz", 200), ("POST", "/healthz", 405),
])
def test_a_body_on_a_route_that_takes_none_is_not_waited_for(service, method, path, status, framing):
    with connect(service.port) as sock:
        sock.sendall(request_head(method, path, framing))  # and not one byte of the body
        got, headers, _ = read_response(sock, DEADLINE_S / 2)
        assert got == status
        # The unread body leaves no way to find where a next request would start.
        assert headers["connection"] == "close"
        assert closed_by_service(sock, 1)


def pieces(body, framing, count):
    """Split a body into count pieces to send one after another, framed as a whole."""
    if framing == "chunked":
        body = chunked(body, size=max(1, len(body) // count))
    step = -(-len(body) // count)
    return [body[i:i + step] for i in range(0, len(body), step)]


@pytest.mark.slow
@pytest.mark.realdb
@pytest.mark.parametrize("framing", FRAMINGS)
def test_the_deadline_holds_the_whole_body_not_each_read(service, stored, appointments, framing):
    doctor, add_appointment = appointments
    in_time, too_late = add_appointment(), add_appointment()
    token = make_token(doctor)
    path = f"/patients/add_and_link?uid={doctor}"
    bodies = {appointment: json.dumps(jane(appointment)).encode() for appointment in (in_time, too_late)}
    # The same pace for both, a piece every quarter second: one ends within the deadline, one would end after it.
    sent = {in_time: pieces(bodies[in_time], framing, 4), too_late: pieces(bodies[too_late], framing, 16)}
    socks = {appointment: connect(service.port) for appointment in sent}
    try:
        for appointment, sock in socks.items():
            sock.sendall(request_head("POST", path, framing, token=token, length=len(bodies[appointment])))
        for turn in range(16):
            for appointment, sock in socks.items():
                if turn < len(sent[appointment]):
                    try:
                        sock.sendall(sent[appointment][turn])
                    except OSError:
                        assert appointment == too_late  # cut off: the service's right
            time.sleep(0.25)
        status, headers, body = read_response(socks[in_time])
        assert (status, json.loads(body)["data"]["lastName"]) == (201, "Smith")
        assert headers["connection"] == "keep-alive"  # read whole, so the connection can serve the next request
        assert_answered_and_closed(socks[too_late], 408, TIMED_OUT, 1)
    finally:
        for sock in socks.values():
            sock.close()
    patient = stored.patients.find_one({"doctor_id": doctor})
    assert stored.patients.count_documents({"doctor_id": doctor}) == 1
    assert stored.appointments.find_one({"_id": ObjectId(in_time)})["patient_id"] == patient["_id"]
    assert stored.appointments.find_one({"_id": ObjectId(too_late)})["patient_id"] is None
