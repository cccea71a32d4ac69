"""Raw HTTP/1.1 over a socket, for what a well-behaved client library would never send, and the kernel's view of
what the service has done with such connections."""
import json
import select
import socket
import threading
import time

# /proc/net/tcp's states (include/net/tcp_states.h).
ESTABLISHED, LISTEN = "01", "0A"


def connect(port, timeout=5):
    """Open a TCP connection to the service."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def chunked(body, size=4096):
    """Frame body with Transfer-Encoding: chunked."""
    frames = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(frames) + b"0\r\n\r\n"


def read_response(sock, timeout=5):
    """Read one response; return (status, headers with lower-case names, body bytes)."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        data += _receive(sock, deadline)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += _receive(sock, deadline)
    return int(status_line.split()[1]), headers, body[:length]


def exchange(port, request, timeout=5):
    """Send raw request bytes on a fresh connection and return the response as read_response does."""
    with connect(port, timeout) as sock:
        sock.sendall(request)
        return read_response(sock, timeout)


def get(port, path, token=None, timeout=1):
    """GET path on a fresh connection and return (status, decoded JSON body)."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: clinic\r\n{auth}Connection: close\r\n\r\n".encode()
    status, _, body = exchange(port, request, timeout)
    return status, json.loads(body)


def _receive(sock, deadline):
    """Receive what arrived, failing once the deadline has passed or the peer has closed."""
    sock.settimeout(max(deadline - time.monotonic(), 0.01))
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the service closed the connection before a whole response")
    return data


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


def wait_until_taken(port, socks, timeout=10):
    """Wait until the service on port has accepted every one of these connections and read all that was sent on
    them, as the kernel counts it: no connection left in its listening socket's queue, no byte unread on its end."""
    ours = {sock.getsockname()[1] for sock in socks}
    deadline = time.monotonic() + timeout
    while True:
        queued, unread, taken = 0, 0, set()
        for local_port, remote_port, state, waiting in _tcp_sockets():
            if local_port != port:
                continue
            if state == LISTEN:
                queued += waiting  # for a listening socket: connections not accepted yet
            elif state == ESTABLISHED and remote_port in ours:
                taken.add(remote_port)
                unread += waiting  # bytes received that the service has not read
        if queued == 0 and unread == 0 and taken == ours:
            return
        assert time.monotonic() < deadline, (f"after {timeout} s: {queued} connections not accepted, {unread} bytes "
                                             f"unread, {len(ours - taken)} of ours not seen")
        time.sleep(0.01)


def _tcp_sockets():
    """Yield (local port, remote port, state, receive queue) of every IPv4 TCP socket in /proc/net/tcp."""
    with open("/proc/net/tcp") as table:
        next(table)  # the column names
        for line in table:
            _, local, remote, state, queues = line.split()[:5]
            yield (int(local.rpartition(":")[2], 16), int(remote.rpartition(":")[2], 16), state,
                   int(queues.rpartition(":")[2], 16))
