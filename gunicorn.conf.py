"""Every gunicorn setting of the service: `gunicorn wsgi:app`, `make run` and the image all read this file.

gunicorn runs it in the master before anything else, so a bad setting stops the server here with one line,
instead of in each worker, which gunicorn would boot again and again.
"""
import os

from config import Config, ConfigError, gunicorn_workers

try:
    Config().validate()
    workers = gunicorn_workers()
except ConfigError as error:
    raise SystemExit(f"clinic-records: cannot start: {error}") from None

bind = f"{os.environ.get('HOST') or '127.0.0.1'}:{os.environ.get('PORT') or '8000'}"
# gevent, not threads: an idle socket, a header sent a byte at a time or a body that never ends costs a
# greenlet, not one of a handful of threads, so /healthz and everyone else keep being answered.
worker_class = "gunicorn_worker.ClinicWorker"
worker_connections = 1000  # per worker; past it the worker stops accepting until one closes
# The gevent worker reads each request's line and headers under this deadline (and waits this long for the
# next request on a kept-alive connection): a client still sending headers after 5 s is dropped.
keepalive = 5
timeout = 30
graceful_timeout = 10
# No access log: the app logs its own request line, and gunicorn's would carry query strings (`q=` names).
accesslog = None
# Fixed, not LOG_LEVEL: gunicorn's debug lines quote raw request bytes, query strings included.
loglevel = "info"
# Its default control socket is one path per user: two services would fight over it.
control_socket_disable = True


def worker_exit(server, worker):
    """Close the app's database handle while the worker can still run code: libmongocrypt's own finaliser,
    left to interpreter shutdown under gevent, fails with a traceback on every stop."""
    app = getattr(worker, "wsgi", None)
    database = getattr(app, "extensions", {}).get("clinic.db")
    if database is not None:
        database.close()
