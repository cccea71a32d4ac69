"""Run the add_and_link benchmark: `python bench/run.py` (or `make bench`); settings come from BENCH_* variables."""
import base64
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pymongo  # noqa: E402

from bench import data, profile, report  # noqa: E402
from bench.processes import (  # noqa: E402
    ROOT, Database, Gunicorn, cpu_by_process, cpu_seconds, die_with_parent, machine_busy_seconds,
    service_environment,
)
from bench.wrk import ensure_wrk, run_wrk, wrk_threads  # noqa: E402

DB_NAME = "clinic_bench"
DOCTOR = data.doctor_name(0)  # one of the scale dataset's doctors
LINKED_POOL = 2000
ROUTES = {"endpoint": "/patients/add_and_link", "ceiling": "/bench/fixed"}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# The floor's streams per service worker: the 4 threads each worker had before gevent, so runs stay comparable.
FLOOR_STREAMS_PER_WORKER = 4


def env_number(name, default, kind=float):
    """Read a non-negative number from the environment, failing loudly on anything else."""
    raw = os.environ.get(name) or str(default)
    try:
        value = kind(raw)
    except ValueError:
        raise SystemExit(f"bench: {name} must be a number, not {raw!r}") from None
    if value < 0:
        raise SystemExit(f"bench: {name} must not be negative")
    return value


@dataclass
class Settings:
    """What to run, from BENCH_* environment variables."""

    seconds: int = field(default_factory=lambda: env_number("BENCH_SECONDS", 6, int))
    rounds: int = field(default_factory=lambda: env_number("BENCH_ROUNDS", 3, int))
    warmup: int = field(default_factory=lambda: env_number("BENCH_WARMUP_SECONDS", 2, int))
    concurrency: list = field(default_factory=lambda: [
        int(c) for c in (os.environ.get("BENCH_CONCURRENCY") or "1,8,32").split(",") if c.strip()])
    scale_records: int = field(default_factory=lambda: env_number("BENCH_SCALE_RECORDS", 100_000, int))
    scale_doctors: int = field(default_factory=lambda: env_number("BENCH_SCALE_DOCTORS", 1000, int))
    # The concurrency of the field encryption on/off comparison; 0 skips it.
    encryption_concurrency: int = field(default_factory=lambda: env_number("BENCH_ENCRYPTION_CONCURRENCY", 8, int))
    standalone: bool = field(default_factory=lambda: os.environ.get("BENCH_STANDALONE") == "1")
    profile: bool = field(default_factory=lambda: os.environ.get("BENCH_PROFILE") == "1")
    wrk_threads: int = field(default_factory=lambda: env_number("BENCH_WRK_THREADS", os.cpu_count() or 1, int))
    out_dir: Path = field(default_factory=lambda: Path(os.environ.get("BENCH_OUT") or ROOT / "bench" / "out"))
    results: Path = field(
        default_factory=lambda: Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench" / "RESULTS.md"))


def stop_on_signal(signum, frame):
    """Turn SIGTERM and SIGHUP into an exit that runs the cleanup, as Ctrl-C does."""
    raise SystemExit(128 + signum)


def ms(microseconds):
    """Convert microseconds to milliseconds."""
    return microseconds / 1000


@dataclass
class Target:
    """One database server and the service in front of it: the empty one, or the one holding the scale dataset."""

    dataset: str
    database: Database
    service: Gunicorn
    db: object = None  # the bench's own handle on the database, for inserting its data


class Bench:
    """The runs of one `make bench`: two database servers, a service in front of each, and the ceiling."""

    def __init__(self, settings, wrk, targets, ceiling, token, plain=None):
        self.s = settings
        self.wrk = wrk
        self.targets = targets
        self.empty = targets[0]
        self.service = self.empty.service  # the service every empty-database row measures
        self.ceiling = ceiling
        self.plain = plain  # the service with FIELD_ENCRYPTION=off in front of the empty database, or None
        self.token = token
        self.clients = []
        for target in targets:
            # Bounded, so that a stuck database fails the bench instead of hanging it.
            client = pymongo.MongoClient(target.database.uri, tz_aware=True, serverSelectionTimeoutMS=30_000,
                                         socketTimeoutMS=300_000)
            self.clients.append(client)
            target.db = client[DB_NAME]
        self.results = []
        self.best_rps = 0.0
        self.rates = {}  # (kind, concurrency) -> req/s of its last success run, to size the next one's ids
        self.linked_file = self.s.out_dir / "ids-linked.txt"

    def close(self):
        """Close the bench's own database clients."""
        for client in self.clients:
            client.close()

    def servers(self):
        """Return every gunicorn of the bench."""
        return [target.service for target in self.targets] + [self.ceiling] + ([self.plain] if self.plain else [])

    def database_pids(self):
        """Return the pids of every database server of the bench."""
        return [pid for target in self.targets for pid in target.database.pids()]

    def floor_processes(self, concurrency):
        """Return how many floor processes run at a concurrency, at most FLOOR_STREAMS_PER_WORKER per service worker."""
        return min(concurrency, self.service.workers * FLOOR_STREAMS_PER_WORKER)

    def log(self, message):
        """Print a progress line."""
        print(f"bench: {message}", flush=True)

    def fresh_pool(self, target, count, label):
        """Insert count free appointments of the doctor into a target's database and write their ids to a file."""
        path = self.s.out_dir / f"ids-{label}.txt"
        data.write_ids(path, data.add_appointments(target.db, DOCTOR, count))
        return path

    def wait_idle(self, limit=30):
        """Wait until the workers and the database stop using CPU: requests wrk left queued have drained."""
        pids = [pid for server in self.servers() for pid in server.worker_pids()] + self.database_pids()
        deadline, last = time.monotonic() + limit, cpu_seconds(pids)
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = cpu_seconds(pids)
            if now - last < 0.02:
                return
            last = now
        self.log(f"still busy {limit} s after a run; going on")

    def pool_size(self, concurrency, kind):
        """Return how many fresh ids a success run needs: more than its kind's last rate, or the best so far, allows."""
        threads = max(wrk_threads(concurrency, self.s.wrk_threads), self.floor_processes(concurrency))
        # Inserting ids costs the bench time, so size from the same kind of run when one ran before;
        # a run that still runs out is repeated with twice as many (success_run).
        known = self.rates.get((kind, concurrency))
        rate, margin = (known, 1.5) if known else (max(self.best_rps, 300), 2)
        # Unused ids stay in the database as free appointments: a bulk delete beside open transactions
        # can deadlock secantusd-py 0.7.0b3, so nothing is cleaned up between runs.
        return max(100 * threads, int(rate * self.s.seconds * margin))

    def cpu_now(self, server, database):
        """Return CPU seconds used so far by: the measured server's workers and database, all of ours, the machine."""
        servers = self.servers()
        workers = [pid for s in servers for pid in s.worker_pids()]
        own = resource.getrusage(resource.RUSAGE_SELF)
        waited = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, the floor processes, py-spy
        ours = (cpu_seconds(workers + [s.process.pid for s in servers] + self.database_pids())
                + own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime)
        others = [pid for target in self.targets if target.database is not database for pid in target.database.pids()]
        return {"server": cpu_seconds(server.worker_pids()) if server else 0.0,
                "db": cpu_seconds(database.pids()), "other_db": cpu_seconds(others), "ours": ours,
                "busy": machine_busy_seconds()}

    def foreign_processes(self, before, after, top=3):
        """Return the processes outside the bench that used the most CPU between two cpu_by_process() readings."""
        ours = {os.getpid(), *self.database_pids(),
                *(pid for server in self.servers() for pid in [server.process.pid, *server.worker_pids()])}
        used = []
        for pid, (seconds, name) in after.items():
            start = before.get(pid, (0.0, name))[0]
            if pid not in ours and not self.is_ours(pid) and seconds - start >= 0.05:
                used.append((round(seconds - start, 2), f"{pid} {name}"))
        return sorted(used, reverse=True)[:top]

    def is_ours(self, pid):
        """Tell whether pid descends from this bench process (wrk, a floor process, py-spy)."""
        for _ in range(5):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    pid = int(stat.read().rpartition(")")[2].split()[1])
            except OSError:
                return False
            if pid == os.getpid():
                return True
        return False

    def measure(self, driver, server=None, target=None):
        """Run driver() and add the CPU the server's workers, the database and other processes used meanwhile."""
        database = (target or self.empty).database
        log_offset = server.log_offset() if server else None
        processes_before = cpu_by_process()
        # wrk's keep-alive connections stay with the worker that accepted them: sample the split mid-run.
        split, sampler = [], None
        if server:
            sampler = threading.Timer(self.s.seconds / 2, lambda: split.extend(server.connections_per_worker()))
            sampler.start()
        before, started = self.cpu_now(server, database), time.monotonic()
        result = driver()
        if sampler:
            sampler.cancel()
            sampler.join()
        result["connections_per_worker"] = split or None
        elapsed = time.monotonic() - started
        used = {key: value - before[key] for key, value in self.cpu_now(server, database).items()}
        result["other_top"] = self.foreign_processes(processes_before, cpu_by_process())
        # Requests wrk left queued still run: let them finish before the next run, outside any measurement.
        self.wait_idle()
        # The app's own view (its request log: from its first hook to its last), without gunicorn, TCP and wrk.
        durations = sorted(server.request_durations(log_offset, ROUTES[result["kind"]])) if server else []
        result["app_p99_ms"] = report.percentile(durations, 0.99) if durations else None
        if durations and result["kind"] == "endpoint":  # the fixed route's 0.1 ms durations are below the log's grain
            result["stalls_per_s"] = report.stalls_per_second(durations, self.s.seconds)
        requests = max(result["requests"], 1)
        # For the floor, its own processes' CPU stands in the service's column.
        service = result["client_cpu_s"] if result.get("client_cpu_s") is not None else used["server"]
        result.update(
            service_cpu_ms=1000 * service / requests,
            db_cpu_ms=1000 * used["db"] / requests,
            other_cpu_pct=max(0.0, 100 * (used["busy"] - used["ours"]) / (elapsed * (os.cpu_count() or 1))),
            # The database server this run does not use: its background work competes for the same cores.
            other_db_cpu_pct=100 * used["other_db"] / (elapsed * (os.cpu_count() or 1)),
        )
        return result

    def via_wrk(self, kind, path, concurrency, url, ids_file, mode, label):
        """Drive url with wrk and return the run's result."""
        threads = wrk_threads(concurrency, self.s.wrk_threads)
        raw = run_wrk(self.wrk, url, concurrency, threads, self.s.seconds, ids_file, self.token, mode,
                      self.s.out_dir / f"wrk-{label}.txt")
        expected = str(path)
        statuses = raw["statuses"]
        socket_errors = sum(raw["socket_errors"].values())
        return {
            "kind": kind, "path": path, "concurrency": concurrency, "requests": raw["requests"],
            "rps": raw["requests"] / (raw["duration_us"] / 1e6),
            "p50_ms": ms(raw["p50_us"]), "p95_ms": ms(raw["p95_us"]), "p99_ms": ms(raw["p99_us"]),
            "max_ms": ms(raw["max_us"]), "statuses": statuses,
            "errors": sum(n for s, n in statuses.items() if s != expected) + socket_errors,
            "exhausted": raw["exhausted"] > 0, "wrk": raw,
        }

    def via_floor(self, target, path, concurrency, ids_file, count, mode):
        """Run the floor processes (one per stream) against a target's database and return the run's result."""
        processes = self.floor_processes(concurrency)
        per = count // processes
        start_at = time.time() + 1.5  # time for every process to import (0.5 s here) and connect
        commands = [
            [sys.executable, "-m", "bench.floor", "--uri", target.database.uri, "--db", DB_NAME, "--doctor", DOCTOR,
             "--ids-file", str(ids_file), "--first", str(i * per), "--count", str(per), "--mode", mode,
             "--start-at", str(start_at), "--seconds", str(self.s.seconds)]
            for i in range(processes)
        ]
        running = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                    preexec_fn=die_with_parent) for c in commands]
        outputs = []
        try:
            for process in running:
                stdout, _ = process.communicate(timeout=self.s.seconds + 60)
                if process.returncode != 0:
                    raise SystemExit(f"bench: a floor process failed with {process.returncode}")
                outputs.append(json.loads(stdout))
        finally:
            for process in running:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        latencies = sorted(v for o in outputs for v in o["latencies_us"])
        statuses = {}
        for output in outputs:
            for status, n in output["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
        return {
            "kind": "floor", "path": path, "concurrency": concurrency, "requests": len(latencies),
            "rps": len(latencies) / self.s.seconds, "processes": processes,
            "p50_ms": ms(report.percentile(latencies, 0.50)), "p95_ms": ms(report.percentile(latencies, 0.95)),
            "p99_ms": ms(report.percentile(latencies, 0.99)), "max_ms": ms(latencies[-1] if latencies else 0),
            "stalls_per_s": report.stalls_per_second(latencies, self.s.seconds),
            "statuses": statuses,
            "errors": sum(n for s, n in statuses.items() if s != str(path)),
            "exhausted": any(o["exhausted"] for o in outputs),
            "client_cpu_s": sum(o["cpu_seconds"] for o in outputs),
            "transactional": all(o["transactional"] for o in outputs),
        }

    def success_run(self, target, label, concurrency, run, server=None):
        """Run a success-path run on fresh ids in a target's database, again with more ids if it ran out."""
        kind = label.split("-")[0]
        count = self.pool_size(concurrency, kind)
        for _ in range(4):
            ids_file = self.fresh_pool(target, count, label)
            result = self.measure(lambda: run(ids_file, count), server, target)
            if not result["exhausted"]:
                self.best_rps = max(self.best_rps, result["rps"])
                self.rates[kind, concurrency] = max(result["rps"], self.rates.get((kind, concurrency), 0))
                return result
            self.log(f"{label}: ran out of {count} fresh ids; again with twice as many")
            count *= 2
        raise SystemExit(f"bench: {label} kept running out of fresh ids")

    def record(self, result, dataset="empty", round_=1):
        """Keep a result and print its line."""
        result["dataset"] = dataset
        result["round"] = round_
        result["path"] = str(result["path"])
        self.results.append(result)
        self.log(f"{dataset:5} round {round_} c={result['concurrency']:<3} {result['kind']:8} {result['path']}: "
                 f"{result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f}  p99 {result['p99_ms']:7.2f} ms  "
                 f"CPU/req {result['service_cpu_ms']:.2f}  errors {result['errors']}  "
                 f"statuses {result['statuses']}  other CPU {result['other_cpu_pct']:.0f}% {result['other_top']}")

    def endpoint_url(self, server, path):
        """Return the URL wrk drives on a server."""
        return server.url + (f"/patients/add_and_link?uid={DOCTOR}" if path != "fixed" else "/bench/fixed")

    def warm_up(self):
        """Send each gunicorn a few seconds of requests, so that first-request costs stay out of the runs."""
        if not self.s.warmup:
            return
        c = max(self.s.concurrency)
        threads = wrk_threads(c, self.s.wrk_threads)
        runs = []
        for target in self.targets:
            # The success path: a refusal's audit record is a retryable write, which the database keeps (see README).
            fresh = self.fresh_pool(target, max(100 * threads, 400 * self.s.warmup), f"warmup-{target.dataset}")
            runs.append((target.service, self.endpoint_url(target.service, "201"), fresh))
        if self.plain:
            fresh = self.fresh_pool(self.empty, max(100 * threads, 400 * self.s.warmup), "warmup-plain")
            runs.append((self.plain, self.endpoint_url(self.plain, "201"), fresh))
        runs.append((self.ceiling, self.endpoint_url(self.ceiling, "fixed"), self.linked_file))
        for server, url, ids in runs:
            run_wrk(self.wrk, url, c, threads, self.s.warmup, ids, self.token, "cycle",
                    self.s.out_dir / f"wrk-warmup-{server.port}.txt")
        self.wait_idle()

    def success_pair(self, target, c, round_):
        """Run the floor and the endpoint on the success path against one target."""
        name = f"{target.dataset}-201-c{c}-r{round_}"
        url = self.endpoint_url(target.service, "201")
        self.record(self.success_run(target, f"floor-{name}", c, lambda f, n: self.via_floor(
            target, 201, c, f, n, "fresh")), target.dataset, round_)
        self.record(self.success_run(target, f"endpoint-{name}", c, lambda f, n: self.via_wrk(
            "endpoint", 201, c, url, f, "fresh", f"endpoint-{name}"), target.service), target.dataset, round_)

    def run_round(self, round_, c):
        """Run one round at one concurrency: the success path on the empty and the scale database, and the ceiling.

        The two datasets take turns going first, so that a drift over the bench weighs on both alike.
        """
        order = self.targets if round_ % 2 else list(reversed(self.targets))
        for target in order:
            self.success_pair(target, c, round_)
        if round_ == 1:  # the fixed route's cost does not drift: once is enough
            self.record(self.measure(lambda: self.via_wrk(
                "ceiling", 201, c, self.endpoint_url(self.ceiling, "fixed"), self.linked_file, "cycle",
                f"ceiling-c{c}"), self.ceiling))

    def run_encryption(self, round_):
        """Run the success path on the empty database through the service with field encryption on and off.

        The same gunicorn flags, database server and concurrency; the two take turns going first, so that the
        database filling up weighs on both alike.
        """
        c = self.s.encryption_concurrency
        pair = [("on", self.service), ("off", self.plain)]
        for state, server in pair if round_ % 2 else reversed(pair):
            label = f"encryption-{state}-c{c}-r{round_}"
            url = self.endpoint_url(server, "201")
            self.record(self.success_run(self.empty, label, c, lambda f, n: self.via_wrk(
                "endpoint", 201, c, url, f, "fresh", label), server), f"encryption {state}", round_)

    def run_conflicts(self, c):
        """Run the 409 path at one concurrency: floor, endpoint, floor again.

        Refusals slow the embedded server down as they accumulate (README.md); two floor runs around the
        endpoint's let the floor's median stand where the endpoint's run stood.
        """
        url = self.endpoint_url(self.service, "201")
        linked = self.linked_file

        def floor():
            return self.via_floor(self.empty, 409, c, linked, LINKED_POOL, "cycle")

        self.record(self.measure(floor))
        self.record(self.measure(lambda: self.via_wrk(
            "endpoint", 409, c, url, linked, "cycle", f"endpoint-409-c{c}"), self.service))
        self.record(self.measure(floor), round_=2)

    def run_profile(self):
        """Profile the service's workers with py-spy during an extra success run at the highest concurrency."""
        c = max(self.s.concurrency)
        py_spy = profile.ensure_py_spy()
        url = self.endpoint_url(self.service, "201")
        recorders = []

        def run(ids_file, _count):
            recorders.extend(profile.start(py_spy, self.service.worker_pids(), self.s.seconds, self.s.out_dir))
            return self.via_wrk("endpoint", 201, c, url, ids_file, "fresh", f"profile-c{c}")

        result = self.success_run(self.empty, f"profile-c{c}", c, run, self.service)
        paths = profile.finish(recorders, timeout=30)
        self.log(f"profiled c={c}: {result['rps']:.1f} req/s while sampled")
        summary = profile.summarize(paths, result["requests"])
        (self.s.out_dir / "profile.md").write_text(summary + "\n")
        return f"During an extra {self.s.seconds:g} s success run at concurrency {c} " \
               f"({result['rps']:.1f} req/s while sampled, not in the tables above).\n\n{summary}"

    def load_scale_dataset(self, target):
        """Insert the scale dataset into a target's database and check that the service's indexes are there."""
        from app.db import INDEXES  # the indexes the service creates at start

        self.log(f"inserting {self.s.scale_records:,} patients and appointments over {self.s.scale_doctors:,} doctors")
        started = time.monotonic()
        data.add_scale_dataset(target.db, self.s.scale_records, self.s.scale_doctors)
        inserted_in = time.monotonic() - started
        self.wait_idle(limit=60)  # the database may still be writing the bulk load out
        for collection, indexes in INDEXES.items():
            missing = {i.document["name"] for i in indexes} - set(target.db[collection].index_information())
            if missing:
                raise SystemExit(f"bench: the service's indexes {sorted(missing)} on {collection} are missing")
        return inserted_in


def start_target(dataset, settings, secret, master_key, tmp, started):
    """Start a database server and the service in front of it, and return them as a Target."""
    out = settings.out_dir
    database = Database(Path(tmp) / f"db-{dataset}", out / f"secantusd-{dataset}.log",
                        standalone=settings.standalone).start()
    started.append(database)
    service = Gunicorn("wsgi:app", service_environment(database.uri, DB_NAME, secret, master_key, settings.standalone),
                       out / f"gunicorn-service-{dataset}.log").start()
    started.append(service)
    return Target(dataset, database, service)


def run_all(settings, wrk, tmp, started):
    """Start both databases and the gunicorns, run everything, and return (results, report context)."""
    out = settings.out_dir
    secret = secrets.token_urlsafe(48)
    # The service as deployed: field encryption on, under a master key made for this run and kept in memory only.
    master_key = base64.b64encode(os.urandom(96)).decode()
    empty = start_target("empty", settings, secret, master_key, tmp, started)
    scale = start_target("scale", settings, secret, master_key, tmp, started)
    ceiling_env = service_environment(empty.database.uri, DB_NAME, secret, master_key, settings.standalone)
    ceiling = Gunicorn("bench.ceiling_wsgi:app", ceiling_env, out / "gunicorn-ceiling.log").start()
    started.append(ceiling)
    plain = None
    if settings.encryption_concurrency:  # the same service and flags with FIELD_ENCRYPTION=off, same database
        plain_env = service_environment(empty.database.uri, DB_NAME, secret, None, settings.standalone)
        plain = Gunicorn("wsgi:app", plain_env, out / "gunicorn-service-plain.log").start()
        started.append(plain)
    started_pids = {name: pids for target in (empty, scale) for name, pids in (
        (f"database-{target.dataset}", target.database.pids()),
        (f"service-{target.dataset}", [target.service.process.pid, *target.service.worker_pids()]))}
    started_pids["ceiling"] = [ceiling.process.pid, *ceiling.worker_pids()]
    if plain:
        started_pids["service-plain"] = [plain.process.pid, *plain.worker_pids()]
    (out / "pids.json").write_text(json.dumps(started_pids))  # lets the smoke test check nothing is left behind
    bench = Bench(settings, wrk, [empty, scale], ceiling, data.mint_token(secret, DOCTOR), plain)
    data.write_ids(bench.linked_file, data.add_appointments(empty.db, DOCTOR, LINKED_POOL, linked=True))
    scale_insert_s = bench.load_scale_dataset(scale)
    bench.log(f"databases {empty.database.uri} (empty) and {scale.database.uri} (scale), services "
              f"{empty.service.url} and {scale.service.url} (encryption off: {plain.url if plain else 'none'}), "
              f"ceiling {ceiling.url}; warming up")
    bench.warm_up()
    for round_ in range(1, settings.rounds + 1):
        for c in settings.concurrency:
            bench.run_round(round_, c)
        if plain:
            bench.run_encryption(round_)
    for c in settings.concurrency:
        bench.run_conflicts(c)
    profile_text = bench.run_profile() if settings.profile else None
    bench.close()
    service = empty.service
    floor = next((r for r in bench.results if r["kind"] == "floor"), {})
    context = {
        "settings": settings,
        "profile": profile_text,
        "scale_insert_s": scale_insert_s,
        "gunicorn": " ".join(["gunicorn"] + service.command[1:]),
        "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "db_version": metadata.version("SecantusDB"),
        "wrk_version": wrk_version(wrk),
        "wrk_threads_note": f"min(concurrency, {settings.wrk_threads}) threads and --timeout 10s",
        "floor_note": (
            f"one Python process per stream, min(concurrency, workers × {FLOOR_STREAMS_PER_WORKER} = "
            f"{service.workers * FLOOR_STREAMS_PER_WORKER}) of them, each a pymongo client with the service's settings "
            f"({'in transactions' if floor.get('transactional') else 'without transactions'}). Processes, not "
            "threads, so that the client's GIL never caps the floor; capped so that on 2 cores the floor's own "
            "processes do not crowd out the database it measures."),
    }
    return bench.results, context


def wrk_version(wrk):
    """Return wrk's version line."""
    result = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    lines = (result.stdout + result.stderr).strip().splitlines()
    return lines[0].split(" [")[0] if lines else "wrk"


def main():
    """Run the benchmark and write RESULTS.md; always stop what it started, on Ctrl-C and errors too."""
    settings = Settings()
    if not settings.concurrency or min(settings.concurrency) < 1 or not settings.seconds or not settings.rounds:
        raise SystemExit("bench: BENCH_CONCURRENCY must list positive numbers; BENCH_SECONDS and BENCH_ROUNDS "
                         "must be positive")
    began = time.monotonic()
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    wrk = ensure_wrk()
    # Ctrl-C stops the bench even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in STOP_SIGNALS:
        signal.signal(signum, stop_on_signal)
    tmp = tempfile.mkdtemp(prefix="clinic-bench-")
    started = []
    try:
        results, context = run_all(settings, wrk, tmp, started)
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything it started", file=sys.stderr, flush=True)
        return 130
    finally:
        for signum in (signal.SIGINT, *STOP_SIGNALS):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        for process in reversed(started):
            process.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    context["elapsed_s"] = time.monotonic() - began
    text = report.render(results, context)
    settings.results.parent.mkdir(parents=True, exist_ok=True)
    settings.results.write_text(text)
    (settings.out_dir / "results.json").write_text(json.dumps(results, indent=1))
    print(text)
    print(f"bench: wrote {settings.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
