"""Start and stop `secantusd-py`, a real MongoDB wire-protocol server, for tests."""
import os
import shutil
import socket
import subprocess
import sys
import time

import pymongo


def free_port():
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_command():
    """Return the path of secantusd-py, next to this interpreter when installed in a venv."""
    beside = os.path.join(os.path.dirname(sys.executable), "secantusd-py")
    return beside if os.path.exists(beside) else shutil.which("secantusd-py")


def stop_process(process, timeout):
    """Terminate a process that is still running, killing it if it has not exited after timeout seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class SecantusServer:
    """One secantusd-py process on a free port with its own storage directory."""

    def __init__(self, storage, *, standalone=False, port=None):
        self.storage = str(storage)
        self.standalone = standalone
        self.port = port or free_port()
        self.process = None

    @property
    def uri(self):
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout=30):
        """Start the server and wait until it answers a ping."""
        args = [server_command(), "--host", "127.0.0.1", "--port", str(self.port),
                "--storage-path", self.storage, "--log-level", "WARNING", "--enable-test-commands"]
        if self.standalone:
            args.append("--standalone")
        log = open(os.path.join(self.storage + ".log"), "ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        probe = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=500)
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"secantusd-py exited with {self.process.returncode}; see {self.storage}.log")
                try:
                    probe.admin.command("ping")
                    return self
                except pymongo.errors.PyMongoError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("secantusd-py did not answer a ping within the timeout") from None
                    time.sleep(0.1)
        finally:
            probe.close()

    def stop(self):
        """Stop the server and wait for it to exit."""
        stop_process(self.process, 10)
