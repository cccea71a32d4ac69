"""Run the service for development: dev secret, embedded database, gunicorn."""
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from dev_secret import INSTANCE_DIR, ensure_instance_dir, load_or_create_master_key, load_or_create_secret

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from config import Config, ConfigError  # noqa: E402 - the service's own settings, checked before anything starts

BIN_DIR = Path(sys.executable).parent  # the venv's bin/, not the resolved interpreter's
KEY_VARIABLES = ("JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL")
MASTER_KEY_VARIABLES = ("FIELD_ENCRYPTION_KEY", "FIELD_ENCRYPTION_KMS_PROVIDER")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DB_START_TIMEOUT = 30
DB_STOP_TIMEOUT = 10
GUNICORN_STOP_TIMEOUT = 15  # graceful_timeout in gunicorn.conf.py plus a margin
PR_SET_PDEATHSIG = 1

_stop_signals = []
_gunicorn = None


def fail(message):
    """Exit with one line on stderr; the caller's finally blocks still clean up."""
    raise SystemExit(f"run_dev: {message}")


def request_stop(signum, frame):
    """Remember the signal and ask gunicorn to shut down gracefully."""
    _stop_signals.append(signum)
    if _gunicorn is not None:
        _gunicorn.send_signal(signal.SIGTERM)


def provide_dev_secrets(env):
    """Give the app the development secret and master key unless others are configured."""
    if not any(env.get(name) for name in KEY_VARIABLES):
        env["JWT_SECRET"] = load_or_create_secret()
    encryption_off = (env.get("FIELD_ENCRYPTION") or "").strip().lower() == "off"
    if not encryption_off and not any(env.get(name) for name in MASTER_KEY_VARIABLES):
        env["FIELD_ENCRYPTION_KEY"] = load_or_create_master_key()


def embedded_db_port():
    """Return the port for the embedded database from EMBEDDED_DB_PORT."""
    value = os.environ.get("EMBEDDED_DB_PORT") or "27117"
    if not value.isdigit() or not 0 < int(value) < 65536:
        fail(f"EMBEDDED_DB_PORT must be a port number, not {value!r}")
    return int(value)


def port_in_use(port):
    """Return whether something already listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def die_with_launcher():
    """Have Linux send the database SIGTERM if the launcher itself is killed."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_database(port):
    """Start secantusd-py on 127.0.0.1:port, storing its data in instance/db."""
    executable = BIN_DIR / "secantusd-py"
    if not executable.exists():
        fail(f"{executable} not found: run `make install`")
    # Otherwise a leftover server could answer our ping while ours fails to bind.
    if port_in_use(port):
        fail(f"port {port} is already in use (a leftover secantusd-py?); "
             "stop it or set EMBEDDED_DB_PORT")
    command = [
        str(executable), "--host", "127.0.0.1", "--port", str(port),
        "--storage-path", str(INSTANCE_DIR / "db"), "--log-level", "WARNING",
    ]
    # A session of its own keeps Ctrl-C away from the database: it must outlive
    # the gunicorn workers, so this launcher stops it last.
    return subprocess.Popen(
        command, cwd=ROOT, start_new_session=True,
        preexec_fn=die_with_launcher if sys.platform.startswith("linux") else None,
    )


def wait_for_database(process, uri):
    """Return once the database answers a ping; exit if it dies or stays silent."""
    client = MongoClient(uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
    deadline = time.monotonic() + DB_START_TIMEOUT
    try:
        while not _stop_signals:
            if process.poll() is not None:
                fail(f"embedded database exited with status {process.returncode} "
                     "before answering a ping (see its output above)")
            try:
                client.admin.command("ping")
                return
            except PyMongoError:
                if time.monotonic() > deadline:
                    fail(f"embedded database did not answer a ping within {DB_START_TIMEOUT} s")
                time.sleep(0.2)
    finally:
        client.close()


def describe_database(uri, db_name):
    """Return the database's hosts and name, without credentials or options."""
    scheme, _, rest = uri.partition("://")
    hosts = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    return f"{scheme}://{hosts}, database {db_name}"


def refuse_invalid_settings(env):
    """Exit with the service's one-line refusal before a database is started for nothing."""
    os.environ.update(env)  # the settings this launcher added (dev secret, master key) count too
    try:
        Config().validate()
    except ConfigError as error:
        fail(f"cannot start: {error}")


def gunicorn_command():
    """Return the gunicorn command line: every setting is in gunicorn.conf.py, as for the image."""
    return [str(BIN_DIR / "gunicorn"), "wsgi:app"]


def stop(process, timeout):
    """Terminate process, killing it if it is still running after timeout seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def exit_status(process):
    """Return the status to exit with: gunicorn's, or the shell's for a signal."""
    if process is not None:
        code = process.returncode
        return 128 - code if code < 0 else code
    return 128 + _stop_signals[0] if _stop_signals else 0


def main():
    """Serve the app with gunicorn until it exits or a signal asks us to stop."""
    global _gunicorn
    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    ensure_instance_dir()
    env = dict(os.environ)
    provide_dev_secrets(env)
    refuse_invalid_settings(env)
    db_name = env.get("MONGODB_DB") or "clinic"
    database = None
    try:
        if env.get("MONGODB_URI"):
            where = describe_database(env["MONGODB_URI"], db_name)
            print(f"run_dev: using MongoDB from MONGODB_URI at {where}", flush=True)
        else:
            port = embedded_db_port()
            database = start_database(port)
            env["MONGODB_URI"] = f"mongodb://127.0.0.1:{port}/?directConnection=true"
            wait_for_database(database, env["MONGODB_URI"])
            where = describe_database(env["MONGODB_URI"], db_name)
            print(f"run_dev: using embedded secantusd-py at {where} "
                  "(data in instance/db)", flush=True)
        if not _stop_signals:
            _gunicorn = subprocess.Popen(gunicorn_command(), cwd=ROOT, env=env)
            if _stop_signals:  # the signal came while gunicorn was starting
                _gunicorn.send_signal(signal.SIGTERM)
            _gunicorn.wait()
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        stop(_gunicorn, GUNICORN_STOP_TIMEOUT)
        stop(database, DB_STOP_TIMEOUT)
    return exit_status(_gunicorn)


if __name__ == "__main__":
    sys.exit(main())
