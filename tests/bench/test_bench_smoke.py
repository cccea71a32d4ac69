"""`make bench` runs end to end with tiny durations and leaves no process behind, so the benchmark cannot rot."""
import os
import re
import subprocess
import sys

import pytest

from bench.run import MOST_DOCUMENTS, MOST_INDEX_ENTRIES, WRITE_ROUTES
from tests.live import ROOT
from tests.servers import left_in_groups

SETTINGS = {"BENCH_SECONDS": "1", "BENCH_WARMUP_SECONDS": "0.5", "BENCH_CONCURRENCY": "8", "BENCH_LINK_PAIRS": "2",
            "BENCH_ENCRYPTION_PAIRS": "2", "BENCH_MIXED_SECONDS": "1", "BENCH_MIXED_RECORDS": "16"}
LINK_ROWS = ("service", "plain")
MIXED_ROUTES = ("create appointment", "add_and_link", "read patient", "list patients", "search patients",
                "list appointments")


def cells(output, first, second):
    """Return the cells after the first two of the table row starting with them."""
    row = re.search(rf"^\| {re.escape(first)} \| {re.escape(second)} \| (.*) \|$", output, re.MULTILINE)
    assert row, f"no row {first!r} | {second!r} in:\n{output}"
    return [cell.strip() for cell in row.group(1).split("|")]


@pytest.mark.slow
@pytest.mark.realdb
@pytest.mark.timeout(300)
def test_the_bench_prints_both_tables_writes_results_and_stops_everything(tmp_path):
    results = tmp_path / "RESULTS.md"
    env = dict(os.environ, **SETTINGS, BENCH_RESULTS=str(results))

    bench = subprocess.run([sys.executable, "bench/run.py"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=240)

    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    for pair in ("1", "2"):
        for name in LINK_ROWS:  # req/s, p50, p99, CPU ms/req, db CPU ms/req, non-201, ...
            row = cells(bench.stdout, "8", f"{pair} | {name}")
            assert float(row[0]) > 0 and float(row[3]) > 0 and row[5] == "0", row
        assert float(cells(bench.stdout, "8", f"{pair} | service / plain")[0]) > 0
    assert float(cells(bench.stdout, "8", " | **median service / plain**")[0].strip("*")) > 0
    assert re.search(r"^\| throughput, service / plain at c=8, median of 2 pairs \| >= 0.85 \| \d+\.\d\d \|",
                     bench.stdout, re.MULTILINE)
    for pair in ("1", "2"):  # req/s, p99, CPU and db CPU with encryption on / off at the same pace, what it adds
        row = re.search(rf"^\| {pair} \| (.*) \|$", bench.stdout, re.MULTILINE)[1].split(" | ")
        on, off = (float(value) for value in row[2].split(" / "))
        assert on > 0 and off > 0 and re.fullmatch(r"[-+]\d+\.\d%", row[4]), row
    assert re.search(r"^\| \*\*median\*\* \|.*\*\*[-+]\d+\.\d%\*\* \(target: under 15%\) \|$", bench.stdout,
                     re.MULTILINE)
    # What one request writes, counted on the database: every write route, and the bounds add_and_link is held to.
    for route, name in [(route, "service") for route in WRITE_ROUTES] + [(WRITE_ROUTES[0], "plain")]:
        documents, entries = (float(cell) for cell in cells(bench.stdout, route, name)[:2])
        assert documents >= 1 and entries >= 0, (route, name, documents, entries)
    documents, entries = (float(cell) for cell in cells(bench.stdout, WRITE_ROUTES[0], "service")[:2])
    assert documents <= MOST_DOCUMENTS and entries <= MOST_INDEX_ENTRIES, (documents, entries)
    assert cells(bench.stdout, "documents one add_and_link writes", f"<= {MOST_DOCUMENTS}")[1] == "yes"
    mixed, answered = bench.stdout.partition("### Mixed traffic on the service")[2], 0
    for route in MIXED_ROUTES:  # requests, req/s, p50, p99, max, 5xx, no answer, other non-2xx
        row = re.search(rf"^\| {route} \| (.*) \|$", mixed, re.MULTILINE).group(1).split(" | ")
        assert row[5:7] == ["0", "0"], (route, row)
        answered += int(row[0])
    assert answered > 0
    written = results.read_text()
    assert written.startswith("# `make bench` results") and "## Last run: commit " in written
    assert bench.stdout.strip() in written
    groups = [int(pid) for pid in re.findall(r"^started .*: pid (\d+)$", bench.stderr, re.MULTILINE)]
    assert len(groups) == 4  # secantusd-py and three gunicorns, each the leader of its own group
    assert left_in_groups(groups) == []
