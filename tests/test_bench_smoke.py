"""`make bench` runs end to end with tiny durations and leaves no process behind, so the benchmark cannot rot."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = {
    "BENCH_SECONDS": "1",
    "BENCH_WARMUP_SECONDS": "1",
    "BENCH_CONCURRENCY": "2",
    "BENCH_ROUNDS": "2",
    "BENCH_SCALE_RECORDS": "200",
    "BENCH_SCALE_DOCTORS": "10",
    "BENCH_ENCRYPTION_CONCURRENCY": "2",
}


def still_running(pid):
    """Tell whether pid is still one of the bench's database or gunicorn processes (not a reused pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return any(name in cmdline.read() for name in (b"gunicorn", b"secantusd"))
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.realdb
def test_the_bench_measures_every_run_writes_its_table_and_stops_everything(tmp_path):
    from bench.wrk import ensure_wrk

    try:
        ensure_wrk()  # installs Debian's wrk when missing and running as root, as in CI
    except SystemExit as error:
        pytest.skip(f"wrk is not installed and cannot be installed here: {error}")
    env = dict(os.environ, **SETTINGS, BENCH_OUT=str(tmp_path / "out"), BENCH_RESULTS=str(tmp_path / "RESULTS.md"))

    bench = subprocess.run([sys.executable, "bench/run.py"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=240)

    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    measured = sorted((r["kind"], r["path"], r["dataset"]) for r in results)
    # Each round: floor and endpoint on both servers, and the endpoint with field encryption on and off; the ceiling
    # once; the 409 floor on either side of the endpoint.
    expected = 2 * [(kind, "201", dataset) for kind in ("endpoint", "floor") for dataset in ("empty", "scale")]
    expected += 2 * [("endpoint", "201", f"encryption {state}") for state in ("on", "off")]
    assert measured == sorted(expected + [("ceiling", "201", "empty"), ("endpoint", "409", "empty")]
                              + 2 * [("floor", "409", "empty")])
    for result in results:
        assert result["requests"] > 0 and result["errors"] == 0, result
        assert set(result["statuses"]) == {result["path"]}, result
        assert result["service_cpu_ms"] > 0 and result["p50_ms"] <= result["p99_ms"], result
        if result["kind"] != "ceiling":
            assert result["stalls_per_s"] is not None and result["stalls_per_s"] >= 0, result
        if result["kind"] != "floor":  # wrk's connections, sampled per gunicorn worker
            split = result["connections_per_worker"]
            assert len(split) == 2 and 0 < sum(split) <= result["concurrency"], result
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| 2 | add_and_link, links (201) | 2 |" in table  # the median of two rounds
    assert "| 2 | ceiling: POST /bench/fixed | 1 |" in table
    assert "| p99 with the scale dataset <= 1.25 x empty | 2 |" in table
    assert "the floor's stalls: " in table and "| stalls/s empty | stalls/s scale |" in table
    assert "## Success path with 200 patients and appointments over 10 doctors" in table
    assert "## What was changed for speed, and what each change bought" in table
    assert "| on | 2 | 2 |" in table and "| off | 2 | 2 |" in table and "Encryption adds " in table
    # The service is measured as deployed, with field encryption on; only the comparison's second service has it off.
    out = tmp_path / "out"
    for log in ("gunicorn-service-empty.log", "gunicorn-service-scale.log", "gunicorn-ceiling.log"):
        assert "field_encryption=on" in (out / log).read_text(), log
    assert "field_encryption=off" in (out / "gunicorn-service-plain.log").read_text()
    pids = json.loads((tmp_path / "out" / "pids.json").read_text())
    assert [pid for group in pids.values() for pid in group if still_running(pid)] == []
