"""Sample the service's gunicorn workers with py-spy during a run, and sum the samples by where the time goes."""
import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.processes import BIN_DIR, ROOT, die_with_parent

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)\)$")
SITE = "/site-packages/"
# Checked in order against a frame's file; the first that matches names the frame's package.
PACKAGES = [
    ("service code (app/)", lambda f: f.startswith(str(ROOT / "app") + "/")),
    ("pymongo + bson", lambda f: SITE + "pymongo/" in f or SITE + "bson/" in f),
    ("Flask + werkzeug", lambda f: SITE + "flask/" in f or SITE + "werkzeug/" in f),
    ("gunicorn", lambda f: SITE + "gunicorn/" in f),
    ("marshmallow", lambda f: SITE + "marshmallow/" in f),
    ("PyJWT + cryptography", lambda f: SITE + "jwt/" in f or SITE + "cryptography/" in f),
    ("logging (stdlib)", lambda f: "/logging/" in f and SITE not in f),
    ("other packages", lambda f: SITE in f),
]
UNNAMED = "stdlib only (threads, sockets)"


def ensure_py_spy():
    """Return the path of py-spy, installing it from PyPI into this venv when it is missing."""
    found = shutil.which("py-spy", path=str(BIN_DIR)) or shutil.which("py-spy")
    if found:
        return found
    print("bench: installing py-spy into the venv for BENCH_PROFILE", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "py-spy"],
                   check=True, stdin=subprocess.DEVNULL)
    return shutil.which("py-spy", path=str(BIN_DIR)) or shutil.which("py-spy")


def start(py_spy, pids, seconds, out_dir):
    """Start one py-spy recorder per pid, for seconds; return (process, raw output path) pairs."""
    recorders = []
    for pid in pids:
        path = Path(out_dir) / f"profile-{pid}.txt"
        command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
                   "--format", "raw", "--full-filenames", "--function", "--gil", "--nonblocking", "--output", str(path)]
        log = open(Path(out_dir) / f"profile-{pid}.log", "wb")
        recorders.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, preexec_fn=die_with_parent), path))
        log.close()
    return recorders


def finish(recorders, timeout):
    """Wait for the recorders and return the paths of the profiles they wrote."""
    for process, _ in recorders:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return [path for _, path in recorders if path.exists()]


def package_of(file):
    """Return the package a frame's file belongs to, or None for the standard library."""
    for name, matches in PACKAGES:
        if matches(file):
            return name
    return None


def read_stacks(paths):
    """Yield (frames from root to leaf as (function, file), sample count) from py-spy raw files."""
    for path in paths:
        for line in Path(path).read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = []
            for frame in stack.split(";"):
                match = FRAME.match(frame)
                frames.append((match["function"], match["file"]) if match else (frame, ""))
            yield frames, int(count)


def short(function, file):
    """Name a function by its file relative to the repo or to site-packages."""
    file = file.split(SITE, 1)[-1].replace(str(ROOT) + "/", "")
    return f"{function} ({file})"


def summarize(paths, requests, top=12):
    """Return markdown: samples per package (stdlib time goes to its nearest named caller) and the top functions."""
    by_package, by_function, inclusive_app = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    for frames, count in read_stacks(paths):
        total += count
        owner = next(((f, file, package_of(file)) for f, file in reversed(frames) if package_of(file)), None)
        by_package[owner[2] if owner else UNNAMED] += count
        if owner:
            by_function[short(owner[0], owner[1])] += count
        for function, file in {(f, file) for f, file in frames if package_of(file) == PACKAGES[0][0]}:
            inclusive_app[short(function, file)] += count
    if not total:
        return "py-spy recorded no samples."
    lines = [f"{total:,} samples at 100 Hz of the thread holding each worker's GIL (py-spy --gil), i.e. "
             f"{total * 10 / max(requests, 1):.2f} ms of Python execution per request; time spent waiting on the "
             "database, the network or the GIL is not sampled.", "",
             "| where (innermost frame of a named package; stdlib frames count for their caller) | share |",
             "|---|---:|"]
    lines += [f"| {name} | {100 * n / total:.1f}% |" for name, n in by_package.most_common()]
    lines += ["", "| top functions by that attribution | share |", "|---|---:|"]
    lines += [f"| `{name}` | {100 * n / total:.1f}% |" for name, n in by_function.most_common(top)]
    lines += ["", "| service functions, inclusive (with everything they call) | share |", "|---|---:|"]
    lines += [f"| `{name}` | {100 * n / total:.1f}% |" for name, n in inclusive_app.most_common(top)]
    return "\n".join(lines)
