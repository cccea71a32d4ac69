"""Start, measure and stop the benchmark's processes: the database, gunicorn, and CPU time from /proc."""
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pymongo

ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent  # the venv's bin/, as scripts/run_dev.py uses it
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
START_TIMEOUT = 60
# The service's own settings; the bench sets those it needs and drops the rest, so a developer's
# JWT_JWKS_URL (say) cannot take precedence over the bench's secret, nor a FIELD_ENCRYPTION=off over its master key.
SERVICE_VARIABLE_PREFIXES = ("MONGODB_", "JWT_", "CORS_", "LOG_LEVEL", "ALLOW_STANDALONE", "HOST", "PORT",
                             "FIELD_ENCRYPTION")

sys.path.insert(0, str(ROOT / "scripts"))
import run_dev  # noqa: E402 - `make run`'s gunicorn command line, reused so the flags cannot drift


def free_port():
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def die_with_parent():
    """Have Linux send this child SIGTERM when the bench process dies, however it dies."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(command, log_path, env=None, own_session=False):
    """Start command with its output in log_path; it dies with us, and in its own session Ctrl-C skips it."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=own_session,
                                preexec_fn=die_with_parent)


def children(pid):
    """Return the pids whose parent is pid."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def cpu_seconds(pids):
    """Return the user plus system CPU time the processes have used so far (utime + stime in /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue  # exited: its time is lost, which the caller sees as a pid that vanished
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return total / CLOCK_TICKS


def cpu_by_process():
    """Return {pid: (CPU seconds so far, command name)} for every process on the machine."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    head, _, tail = stat.read().rpartition(")")
            except OSError:
                continue
            fields = tail.split()
            found[int(entry)] = ((int(fields[11]) + int(fields[12])) / CLOCK_TICKS, head.partition("(")[2])
    return found


def established_sockets(port):
    """Return the `socket:[inode]` names of the established TCP connections whose local port is port."""
    names = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)  # the header
                for line in lines:
                    fields = line.split()
                    # fields[1] is the local address as hex "ip:port"; fields[3] is the state, 01 = ESTABLISHED.
                    if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                        names.add(f"socket:[{fields[9]}]")
        except OSError:
            continue
    return names


def machine_busy_seconds():
    """Return the CPU time all cores have spent not idle since boot (/proc/stat)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


class Database:
    """One secantusd-py process on a free port with temporary storage."""

    def __init__(self, storage, log_path, standalone=False):
        self.storage = storage
        self.log_path = log_path
        self.standalone = standalone
        self.port = free_port()
        self.process = None

    @property
    def uri(self):
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self):
        """Start the server, as scripts/run_dev.py does, and wait until it answers a ping."""
        executable = BIN_DIR / "secantusd-py"
        if not executable.exists():
            raise SystemExit(f"bench: {executable} not found: run `make install`")
        command = [str(executable), "--host", "127.0.0.1", "--port", str(self.port),
                   "--storage-path", str(self.storage), "--log-level", "WARNING"]
        if self.standalone:
            command.append("--standalone")
        self.process = spawn(command, self.log_path, own_session=True)
        probe = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                if self.process.poll() is not None:
                    raise SystemExit(f"bench: secantusd-py exited with {self.process.returncode}; see {self.log_path}")
                try:
                    probe.admin.command("ping")
                    return self
                except pymongo.errors.PyMongoError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"bench: secantusd-py did not answer within {START_TIMEOUT} s") from None
                    time.sleep(0.2)
        finally:
            probe.close()

    def pids(self):
        """Return the server's pid and its children's."""
        return [self.process.pid, *children(self.process.pid)]

    def stop(self):
        """Stop the server."""
        run_dev.stop(self.process, 15)


def service_environment(uri, db_name, secret, master_key, standalone=False):
    """Return the environment for gunicorn: ours without the service's settings, plus the bench's.

    master_key is a FIELD_ENCRYPTION_KEY (base64), or None for FIELD_ENCRYPTION=off.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_VARIABLE_PREFIXES)}
    env.update(MONGODB_URI=uri, MONGODB_DB=db_name, JWT_SECRET=secret)
    if master_key:
        env["FIELD_ENCRYPTION_KEY"] = master_key  # in the environment only: never written to a file
    else:
        env["FIELD_ENCRYPTION"] = "off"
    if standalone:
        env["ALLOW_STANDALONE"] = "1"  # the service refuses writes without transactions unless told otherwise
    return env


def gunicorn_command(app_spec):
    """Return `make run`'s gunicorn command line (scripts/run_dev.py), serving app_spec; gunicorn.conf.py does the rest."""
    command = run_dev.gunicorn_command()
    command[command.index("wsgi:app")] = app_spec
    return command


class Gunicorn:
    """One gunicorn serving an app spec with `make run`'s configuration (gunicorn.conf.py) on a free port."""

    def __init__(self, app_spec, env, log_path):
        self.app_spec = app_spec
        self.port = free_port()
        self.env = dict(env, HOST="127.0.0.1", PORT=str(self.port))
        self.log_path = log_path
        self.command = gunicorn_command(app_spec)
        self.workers = int(self.env.get("WEB_CONCURRENCY") or 2)  # gunicorn.conf.py's default
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        """Start gunicorn and wait until /readyz answers 200 and every worker has booted."""
        self.process = spawn(self.command, self.log_path, env=self.env, own_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"bench: gunicorn {self.app_spec} exited with {self.process.returncode}; "
                                 f"see {self.log_path}")
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: gunicorn {self.app_spec} not ready within {START_TIMEOUT} s; "
                                 f"see {self.log_path}")
            if len(self.worker_pids()) == self.workers and self._ready():
                return self
            time.sleep(0.2)

    def _ready(self):
        """Tell whether GET /readyz answers 200."""
        try:
            with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def log_offset(self):
        """Return where the log ends now, for request_durations() after a run."""
        return self.log_path.stat().st_size

    def request_durations(self, offset, route):
        """Return the durations (ms) the app's own request log gave to a route's requests since offset."""
        pattern = re.compile(rf" clinic\.requests POST {re.escape(route)} \d{{3}} ([\d.]+)ms ")
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
        return [float(m.group(1)) for m in pattern.finditer(text)]

    def worker_pids(self):
        """Return the workers' pids: the children of the gunicorn master."""
        return children(self.process.pid)

    def connections_per_worker(self):
        """Return how many open client connections each worker holds now, most first (from /proc)."""
        mine = established_sockets(self.port)
        counts = []
        for pid in self.worker_pids():
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            held = 0
            for fd in fds:
                try:
                    held += os.readlink(f"/proc/{pid}/fd/{fd}") in mine
                except OSError:  # closed meanwhile
                    pass
            counts.append(held)
        return sorted(counts, reverse=True)

    def stop(self):
        """Stop gunicorn gracefully (its workers with it)."""
        run_dev.stop(self.process, 20)
