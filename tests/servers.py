"""Start and stop `secantusd-py`, a real MongoDB wire-protocol server, for tests."""
import socket
import subprocess

from scripts import embedded_db


def free_port():
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
        return embedded_db.uri(self.port)

    def start(self, timeout=30):
        """Start the server, its output in <storage>.log, and wait until it answers a ping."""
        argv = embedded_db.command(self.port, self.storage, standalone=self.standalone, test_commands=True)
        self.process = embedded_db.start(argv, log=self.storage + ".log")
        try:
            embedded_db.wait_until_answering(self.process, self.uri, timeout)
        except embedded_db.DidNotAnswer as error:
            raise RuntimeError(f"secantusd-py {error}; see {self.storage}.log") from None
        return self

    def stop(self):
        """Stop the server and wait for it to exit."""
        stop_process(self.process, 10)
