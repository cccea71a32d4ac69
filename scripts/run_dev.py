"""Run the service for development: dev secret, embedded database, gunicorn."""
import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import embedded_db
import processes
from dev_secret import INSTANCE_DIR, ensure_instance_dir, load_or_create_master_key, load_or_create_secret

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from config import Config, ConfigError, number_setting  # noqa: E402 - the service's own settings, checked before anything starts

BIN_DIR = Path(sys.executable).parent  # the venv's bin/, not the resolved interpreter's
KEY_VARIABLES = ("JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL")
MASTER_KEY_VARIABLES = ("FIELD_ENCRYPTION_KEY", "FIELD_ENCRYPTION_KMS_PROVIDER")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DB_START_TIMEOUT = 30
DB_STOP_TIMEOUT = 10
GUNICORN_STOP_TIMEOUT = 15  # graceful_timeout in gunicorn.conf.py plus a margin
# Locked by the make run using instance/db, and holding its pid for the message to a second one.
LOCK_FILE = INSTANCE_DIR / "make_run.lock"

_stop_signals = []
_gunicorn = None
_instance_lock = None  # LOCK_FILE's descriptor, open (so locked) until this process ends


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


def port_setting(name, default):
    """Return the port number in the environment variable name, refusing anything else in one line."""
    try:
        return number_setting(name, default, least=1, most=65535, what="a port number")
    except ConfigError as error:
        fail(error)


def embedded_db_port():
    """Return the port for the embedded database from EMBEDDED_DB_PORT."""
    return port_setting("EMBEDDED_DB_PORT", 27117)


def port_in_use(port):
    """Return whether something already listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def shown(path):
    """Return path as the operator would type it: relative to the clone when it lies inside."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def hold_instance():
    """Lock instance/ for this launcher's lifetime, or exit naming the make run that holds it."""
    global _instance_lock
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited: only this process holds the lock
    try:
        # The kernel drops an flock when its holder dies, even by kill -9: a stale file never blocks a start.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        fail(f"cannot start: another make run holds {shown(INSTANCE_DIR / 'db')} "
             f"(pid {holder if holder.isdigit() else 'unknown'}); stop it first")
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _instance_lock = fd


def bind_error(host, port):
    """Return the error binding host:port gives, or None when it is free (as gunicorn binds: SO_REUSEADDR)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as probe:
        # A port left in TIME_WAIT by the last run is free to gunicorn, which sets this too.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            return error
    return None


def refuse_taken_address(host, port, port_variable, host_variable=None):
    """Exit with one line naming the variable to set if host:port cannot be listened on."""
    # A bind, not a connect: it also finds a socket bound but not listening, or bound on every interface.
    try:
        error = bind_error(host, port)
    except socket.gaierror as unknown:
        fail(f"cannot start: {host_variable} {host!r} is not an address of this machine ({unknown.strerror}); "
             f"set {host_variable}")
    if error is None:
        return
    if error.errno == errno.EADDRINUSE:
        other = port + 1 if port < 65535 else port - 1
        fail(f"cannot start: {host}:{port} is already in use; stop what holds it or set {port_variable} "
             f"(make run {port_variable}={other})")
    variables = f"{host_variable} or {port_variable}" if host_variable else port_variable
    fail(f"cannot start: cannot listen on {host}:{port} ({error.strerror}); set {variables}")


def refuse_taken_ports(embedded):
    """Exit with one line if gunicorn's address or the embedded database's port is taken, before anything starts."""
    host = os.environ.get("HOST") or "127.0.0.1"  # as gunicorn.conf.py reads HOST and PORT
    port = port_setting("PORT", 8000)
    refuse_taken_address(host, port, "PORT", "HOST")
    if embedded:
        db_port = embedded_db_port()
        if db_port == port:
            fail(f"cannot start: PORT and EMBEDDED_DB_PORT are both {port}; set one of them to another port")
        # Otherwise a leftover server could answer our ping while ours fails to bind.
        refuse_taken_address("127.0.0.1", db_port, "EMBEDDED_DB_PORT")


def die_with_make():
    """Stop (as on Ctrl-C) when the make that started this launcher dies, even by kill -9."""
    # make runs this recipe line itself, with no shell between: make is the parent. Started by hand (nohup,
    # a script that exits), the parent's end is no reason to stop, so only under make.
    if "MAKELEVEL" in os.environ:
        processes.die_when_parent_dies()


def start_database(port):
    """Start secantusd-py on 127.0.0.1:port, storing its data in instance/db."""
    # The venv's own, which `make install` puts there (the tests also take one on PATH).
    if not embedded_db.BESIDE_INTERPRETER.exists():
        fail(f"{embedded_db.BESIDE_INTERPRETER} not found: run `make install`")
    # A session of its own keeps Ctrl-C away from the database: it must outlive
    # the gunicorn workers, so this launcher stops it last.
    return embedded_db.start(
        embedded_db.command(port, INSTANCE_DIR / "db"), cwd=ROOT, own_session=True,
        preexec_fn=processes.DIE_WITH_PARENT,
    )


def start_gunicorn(env):
    """Start gunicorn; it gets SIGTERM if the launcher is killed, and its master then stops its workers."""
    return subprocess.Popen(gunicorn_command(), cwd=ROOT, env=env, preexec_fn=processes.DIE_WITH_PARENT)


def wait_for_database(process, uri):
    """Return once the database answers a ping or a stop signal came; exit if it dies or stays silent."""
    try:
        embedded_db.wait_until_answering(process, uri, DB_START_TIMEOUT, keep_waiting=lambda: not _stop_signals)
    except embedded_db.DidNotAnswer as error:
        exited = error.status is not None  # then it said why on this terminal, which has its output
        fail(f"embedded database {error}" + (" (see its output above)" if exited else ""))


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
    die_with_make()
    ensure_instance_dir()
    env = dict(os.environ)
    provide_dev_secrets(env)
    refuse_invalid_settings(env)
    embedded = not env.get("MONGODB_URI")
    if embedded:  # instance/db is what two launchers cannot share; with MONGODB_URI it is not used
        hold_instance()
    refuse_taken_ports(embedded)
    db_name = env.get("MONGODB_DB") or "clinic"
    database = None
    try:
        if not embedded:
            where = describe_database(env["MONGODB_URI"], db_name)
            print(f"run_dev: using MongoDB from MONGODB_URI at {where}", flush=True)
        else:
            port = embedded_db_port()
            database = start_database(port)
            env["MONGODB_URI"] = embedded_db.uri(port)
            wait_for_database(database, env["MONGODB_URI"])
            where = describe_database(env["MONGODB_URI"], db_name)
            print(f"run_dev: using embedded secantusd-py at {where} "
                  f"(data in {shown(INSTANCE_DIR / 'db')})", flush=True)
        if not _stop_signals:
            _gunicorn = start_gunicorn(env)
            if _stop_signals:  # the signal came while gunicorn was starting
                _gunicorn.send_signal(signal.SIGTERM)
            _gunicorn.wait()
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        processes.stop(_gunicorn, GUNICORN_STOP_TIMEOUT)
        processes.stop(database, DB_STOP_TIMEOUT)
    return exit_status(_gunicorn)


if __name__ == "__main__":
    sys.exit(main())
