"""Find or install wrk, and drive a URL with it and bench/link.lua."""
import json
import os
import shutil
import subprocess
from pathlib import Path

LINK_LUA = Path(__file__).resolve().parent / "link.lua"
RESULT_PREFIX = "BENCH_RESULT "


def ensure_wrk():
    """Return the path of wrk, installing Debian's package first when it is missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("bench: wrk is not installed; install it (Debian/Ubuntu: sudo apt-get install -y wrk) "
                         "and run again")
    print("bench: wrk not found; installing it with apt-get", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"bench: `{' '.join(command)}` failed ({result.returncode}): "
                             f"{result.stderr.strip()[-500:]}")
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench: apt-get installed wrk but it is not on PATH")
    return found


def wrk_threads(connections, cores):
    """Return wrk's thread count: one per core, never more than connections."""
    return max(1, min(connections, cores))


def run_wrk(wrk, url, connections, threads, seconds, ids_file, token, mode, raw_path):
    """Run wrk against url and return the result line of link.lua's done(); the raw output goes to raw_path."""
    command = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{int(seconds)}s", "--timeout", "10s",
               "--latency", "-s", str(LINK_LUA), url, "--", str(ids_file), token, str(threads), mode]
    # wrk is left in our process group, so Ctrl-C stops it with us.
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=seconds + 60)
    Path(raw_path).write_text(f"$ {' '.join(command).replace(token, '<token>')}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        raise SystemExit(f"bench: wrk failed ({result.returncode}); see {raw_path}")
    for line in result.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise SystemExit(f"bench: wrk printed no result line; see {raw_path}")
