"""Raw HTTP/1.1 over a socket, for what a well-behaved client library would never send."""
import json
import socket
import time


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
