"""A JWKS endpoint on 127.0.0.1 for token tests, and RSA signing keys as an identity provider holds them."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from scripts.mint_token import mint


class SigningKey:
    """A 2048-bit RSA key pair published under a kid."""

    def __init__(self, kid):
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self):
        """Return the public half as a JWK, the way Firebase-style JWKS endpoints publish it."""
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self):
        """Return the public key as PEM bytes."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(self, sub="doctor_a", *, kid=None, **options):
        """Mint an RS256 token signed with this key, under its own kid unless another is given."""
        return mint(sub, self.private_key, algorithm="RS256", headers={"kid": kid or self.kid}, **options)


class JwksServer:
    """An HTTP server answering GET with a changeable key set; it counts requests and can fail or stall.

    `keys` holds SigningKeys or raw JWK dicts; `status` and `body` replace the answer; `stall_seconds` delays it.
    """

    def __init__(self, *keys):
        self.keys = list(keys)
        self.status = 200
        self.body = None
        self.stall_seconds = 0
        self.requests = 0
        self._count_lock = threading.Lock()
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/.well-known/jwks.json"

    def start(self):
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self):
        """Stop serving and close the port, so later connections are refused."""
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        """Return a request handler class bound to this server's state."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with owner._count_lock:
                    owner.requests += 1
                if owner.stall_seconds:
                    owner._released.wait(owner.stall_seconds)
                body = owner.body if owner.body is not None else json.dumps(
                    {"keys": [key if isinstance(key, dict) else key.jwk() for key in owner.keys]}).encode()
                try:
                    self.send_response(owner.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except ConnectionError:
                    pass  # a client that timed out has hung up, which is what a stall is for

            def log_message(self, *args):
                """Keep the test output quiet."""

        return Handler
