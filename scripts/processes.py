"""Start and stop the service's processes for `make run`, the tests, the bench and the chaos campaign: a free port,
an environment without the caller's settings, children that die with their parent, and a stop that leaves nothing."""
import ctypes
import os
import signal
import socket
import subprocess
import sys

# The prefixes of the service's settings (config.py, gunicorn.conf.py): bare_environment() leaves every one out.
SERVICE_VARIABLES = ("MONGODB_", "JWT_", "LOG_", "CORS_", "ALLOW_", "WEB_CONCURRENCY", "GUNICORN_", "HOST", "PORT",
                     "FIELD_ENCRYPTION", "NEW_FIELD_ENCRYPTION", "MAX_HEADER_BYTES", "BODY_TIMEOUT_S", "RATE_LIMIT")
PR_SET_PDEATHSIG = 1
# Looked up before any fork: the child only calls it.
_prctl = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None
PARENT_PID = os.getpid()  # the process whose children die_with_parent() is run in


def free_port():
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bare_environment(**variables):
    """Return this process's environment without any of the service's settings, plus the given ones (and no rate
    limit unless they ask for one: the tests and the chaos campaign send many requests with one token); one given
    as None is left unset, so that its default applies."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(SERVICE_VARIABLES)}
    env["RATE_LIMIT"] = "off"
    for key, value in variables.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def die_when_parent_dies():
    """Have Linux send this process SIGTERM when its parent dies, even by kill -9; return False where it cannot."""
    if _prctl is None:
        return False
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return True


def die_with_parent():
    """Have Linux send this child SIGTERM when the process that started it dies, even by kill -9 (a preexec_fn)."""
    die_when_parent_dies()
    # The parent may have died between the fork and the line above: then no signal would ever come.
    if os.getppid() != PARENT_PID:
        os._exit(1)


# What to hand Popen as preexec_fn: die_with_parent where Linux offers it, nothing elsewhere.
DIE_WITH_PARENT = die_with_parent if _prctl is not None else None


def children(pid):
    """Return the pids of pid's children (a gunicorn master's workers); none once it is gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as found:
            return [int(child) for child in found.read().split()]
    except OSError:
        return []


def stop(process, timeout, *, group=False):
    """Ask process to stop (SIGTERM), killing it (SIGKILL) if it is still running after timeout seconds.

    With group, for a process started in a session of its own, each signal goes to its whole process group, and
    whatever is left of the group at the end is killed: a worker its master no longer waited for.
    """
    if process is None:
        return
    if process.poll() is None:
        _send(process, signal.SIGTERM, group)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _send(process, signal.SIGKILL, group)
            process.wait()
    if group:
        _send(process, signal.SIGKILL, group)


def _send(process, signum, group):
    """Send signum to process, or to its process group; nothing when they are gone."""
    if not group:
        process.send_signal(signum)  # does nothing once the process has been waited for
        return
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group has no process left
