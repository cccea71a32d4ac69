"""Hold a request body sent without a length (chunked) to the limit a declared length is held to."""
import io

from werkzeug.wsgi import get_content_length


class BodyLimit:
    """WSGI middleware that reads an unsized body up to one byte past the limit before the app sees it."""

    def __init__(self, wsgi_app, limit):
        self.wsgi_app = wsgi_app
        self.limit = limit

    def __call__(self, environ, start_response):
        """Hand the app an unsized body as a sized one, so that one over the limit is refused whole (413)."""
        # Werkzeug reads a stream the server ends itself (`wsgi.input_terminated`) up to the limit and
        # stops there without a word: JSON padded to 64 KiB, then anything at all, would be taken.
        if environ.get("wsgi.input_terminated") and get_content_length(environ) is None:
            body = environ["wsgi.input"].read(self.limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)  # the body is now sized: chunked would void the length
        return self.wsgi_app(environ, start_response)
