"""A client pipelining requests that never wait on I/O does not keep a worker to itself."""
import threading

import pytest

from tests.conftest import SECRET
from tests.live import LiveService
from tests.transport.wire import connect, read_response

RESPONSE_END = b"\r\n\r\n"

PIPELINED = 3000


@pytest.fixture
def one_worker(replica_set_server, tmp_path):
    """The service with a single worker, so that both clients below are served by the same one."""
    live = LiveService(tmp_path / "gunicorn.log", MONGODB_URI=replica_set_server.uri, MONGODB_DB="fair_turns",
                       JWT_SECRET=SECRET, WEB_CONCURRENCY=1).start()
    yield live
    live.stop()


@pytest.mark.slow
@pytest.mark.realdb
def test_another_client_is_answered_while_one_pipelines_thousands_of_health_checks(one_worker):
    flood = connect(one_worker.port, timeout=30)
    answered = []  # how many of the flood's answers had arrived, read continuously so it never blocks on sending

    def read_flood():
        # Pipelined answers arrive several to a read: split them by their Content-Length.
        pending = b""
        while len(answered) < PIPELINED:
            chunk = flood.recv(65536)
            if not chunk:
                return
            pending += chunk
            while RESPONSE_END in pending:
                head, _, rest = pending.partition(RESPONSE_END)
                length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
                             .split(b":")[1])
                if len(rest) < length:
                    break
                answered.append(int(head.split()[1]))
                pending = rest[length:]

    reader = threading.Thread(target=read_flood, daemon=True)
    reader.start()
    flood.sendall(b"GET /healthz HTTP/1.1\r\nHost: clinic\r\n\r\n" * PIPELINED)
    while len(answered) < 100:
        reader.join(0.01)
        assert reader.is_alive() or len(answered) == PIPELINED
    with connect(one_worker.port, timeout=30) as other:
        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: clinic\r\nConnection: close\r\n\r\n")
        status, _, body = read_response(other, timeout=30)
        flood_answered_meanwhile = len(answered)
    reader.join(60)
    flood.close()

    assert status == 200 and body.strip() == b'{"success":true,"data":{"status":"ok"}}'
    assert answered == [200] * PIPELINED
    # Taking turns, the other client waits for a handful of the flood's requests, not for the rest of them.
    assert flood_answered_meanwhile < PIPELINED // 2, flood_answered_meanwhile
