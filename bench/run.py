"""`make bench`: POST /patients/add_and_link through the service as deployed and through a plain Flask version of it
(bench/plain_app.py), both under gunicorn.conf.py in front of one secantusd-py replica set; then a mixed run of the
service's routes. Prints the tables and writes them to bench/RESULTS.md. Settings and columns: bench/README.md.
"""
import datetime
import http.client
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pymongo
from bson import ObjectId

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.http.routes.patients import ADD_AND_LINK_EXAMPLE  # noqa: E402 - the documented body, sent by every client
from bench.footprint import snapshot, written  # noqa: E402 - what a request writes, counted on the database
from config import gunicorn_workers, number_setting  # noqa: E402 - the service's reader of settings
from scripts import embedded_db  # noqa: E402 - secantusd-py as make run and the tests start it
from scripts.dev_secret import new_master_key  # noqa: E402
from scripts.mint_token import mint  # noqa: E402
from scripts.processes import DIE_WITH_PARENT, children, free_port, stop  # noqa: E402

# Short runs, many pairs: this host's speed drifts over tens of seconds, and two short runs side by side see the
# same host more often than two long ones (3 pairs of 10 s runs gave one commit 0.67x and 0.77x throughput).
SECONDS = number_setting("BENCH_SECONDS", 4.0, float)
WARMUP = number_setting("BENCH_WARMUP_SECONDS", 1.0, float)
CONCURRENCY = [int(c) for c in (os.environ.get("BENCH_CONCURRENCY") or "8").split(",")]
MIXED_SECONDS = number_setting("BENCH_MIXED_SECONDS", 30.0, float)
MIXED_RECORDS = number_setting("BENCH_MIXED_RECORDS", 1000)
RESULTS = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "RESULTS.md")
WORKERS = gunicorn_workers()  # as gunicorn.conf.py reads it
OFF = "service, FIELD_ENCRYPTION=off"
ENCRYPTION_PAIRS = number_setting("BENCH_ENCRYPTION_PAIRS", 5)
# Service and plain runs one after the other, this many times at each concurrency: one pair's ratios moved by 0.3
# from run to run on this 2-core machine (its CPU per request moves with whatever else the host runs), so the
# targets read the median of the pairs' ratios.
LINK_PAIRS = number_setting("BENCH_LINK_PAIRS", 8)
# What encryption costs is measured at the same pace with it on and off, first, on databases as fresh: run flat
# out, each reaches another rate (the database works more on sealed records), and on cores shared with the
# database the CPU per request moves with the rate and with the database's size.
ENCRYPTION_CLIENTS = 8
ENCRYPTION_RATE = number_setting("BENCH_ENCRYPTION_RATE", 50.0, float, what="a number of requests per second")
MIXED_CLIENTS = 8
REQUEST_TIMEOUT = 10  # seconds; a request unanswered by then counts as an error
MOST_PER_SECOND = 500  # appointments made for each second of a run: more than either implementation links
DOCTOR, MIXED_DOCTOR, FOOTPRINT_DOCTOR = "doctor_bench", "doctor_mixed", "doctor_footprint"
WRITE_ROUTES = ("POST /patients/add_and_link", "POST /appointments", "PUT /appointments/{id}/patient",
                "DELETE /appointments/{id}/patient", "PATCH /patients/{id}")
FOOTPRINT_REQUESTS = 5  # requests of each write route whose writes are counted, on a database with nothing else
# The most one add_and_link may write (issue 22), and the ratios to the plain version the link run at c=8 must keep.
MOST_DOCUMENTS, MOST_INDEX_ENTRIES = 3, 12
TARGETS = {"req/s": (">=", 0.85), "cpu": ("<=", 1.3), "db": ("<=", 1.3)}
TICKS = os.sysconf("SC_CLK_TCK")
SECRET = secrets.token_urlsafe(48)  # the services' JWT_SECRET, made for the run
# Where the services connect and with which keys: the bench's own, never a developer's (other settings pass through).
SERVICE_SETTINGS = re.compile(r"MONGODB_URI$|MONGODB_DB$|JWT_|FIELD_ENCRYPTION|CORS_|HOST$|PORT$|ALLOW_STANDALONE$")
# The mixed run: each client goes round this list, starting at its own place in it.
MIX = ("create appointment", "add_and_link", "read patient", "list patients", "search patients", "read patient",
       "list appointments", "search patients")
NAMES = ("Smith", "Garcia", "Chen", "Okafor", "Nilsen", "Patel", "Haddad", "Sato", "Rossi", "Novak")


# ---- processes: each in its own process group, stopped on exit, Ctrl-C or error, and killed if we are.

def start(name, args, workdir, started, env=None):
    with open(workdir / f"{name}.log", "ab") as log:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=DIE_WITH_PARENT)
    started.append(process)
    print(f"started {name}: pid {process.pid}", file=sys.stderr)
    return process


def wait_until(ready, process, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} did not start (exit status {process.poll()}); see its log")
        time.sleep(0.2)


def answers_http(port):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/healthz")
        return connection.getresponse().status > 0
    except OSError:
        return False


def cpu_seconds(pid):
    """utime+stime of pid and of its children, plus what its exited children used (cutime+cstime)."""
    def times(p, count):
        try:
            with open(f"/proc/{p}/stat") as stat:
                return sum(int(v) for v in stat.read().rpartition(")")[2].split()[11:11 + count])
        except OSError:
            return 0
    return (times(pid, 4) + sum(times(child, 2) for child in children(pid))) / TICKS


def machine_busy_seconds():
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS  # all but idle and iowait


# ---- load: closed-loop clients, one thread and one kept-alive connection each.

class Link:
    """A client of the link runs: add_and_link to the next fresh appointment, as long as there are any."""

    def __init__(self, doctor, appointments=(), last_names=("Smith",), rate=None):
        self.doctor, self.appointments, self.lock = doctor, iter(appointments), threading.Lock()
        self.rate, self.due = rate, None  # with a rate, all clients together send that many requests per second
        self.headers = {"Authorization": "Bearer " + mint(doctor, SECRET, ttl=6 * 3600),
                        "Content-Type": "application/json"}
        self.bodies = [json.dumps({**ADD_AND_LINK_EXAMPLE, "lastName": name, "appointment_id": "APPOINTMENT"}).encode()
                       for name in last_names]

    def next(self, rng):
        with self.lock:
            appointment = next(self.appointments, None)
            if self.rate:
                # The next request is due 1/rate after the last one, or now if that is past: no bursts to catch up.
                due = self.due = max((self.due or 0.0) + 1 / self.rate, time.monotonic())
        if self.rate:
            time.sleep(max(0.0, due - time.monotonic()))
        if appointment is None:
            return None
        body = rng.choice(self.bodies).replace(b"APPOINTMENT", appointment)
        return "add_and_link", "POST", f"/patients/add_and_link?uid={self.doctor}", body

    def answered(self, label, status, body):
        pass


class Mixed(Link):
    """A client of the mixed run: goes round MIX, linking a patient to the appointment it created just before."""

    def __init__(self, doctor, offset):
        super().__init__(doctor)
        self.step, self.appointment, self.patients = offset, None, []

    def next(self, rng):
        label = MIX[self.step % len(MIX)]
        self.step += 1
        if label == "add_and_link" and self.appointment is None:
            label = "create appointment"  # a client starting at add_and_link first makes its appointment
        uid, name = f"?uid={self.doctor}", rng.choice(NAMES)
        if label == "create appointment":
            return label, "POST", "/appointments" + uid, json.dumps({"date": "2027-01-04T09:00:00Z"}).encode()
        if label == "add_and_link":
            fields = {**ADD_AND_LINK_EXAMPLE, "lastName": name, "appointment_id": self.appointment}
            self.appointment = None
            return label, "POST", "/patients/add_and_link" + uid, json.dumps(fields).encode()
        if label == "read patient" and self.patients:
            return label, "GET", f"/patients/{rng.choice(self.patients)}{uid}", None
        if label == "search patients":
            return label, "GET", f"/patients{uid}&q={name[:3].lower()}", None
        if label == "list appointments":
            return label, "GET", "/appointments" + uid, None
        return "list patients", "GET", "/patients" + uid, None

    def answered(self, label, status, body):
        if label == "create appointment":
            self.appointment = json.loads(body)["data"]["_id"] if status == 201 else None
        elif label == "add_and_link" and status == 201:
            self.patients.append(json.loads(body)["data"]["_id"])


def client(port, script, seed, until, samples):
    rng, connection = random.Random(seed), None
    while time.monotonic() < until:
        request = script.next(rng)
        if request is None:
            return
        label, method, path, body = request
        began = time.monotonic()
        try:
            connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
            connection.request(method, path, body, script.headers)
            response = connection.getresponse()
            status, answer = response.status, response.read()
        except (OSError, http.client.HTTPException):
            status, answer = 0, b""  # no answer: a timeout or a dropped connection; the next request reconnects
            if connection is not None:
                connection.close()
        ended = time.monotonic()
        samples.append((ended, label, status, ended - began))
        script.answered(label, status, answer)


def drive(port, scripts, seconds, measured):
    """Run one thread per script for WARMUP + seconds; return the samples and CPU of the measured window."""
    samples, begin = [], time.monotonic()
    t0, t1 = begin + WARMUP, begin + WARMUP + seconds
    threads = [threading.Thread(target=client, args=(port, script, seed, t1, samples), daemon=True)
               for seed, script in enumerate(scripts)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, t0 - time.monotonic()))
    before = {name: cpu_seconds(pid) for name, pid in measured.items()}
    busy, own = machine_busy_seconds(), time.process_time()
    time.sleep(max(0.0, t1 - time.monotonic()))
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in measured.items()}
    cpu["client"], busy = time.process_time() - own, machine_busy_seconds() - busy
    cpu["other"] = max(0.0, busy - sum(cpu.values()))
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT + 5)
    return [s for s in samples if t0 <= s[0] <= t1], cpu


def percentile(latencies, fraction):
    """The nearest-rank percentile, in ms."""
    ordered = sorted(latencies)
    return 1000 * ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else float("nan")


# ---- the runs

def add_appointments(db, doctor, count):
    """Insert count free appointments of the doctor straight into the database; return their ids."""
    start = datetime.datetime.now(datetime.timezone.utc)
    appointments = [{"_id": ObjectId(), "doctor_id": doctor, "patient_id": None,
                     "date": start + datetime.timedelta(minutes=15 * i)} for i in range(count)]
    for first in range(0, count, 1000):
        db.appointments.insert_many(appointments[first:first + 1000], ordered=False)
    return [str(appointment["_id"]).encode() for appointment in appointments]


def send(port, method, path, body=None, headers=None):
    """Send one request on a connection of its own; return the status, the parsed body and the ETag."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                           headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null"), response.getheader("ETag")
    finally:
        connection.close()


def footprint_run(service, routes):
    """Count the documents and index entries one request of each write route writes, on the service's database."""
    port, db, uid = service["port"], service["db"], f"?uid={FOOTPRINT_DOCTOR}"
    auth = {"Authorization": "Bearer " + mint(FOOTPRINT_DOCTOR, SECRET, ttl=3600)}

    def free_appointment():
        return add_appointments(db, FOOTPRINT_DOCTOR, 1)[0].decode()

    def add_and_link():
        return ("POST", f"/patients/add_and_link{uid}", {**ADD_AND_LINK_EXAMPLE, "appointment_id": free_appointment()},
                {}, 201)

    def made(answer):
        status, answer_body, etag = answer
        assert status == 201, answer
        return {**answer_body["data"], "etag": etag}

    def arranged(route):
        """Return a request of the route, on records made for it beforehand (those writes are not counted)."""
        if route == "POST /patients/add_and_link":
            return add_and_link()
        if route == "POST /appointments":
            return "POST", f"/appointments{uid}", {"date": "2027-01-04T09:00:00Z"}, {}, 201
        patient = made(send(port, *add_and_link()[:3], auth))
        if route == "PUT /appointments/{id}/patient":
            return "PUT", f"/appointments/{free_appointment()}/patient{uid}", {"patient_id": patient["_id"]}, {}, 200
        if route == "DELETE /appointments/{id}/patient":
            linked = db.appointments.find_one({"patient_id": ObjectId(patient["_id"])})["_id"]
            return "DELETE", f"/appointments/{linked}/patient{uid}", None, {}, 200
        return ("PATCH", f"/patients/{patient['_id']}{uid}", {"currentMedications": "None"},
                {"If-Match": patient["etag"]}, 200)

    counted = {}
    for route in routes:
        totals = {}
        for _ in range(FOOTPRINT_REQUESTS):
            method, path, request_body, headers, expected = arranged(route)
            before = snapshot(db)
            status, answer, _ = send(port, method, path, request_body, {**auth, **headers})
            assert status == expected, (route, status, answer)
            for collection, (documents, entries) in written(db, before, snapshot(db)).items():
                was = totals.get(collection, (0, 0))
                totals[collection] = (was[0] + documents, was[1] + entries)
        counted[route] = {collection: (documents / FOOTPRINT_REQUESTS, entries / FOOTPRINT_REQUESTS)
                          for collection, (documents, entries) in sorted(totals.items())}
    return counted


def link_run(name, service, server, concurrency, rate=None):
    appointments = add_appointments(service["db"], DOCTOR, int((WARMUP + SECONDS + 2) * (rate or MOST_PER_SECOND)))
    link = Link(DOCTOR, appointments, rate=rate)
    samples, cpu = drive(service["port"], [link] * concurrency, SECONDS, {"service": service["pid"], "db": server})
    if next(link.appointments, None) is None:
        print(f"bench: {name} at c={concurrency} linked every appointment made for it", file=sys.stderr)
    created = sum(1 for s in samples if s[2] == 201) or float("nan")
    result = {"conc": concurrency, "name": name, "req/s": created / SECONDS,
              "p50": percentile([s[3] for s in samples], 0.50), "p99": percentile([s[3] for s in samples], 0.99),
              "cpu": 1000 * cpu["service"] / created, "db": 1000 * cpu["db"] / created,
              "non-201": sum(1 for s in samples if s[2] != 201),
              "client": 100 * cpu["client"] / SECONDS, "other": 100 * cpu["other"] / SECONDS / os.cpu_count()}
    print(f"c={concurrency} {name}: {result['req/s']:.1f} req/s, p99 {result['p99']:.1f} ms, "
          f"{result['cpu']:.2f} ms CPU/req, {result['non-201']} non-201", file=sys.stderr)
    return result


def mixed_run(service, server):
    """Give a doctor of its own MIXED_RECORDS patients, each linked to an appointment, then run the mix against it."""
    seed = Link(MIXED_DOCTOR, add_appointments(service["db"], MIXED_DOCTOR, MIXED_RECORDS), NAMES)
    seeders = [threading.Thread(target=client, args=(service["port"], seed, i, float("inf"), [])) for i in range(8)]
    for thread in seeders:
        thread.start()
    for thread in seeders:
        thread.join()
    seeded = service["db"].patients.count_documents({"doctor_id": MIXED_DOCTOR})
    samples, cpu = drive(service["port"], [Mixed(MIXED_DOCTOR, i) for i in range(MIXED_CLIENTS)], MIXED_SECONDS,
                         {"service": service["pid"], "db": server})
    rows = []
    for label in dict.fromkeys(MIX):
        mine = [s for s in samples if s[1] == label]
        latencies = [s[3] for s in mine]
        rows.append({"route": label, "requests": len(mine), "req/s": len(mine) / MIXED_SECONDS,
                     "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                     "max": 1000 * max(latencies, default=float("nan")),
                     "5xx": sum(1 for s in mine if s[2] >= 500), "errors": sum(1 for s in mine if s[2] == 0),
                     "other": sum(1 for s in mine if 300 <= s[2] < 500)})
    return rows, seeded, {name: 100 * seconds / MIXED_SECONDS for name, seconds in cpu.items()}


# ---- the report

def table(header, rows, text_column):
    """A markdown table: numbers aligned right, the text column left."""
    align = ["---" if i == text_column else "---:" for i in range(len(header))]
    return "\n".join("| " + " | ".join(row) + " |" for row in [header, align, *rows])


RATIO_COLUMNS = ("req/s", "p50", "p99", "cpu", "db")  # what the service / plain rows divide


def ratios(results, concurrency):
    """Return each pair's service / plain ratios at this concurrency, by column, in pair order."""
    pairs = {}
    for r in results:
        if r["conc"] == concurrency:
            pairs.setdefault(r["pair"], {})[r["name"]] = r
    return [{key: runs["service"][key] / runs["plain"][key] for key in RATIO_COLUMNS}
            for _, runs in sorted(pairs.items()) if {"service", "plain"} <= runs.keys()]


def link_table(results):
    rows = []
    for concurrency in CONCURRENCY:
        for r in (r for r in results if r["conc"] == concurrency):
            rows.append([str(concurrency), str(r["pair"]), r["name"], f"{r['req/s']:.1f}", f"{r['p50']:.1f}",
                         f"{r['p99']:.1f}", f"{r['cpu']:.2f}", f"{r['db']:.2f}", str(r["non-201"]),
                         f"{r['client']:.0f}%", f"{r['other']:.0f}%"])
        by_pair = ratios(results, concurrency)
        for pair, ratio in enumerate(by_pair, 1):
            rows.append([str(concurrency), str(pair), "service / plain"] +
                        [f"{ratio[k]:.2f}" for k in RATIO_COLUMNS] + ["", "", ""])
        rows.append([str(concurrency), "", "**median service / plain**"] +
                    [f"**{statistics.median(ratio[k] for ratio in by_pair):.2f}**" for k in RATIO_COLUMNS] +
                    ["", "", ""])
    return table(["conc.", "pair", "implementation", "req/s", "p50 ms", "p99 ms", "CPU ms/req", "db CPU ms/req",
                  "non-201", "client CPU", "other CPU"], rows, 2)


def encryption_table(pairs):
    shares = [100 * (on["cpu"] / off["cpu"] - 1) for on, off in pairs]
    rows = [[str(index + 1), f"{on['req/s']:.1f} / {off['req/s']:.1f}", f"{on['p99']:.1f} / {off['p99']:.1f}",
             f"{on['cpu']:.2f} / {off['cpu']:.2f}", f"{on['db']:.2f} / {off['db']:.2f}", f"{share:+.1f}%"]
            for index, ((on, off), share) in enumerate(zip(pairs, shares, strict=True))]
    median = sorted(shares)[len(shares) // 2]
    rows.append(["**median**", "", "", "", "", f"**{median:+.1f}%** (target: under 15%)"])
    return table(["pair", "req/s on / off", "p99 ms on / off", "CPU ms/req on / off", "db CPU ms/req on / off",
                  "CPU that encryption adds"], rows, 0)


def mixed_table(rows):
    return table(["route", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "5xx", "no answer", "other non-2xx"],
                 [[r["route"], str(r["requests"]), f"{r['req/s']:.1f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}",
                   f"{r['max']:.0f}", str(r["5xx"]), str(r["errors"]), str(r["other"])] for r in rows], 0)


def machine():
    with open("/proc/cpuinfo") as info:
        models = re.findall(r"^model name\s*:\s*(.*)$", info.read(), re.MULTILINE)
    return f"{models[0] if models else 'unknown CPU'}, {len(models)} cores"


def commit():
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    changed = git("status", "--porcelain", "--", "app", "config.py", "wsgi.py", "gunicorn.conf.py",
                  "gunicorn_worker.py")
    head = f"`{git('rev-parse', '--short', 'HEAD') or 'unknown'}`"
    return head + (" with uncommitted changes to the service" if changed else "")


def in_all(by_collection):
    """Return the documents and index entries of one request's footprint, all collections together."""
    return (sum(documents for documents, _ in by_collection.values()),
            sum(entries for _, entries in by_collection.values()))


def footprint_table(footprints):
    rows = []
    for route in WRITE_ROUTES:
        for name, counted in footprints.items():
            if route in counted:
                by_collection = counted[route]
                documents, entries = in_all(by_collection)
                shown = ", ".join(f"{collection} {d:g} / {e:g}" for collection, (d, e) in by_collection.items())
                rows.append([route, name, f"{documents:g}", f"{entries:g}", shown])
    return table(["route", "implementation", "documents", "index entries", "by collection (documents / entries)"],
                 rows, 0)


def targets_table(results, footprints):
    """The issue's targets, each with what this run measured and whether it is met."""
    rows = []
    by_pair = ratios(results, 8)
    if by_pair:
        for key, label in (("req/s", "throughput"), ("cpu", "service CPU per request"),
                           ("db", "database CPU per request")):
            ratio, (sense, bound) = statistics.median(pair[key] for pair in by_pair), TARGETS[key]
            met = ratio >= bound if sense == ">=" else ratio <= bound
            rows.append([f"{label}, service / plain at c=8, median of {len(by_pair)} pairs", f"{sense} {bound:g}",
                         f"{ratio:.2f}", "yes" if met else "**no**"])
    written_by_add_and_link = in_all(footprints["service"]["POST /patients/add_and_link"])
    for count, label, most in zip(written_by_add_and_link, ("documents one add_and_link writes",
                                                             "index entries one add_and_link writes"),
                                  (MOST_DOCUMENTS, MOST_INDEX_ENTRIES), strict=True):
        rows.append([label, f"<= {most}", f"{count:g}", "yes" if count <= most else "**no**"])
    return table(["target", "bound", "measured", "met"], rows, 0)


def report(results, pairs, footprints, mixed, seeded, mixed_cpu, took):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = [f"## Last run: commit {commit()}, {now}", "",
            f"{machine()}; WEB_CONCURRENCY={WORKERS}; runs of {SECONDS:g} s after {WARMUP:g} s of warm-up; "
            f"the whole bench took {took:.0f} s.", "",
            "### Targets", "", targets_table(results, footprints), "",
            "### What one request writes", "",
            f"Counted on the database: the documents each write route inserted or changed and the index entries "
            f"they added, on the service's database before the runs below, averaged over {FOOTPRINT_REQUESTS} "
            f"requests (bench/footprint.py). The plain version has add_and_link only.", "",
            footprint_table(footprints), "",
            "### POST /patients/add_and_link: the service against a plain implementation", "",
            f"Rows in the order they ran: {LINK_PAIRS} pairs of runs at each concurrency, each pair starting with the "
            f"other one, then each pair's ratios and their median. Every request links a new patient to a new "
            f"appointment (201).", "",
            link_table(results), ""]
    if pairs:
        text += ["### What field encryption costs", "",
                 f"The service with field encryption on, then off (each pair starts with the other one), "
                 f"{ENCRYPTION_CLIENTS} clients sending {ENCRYPTION_RATE:g} requests per second in all, before the "
                 f"runs above, on databases of their own. A pair where either fell short of that pace was measured "
                 f"on a machine too slow or too busy for it (lower BENCH_ENCRYPTION_RATE).", "",
                 encryption_table(pairs), ""]
    text += ["### Mixed traffic on the service", "",
             f"{MIXED_CLIENTS} clients for {MIXED_SECONDS:g} s, each going round: {', '.join(MIX)}. Their doctor "
             f"had {seeded:,} patients at the start, each linked to an appointment (added through add_and_link just "
             f"before). CPU used during the run, in % of one core: the service {mixed_cpu['service']:.0f}%, the "
             f"database {mixed_cpu['db']:.0f}%, the clients {mixed_cpu['client']:.0f}%, other processes "
             f"{mixed_cpu['other']:.0f}%.", "", mixed_table(mixed), ""]
    return "\n".join(text)


def write_results(section):
    """Replace the "## Last run" section of RESULTS.md, keeping every other section as it is."""
    kept = []
    if RESULTS.exists():
        parts = re.split(r"^(?=## )", RESULTS.read_text(), flags=re.MULTILINE)
        kept = [part.rstrip() + "\n" for part in parts[1:] if not part.startswith("## Last run")]
    title = ("# `make bench` results\n\nEach `make bench` replaces the section \"Last run\"; the other sections are "
             "kept as they are. How to read them: [README.md](README.md).\n")
    RESULTS.write_text("\n".join([title, section] + kept))


def main():
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (a `&` job)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))
    workdir, started, clients, finished = Path(tempfile.mkdtemp(prefix="bench-")), [], [None], False
    began = time.monotonic()
    try:
        port = free_port()
        # As `make run` starts it: journaled commits synced (--sync-on-commit), no test commands.
        db_process = start("secantusd", embedded_db.command(port, workdir / "db"), workdir, started)
        uri = embedded_db.uri(port)
        try:
            embedded_db.wait_until_answering(db_process, uri, 60)
        except embedded_db.DidNotAnswer:
            raise SystemExit(f"bench: secantusd-py did not start (exit status {db_process.poll()}); "
                             "see its log") from None
        mongo = clients[0] = pymongo.MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=500)
        env = {name: value for name, value in os.environ.items() if not SERVICE_SETTINGS.match(name)}
        env.update(MONGODB_URI=uri, JWT_SECRET=SECRET, HOST="127.0.0.1",
                   FIELD_ENCRYPTION_KEY=new_master_key())  # never written to disk
        env["RATE_LIMIT"] = "off"  # the bench is the flood a rate limit refuses: it measures the service behind it
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        services = {}
        for name, database, args, extra in (
                ("service", "bench_service", [gunicorn, "wsgi:app"], {}),
                ("plain", "bench_plain", [gunicorn, "-c", "gunicorn.conf.py", "bench.plain_app:app"], {}),
                (OFF, "bench_off", [gunicorn, "wsgi:app"], {"FIELD_ENCRYPTION": "off"})):
            service_port = free_port()
            process = start(f"gunicorn-{database}", args, workdir, started,
                            {**env, **extra, "MONGODB_DB": database, "PORT": str(service_port)})
            services[name] = {"port": service_port, "pid": process.pid, "db": mongo[database]}
            wait_until(lambda port=service_port, pid=process.pid: answers_http(port) and len(children(pid)) == WORKERS,
                       process, name)

        footprints = {"service": footprint_run(services["service"], WRITE_ROUTES),
                      "plain": footprint_run(services["plain"], WRITE_ROUTES[:1])}
        results, pairs = [], []
        for index in range(ENCRYPTION_PAIRS):  # each pair starts with the other one
            pair = {name: link_run(name, services[name], db_process.pid, ENCRYPTION_CLIENTS, ENCRYPTION_RATE)
                    for name in (("service", OFF) if index % 2 == 0 else (OFF, "service"))}
            pairs.append((pair["service"], pair[OFF]))
        for concurrency in CONCURRENCY:
            for pair in range(LINK_PAIRS):  # each pair starts with the other one
                order = ["service", "plain"] if pair % 2 == 0 else ["plain", "service"]
                results += [{**link_run(name, services[name], db_process.pid, concurrency), "pair": pair + 1}
                            for name in order]

        mixed = mixed_run(services["service"], db_process.pid)
        section = report(results, pairs, footprints, *mixed, time.monotonic() - began)
        print(section)
        write_results(section)
        print(f"wrote {RESULTS}", file=sys.stderr)
        finished = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        if clients[0] is not None:
            clients[0].close()
        for process in reversed(started):  # the gunicorns first, the database last
            stop(process, 20, group=True)  # SIGTERM to the group (gunicorn stops its workers), then SIGKILL
        shutil.rmtree(workdir / "db", ignore_errors=True)
        if finished:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"bench: stopped before the end; the logs are in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
