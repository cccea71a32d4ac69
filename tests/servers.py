"""Start and stop `secantusd-py`, a real MongoDB wire-protocol server, for tests; find what a run left behind."""
import os

from scripts import embedded_db
from scripts.processes import free_port, stop


def left_in_groups(groups):
    """Return the processes still running in any of these process groups."""
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) in groups:  # field 5 of stat(5): the process group
            left.append(int(pid))
    return left


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
        stop(self.process, 10)
