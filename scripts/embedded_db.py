"""Start secantusd-py for `make run`, the tests and the bench, and wait until it answers a ping."""
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

HOST = "127.0.0.1"  # this machine only: it runs without --auth
BESIDE_INTERPRETER = Path(sys.executable).parent / "secantusd-py"  # the venv's bin/, not the resolved interpreter's
PING_INTERVAL = 0.1  # seconds between two pings while it starts


class DidNotAnswer(RuntimeError):
    """The server exited, or stayed silent past the deadline, before answering a ping; status is None when silent."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def executable():
    """Return the path of secantusd-py: the one installed beside this interpreter, else the first on PATH."""
    return str(BESIDE_INTERPRETER) if BESIDE_INTERPRETER.exists() else shutil.which("secantusd-py")


def command(port, storage, *, standalone=False, test_commands=False):
    """Return the argv of secantusd-py listening on HOST:port with its data in the directory storage."""
    # --sync-on-commit: without it a commit is acknowledged (j: true too) before its log reaches the disk, and
    # kill -9 right after a burst of 201s lost 6 of 160 of them; with it, none (issue 19).
    argv = [executable(), "--host", HOST, "--port", str(port), "--storage-path", str(storage),
            "--log-level", "WARNING", "--sync-on-commit"]
    if test_commands:
        argv.append("--enable-test-commands")
    if standalone:
        argv.append("--standalone")  # otherwise it advertises a one-member replica set (transactions)
    return argv


def uri(port):
    """Return the URI of the server started by command(port, ...)."""
    return f"mongodb://{HOST}:{port}/?directConnection=true"


def start(argv, *, log=None, own_session=False, preexec_fn=None, cwd=None):
    """Start argv, its output appended to the file log (else to ours), and return the process."""
    if log is None:
        return subprocess.Popen(argv, cwd=cwd, start_new_session=own_session, preexec_fn=preexec_fn)
    with open(log, "ab") as output:  # the child holds its own copy: ours closes once it has started
        return subprocess.Popen(argv, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=own_session, preexec_fn=preexec_fn)


def wait_until_answering(process, uri, timeout, *, keep_waiting=lambda: True):
    """Return True once uri answers a ping, False once keep_waiting() is false; DidNotAnswer if it exits or is late."""
    client = MongoClient(uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
    deadline = time.monotonic() + timeout
    try:
        while keep_waiting():
            if process.poll() is not None:
                raise DidNotAnswer(f"exited with status {process.returncode} before answering a ping",
                                   process.returncode)
            try:
                client.admin.command("ping")
                return True
            except PyMongoError:
                if time.monotonic() > deadline:
                    raise DidNotAnswer(f"did not answer a ping within {timeout:g} s") from None
                time.sleep(PING_INTERVAL)
        return False
    finally:
        client.close()
