"""`make chaos` for 20 seconds deals every kind of fault, answers most requests, breaks no promise, stops all."""
import os
import re
import subprocess
import sys

import pytest

from tests.live import ROOT
from tests.servers import left_in_groups

FAULTS = ("gunicorn worker killed (SIGKILL)", "database killed (SIGKILL) and restarted", "failCommand armed")
CHECKS = 7


@pytest.mark.slow
@pytest.mark.realdb
@pytest.mark.timeout(300)
def test_twenty_seconds_of_chaos_deal_every_fault_and_find_no_violation():
    chaos = subprocess.run([sys.executable, "scripts/chaos.py"], cwd=ROOT, env=dict(os.environ, CHAOS_SECONDS="20"),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)

    assert chaos.returncode == 0, chaos.stdout[-5000:] + chaos.stderr[-3000:]
    for fault in FAULTS:
        dealt = re.search(rf"^  {re.escape(fault)} +(\d+)$", chaos.stdout, re.MULTILINE)
        assert dealt and int(dealt[1]) >= 1, (fault, chaos.stdout)
    requests, answered = map(int, re.search(r"^requests (\d+): 2xx (\d+),", chaos.stdout, re.MULTILINE).groups())
    assert answered >= 200 and answered >= requests / 2, chaos.stdout
    checks = re.findall(r"^  ([a-z ]+?) +(\d+)$", chaos.stdout.partition("\nchecks")[2], re.MULTILINE)
    assert len(checks) == CHECKS and all(count == "0" for _, count in checks), chaos.stdout
    started = [int(pid) for pid in re.findall(r"^chaos: started .*, pid (\d+)$", chaos.stderr, re.MULTILINE)]
    assert len(started) >= 3  # the database, gunicorn, the database again after its kill
    assert left_in_groups(started) == []
