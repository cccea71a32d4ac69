"""Turn the runs' results into the RESULTS.md tables."""
import datetime
import os
import platform
import statistics
from pathlib import Path

LABELS = {
    ("endpoint", "201"): "add_and_link, links (201)",
    ("floor", "201"): "floor: pymongo only, links",
    ("endpoint", "409"): "add_and_link, already linked (409)",
    ("floor", "409"): "floor: pymongo only, already linked",
    ("ceiling", "201"): "ceiling: POST /bench/fixed",
}
ORDER = list(LABELS)
# What was changed for speed and what it bought, kept by hand, copied into every RESULTS.md.
CHANGES = Path(__file__).resolve().parent / "CHANGES.md"
# Measured per run; a row of the tables shows the median over its runs.
MEDIAN_FIELDS = ("rps", "p50_ms", "p95_ms", "p99_ms", "app_p99_ms", "service_cpu_ms", "db_cpu_ms", "stalls_per_s")
# The targets (medians of the bench's runs).
FLOOR_SHARE_TARGET = 0.8
CPU_RATIO_TARGET = 2.0
P99_GROWTH_TARGET = 1.25
# Field encryption's issue: what it adds to add_and_link's service CPU per request stays under this share.
ENCRYPTION_CPU_TARGET = 0.15
# A stall: an operation (floor) or a request inside the app (endpoint) slower than this many times its run's p50.
STALL_FACTOR = 4


def percentile(sorted_values, fraction):
    """Return the nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return 0
    rank = max(1, round(fraction * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def stalls_per_second(sorted_values, seconds):
    """Return how many of a run's latencies were stalls (over STALL_FACTOR x the run's p50), per second of the run."""
    if not sorted_values or not seconds:
        return None
    limit = STALL_FACTOR * percentile(sorted_values, 0.50)
    return sum(1 for value in sorted_values if value > limit) / seconds


def cpu_model():
    """Return the CPU's model name from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def number(value, digits=1):
    """Format a number for the table, or a dash."""
    return "–" if value is None else f"{value:,.{digits}f}"


def summarize(results):
    """Group the runs by (kind, path, concurrency, dataset) and return each group's medians, errors and run count."""
    groups = {}
    for result in results:
        key = (result["kind"], result["path"], result["concurrency"], result["dataset"])
        groups.setdefault(key, []).append(result)
    summary = {}
    for key, runs in groups.items():
        row = {name: median([r.get(name) for r in runs]) for name in MEDIAN_FIELDS}
        row.update(runs=len(runs), errors=sum(r["errors"] for r in runs),
                   other_cpu_pct=max(r["other_cpu_pct"] for r in runs))
        summary[key] = row
    return summary


def median(values):
    """Return the median of the values measured (None stands for not measured), or None."""
    measured = [v for v in values if v is not None]
    return statistics.median(measured) if measured else None


def ratio(summary, kind, path, concurrency, against, dataset="empty"):
    """Return the endpoint's median req/s over the floor's (same path) or the ceiling's, at one concurrency."""
    if kind != "endpoint":
        return None
    mine = summary.get((kind, path, concurrency, dataset))
    if against == "floor":
        other = summary.get(("floor", path, concurrency, dataset))
    else:  # the fixed route runs once, as a 201, in front of the empty database
        other = summary.get(("ceiling", "201", concurrency, "empty"))
    return mine["rps"] / other["rps"] if mine and other and other["rps"] else None


def verdict(value, limit, at_least=False):
    """Return "met" or "not met" for a measured value against a target, or a dash when it was not measured."""
    if value is None:
        return "–"
    return "met" if (value >= limit if at_least else value <= limit) else "**not met**"


def targets_table(summary, concurrencies):
    """Return the markdown table of the issue's three targets, from the medians."""
    top = max(concurrencies)
    share = ratio(summary, "endpoint", "201", top, "floor")
    lines = ["| target | concurrency | measured (medians) | status |", "|---|---:|---|---|",
             f"| add_and_link req/s >= {FLOOR_SHARE_TARGET} x the floor's (success path) | {top} "
             f"| {number(share, 2)} | {verdict(share, FLOOR_SHARE_TARGET, at_least=True)} |"]
    for c in concurrencies:
        endpoint, floor, ceiling = (summary.get((kind, "201", c, "empty")) for kind in ("endpoint", "floor", "ceiling"))
        if not (endpoint and floor and ceiling and ceiling["service_cpu_ms"]):
            continue
        fixed = ceiling["service_cpu_ms"]
        whole = endpoint["service_cpu_ms"] / fixed
        # What a service doing nothing of its own would spend: the web stack's (fixed route) plus the driver's (floor).
        least = (fixed + floor["service_cpu_ms"]) / fixed
        own = endpoint["service_cpu_ms"] - fixed - floor["service_cpu_ms"]
        reach = ("within reach" if least <= CPU_RATIO_TARGET
                 else f"out of reach ({number(least, 2)} x > {CPU_RATIO_TARGET:g})")
        lines.append(
            f"| service CPU/req <= {CPU_RATIO_TARGET:g} x the fixed route's | {c} "
            f"| {number(whole, 2)} x ({number(endpoint['service_cpu_ms'], 2)} vs {number(fixed, 2)} ms); "
            f"the web stack plus the driver alone (fixed route + floor): {number(least, 2)} x; "
            f"the service's own work, the rest: {number(own, 2)} ms ({number(own / fixed, 2)} x) "
            f"| {verdict(whole, CPU_RATIO_TARGET)}; {reach} |")
    for c in concurrencies:
        growth = p99_growth(summary, "endpoint", c)
        if growth is None:
            continue
        app = p99_growth(summary, "endpoint", c, "app_p99_ms")
        lines.append(f"| p99 with the scale dataset <= {P99_GROWTH_TARGET} x empty | {c} | {number(growth, 2)} "
                     f"(inside the app: {number(app, 2)}; the floor's: {number(p99_growth(summary, 'floor', c), 2)}"
                     f"{database_stalls(summary, c)}) "
                     f"| {verdict(growth, P99_GROWTH_TARGET)}; inside the app: {verdict(app, P99_GROWTH_TARGET)} |")
    return "\n".join(lines)


def database_stalls(summary, concurrency):
    """Say how often the floor stalled on each server, and what share of the endpoint's requests at scale that is."""
    # Above 1% of the requests, the database's own pauses alone set the endpoint's p99.
    empty, scale = (summary.get(("floor", "201", concurrency, dataset)) for dataset in ("empty", "scale"))
    endpoint = summary.get(("endpoint", "201", concurrency, "scale"))
    if not (empty and scale and endpoint) or scale["stalls_per_s"] is None or not endpoint["rps"]:
        return ""
    share = 100 * scale["stalls_per_s"] / endpoint["rps"]
    counted = ", each counted several times in wrk's p99" if share else ""
    return (f"; the floor's stalls: {number(empty['stalls_per_s'])}/s empty, {number(scale['stalls_per_s'])}/s "
            f"scale, {number(share, 2)}% of the endpoint's requests at scale{counted}")


def p99_growth(summary, kind, concurrency, field="p99_ms"):
    """Return a success-path run's median p99 on the scale database over the empty one's."""
    empty = summary.get((kind, "201", concurrency, "empty"))
    scale = summary.get((kind, "201", concurrency, "scale"))
    if not (empty and scale and empty[field] and scale[field] is not None):
        return None
    return scale[field] / empty[field]


def main_table(summary, concurrencies):
    """Return the markdown table of the empty-database runs (medians)."""
    lines = [
        "| conc. | run | runs | req/s | p50 ms | p95 ms | p99 ms | errors | service CPU ms/req | db CPU ms/req "
        "| endpoint/floor | endpoint/ceiling | other procs' CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in concurrencies:
        for kind, path in ORDER:
            r = summary.get((kind, path, c, "empty"))
            if r is None:
                continue
            service_cpu = number(r["service_cpu_ms"], 2) + (" †" if kind == "floor" else "")
            lines.append(
                f"| {c} | {LABELS[kind, path]} | {r['runs']} | {number(r['rps'])} | {number(r['p50_ms'], 2)} "
                f"| {number(r['p95_ms'], 2)} | {number(r['p99_ms'], 2)} | {r['errors']} | {service_cpu} "
                f"| {number(r['db_cpu_ms'], 2)} | {number(ratio(summary, kind, path, c, 'floor'), 2)} "
                f"| {number(ratio(summary, kind, path, c, 'ceiling'), 2)} | {r['other_cpu_pct']:.0f}% |")
    return "\n".join(lines)


def encryption_table(summary, concurrency):
    """Return the markdown table of the success path with field encryption on and off (medians), and what it adds."""
    runs = {state: summary.get(("endpoint", "201", concurrency, f"encryption {state}")) for state in ("on", "off")}
    if not all(runs.values()):
        return ""
    lines = ["| field encryption | conc. | runs | req/s | service CPU ms/req | db CPU ms/req | errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for state, r in runs.items():
        lines.append(f"| {state} | {concurrency} | {r['runs']} | {number(r['rps'])} | {number(r['service_cpu_ms'], 2)} "
                     f"| {number(r['db_cpu_ms'], 2)} | {r['errors']} |")
    on, off = runs["on"]["service_cpu_ms"], runs["off"]["service_cpu_ms"]
    added = on / off - 1 if on is not None and off else None
    status = "–" if added is None else "met" if added < ENCRYPTION_CPU_TARGET else "**not met**"
    lines += ["", f"Encryption adds {number(None if added is None else 100 * added)}% CPU per request "
                  f"(service CPU ms/req, on over off; target: under {100 * ENCRYPTION_CPU_TARGET:g}%: {status})."]
    return "\n".join(lines)


def scale_table(summary, concurrencies):
    """Return the markdown table comparing the success path on the empty and the scale database (medians)."""
    lines = ["| conc. | run | runs | req/s empty | req/s scale | p50 ms empty | p50 ms scale | p99 ms empty "
             "| p99 ms scale | p99 scale/empty | app p99 ms empty | app p99 ms scale | app p99 scale/empty "
             "| stalls/s empty | stalls/s scale | db CPU ms/req empty | db CPU ms/req scale | errors scale |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in concurrencies:
        for kind in ("endpoint", "floor"):
            empty = summary.get((kind, "201", c, "empty"))
            scale = summary.get((kind, "201", c, "scale"))
            if not (empty and scale):
                continue
            lines.append(f"| {c} | {LABELS[kind, '201']} | {scale['runs']} | {number(empty['rps'])} "
                         f"| {number(scale['rps'])} | {number(empty['p50_ms'], 2)} | {number(scale['p50_ms'], 2)} "
                         f"| {number(empty['p99_ms'], 2)} | {number(scale['p99_ms'], 2)} "
                         f"| {number(p99_growth(summary, kind, c), 2)} | {number(empty['app_p99_ms'], 2)} "
                         f"| {number(scale['app_p99_ms'], 2)} "
                         f"| {number(p99_growth(summary, kind, c, 'app_p99_ms'), 2)} "
                         f"| {number(empty['stalls_per_s'])} | {number(scale['stalls_per_s'])} "
                         f"| {number(empty['db_cpu_ms'], 2)} | {number(scale['db_cpu_ms'], 2)} | {scale['errors']} |")
    return "\n".join(lines)


def split(counts):
    """Format how many connections each worker held, as "20 / 12", or a dash."""
    return " / ".join(str(n) for n in counts) if counts else "–"


def runs_table(results):
    """Return the markdown table of every run, in the order they ran."""
    lines = ["| # | conc. | dataset | round | run | req/s | p50 ms | p99 ms | app p99 ms | max ms | stalls/s "
             "| connections per worker | errors | service CPU ms/req | db CPU ms/req | other db's CPU "
             "| other procs' CPU |",
             "|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for n, r in enumerate(results, 1):
        lines.append(f"| {n} | {r['concurrency']} | {r['dataset']} | {r['round']} | {LABELS[r['kind'], r['path']]} "
                     f"| {number(r['rps'])} | {number(r['p50_ms'], 2)} | {number(r['p99_ms'], 2)} "
                     f"| {number(r.get('app_p99_ms'), 2)} | {number(r['max_ms'], 1)} "
                     f"| {number(r.get('stalls_per_s'))} | {split(r.get('connections_per_worker'))} | {r['errors']} "
                     f"| {number(r['service_cpu_ms'], 2)} | {number(r['db_cpu_ms'], 2)} "
                     f"| {r['other_db_cpu_pct']:.0f}% | {r['other_cpu_pct']:.0f}% |")
    return "\n".join(lines)


def render(results, context):
    """Return RESULTS.md: the machine, the tables and what each column means."""
    s = context["settings"]
    summary = summarize(results)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# `make bench`: POST /patients/add_and_link",
        "",
        f"{when}; {os.cpu_count()} cores ({cpu_model()}), {context['memory_gib']:.0f} GiB; "
        f"Python {platform.python_version()}; {context['wrk_version']}; SecantusDB {context['db_version']} "
        f"({'standalone, no transactions' if s.standalone else 'single-node replica set, transactions'}).",
        f"Service: `{context['gunicorn']}` (the flags of `make run`). {s.seconds:g} s per run after a "
        f"{s.warmup:g} s warm-up; wrk with {context['wrk_threads_note']}. {s.rounds} rounds of the success-path "
        f"runs; every figure below is the median of a row's runs (the **runs** column; all of them are listed at "
        f"the end). The whole bench took {context['elapsed_s']:.0f} s.",
        "",
        "## The issue's targets",
        "",
        targets_table(summary, s.concurrency),
        "",
        "## Empty database",
        "",
        main_table(summary, s.concurrency),
        "",
        "## Field encryption on and off",
        "",
        f"add_and_link's success path through the service as deployed (field encryption on, under a master key made "
        f"for the run) and through another gunicorn with the same flags and FIELD_ENCRYPTION=off, in front of the "
        f"same empty database server, at concurrency {s.encryption_concurrency}: {s.rounds} pairs of runs, back to "
        f"back, taking turns going first. Columns as in the table above; these runs are not part of its rows."
        if s.encryption_concurrency else "Not measured (BENCH_ENCRYPTION_CONCURRENCY=0).",
        "",
        encryption_table(summary, s.encryption_concurrency),
        "",
        f"## Success path with {s.scale_records:,} patients and appointments over {s.scale_doctors:,} doctors",
        "",
        f"A second secantusd-py holds the scale dataset (inserted in {context['scale_insert_s']:.0f} s with "
        "insert_many, the service's indexes in place) behind a second service with the same flags. Each round "
        "runs the floor and the endpoint on both servers, the two taking turns going first, so that a drift over "
        "the bench weighs on both alike; both servers also hold the fresh appointments of their runs.",
        "",
        scale_table(summary, s.concurrency),
        "",
        "## Reading the table",
        "",
        "- **errors**: responses with another status than the run's expected one (201, or 409 for the "
        "already-linked runs), plus wrk's socket errors and timeouts.",
        "- **service CPU ms/req**: user+system CPU of the gunicorn workers (children of the master, from "
        "/proc/<pid>/stat) per request. † On floor rows: the floor processes' own CPU per operation, i.e. what "
        "pymongo alone costs a client.",
        "- **db CPU ms/req**: the same for the secantusd-py process.",
        "- **endpoint/floor**, **endpoint/ceiling**: the endpoint's req/s over the floor's (same path) and over "
        "the fixed route's, at the same concurrency.",
        f"- **floor**: {context['floor_note']}",
        "- **p50/p95/p99 ms** (endpoint and ceiling rows): wrk's, which wrk 4 corrects for coordinated omission "
        "before reporting: a request slower than the mean interval between requests on a connection (connections "
        "/ req/s) adds samples at its latency minus one, two, ... intervals, for the requests a steady client would "
        "have sent meanwhile. At concurrency 1 (about 7 ms a request), one 32 ms database stall counts about four "
        "times. The floor's and the app's percentiles are raw.",
        "- **app p99**: the p99 of the durations the service's own request log gives the run's requests (from "
        "Flask's first hook to its last): what the app and the database did, without gunicorn's connection "
        "handling, the loopback TCP and wrk. Against wrk's p99 it tells where a slow tail comes from.",
        f"- **stalls/s**: per second of a run, the operations (floor rows: pymongo alone, no service) or the "
        f"requests as the app's request log timed them (endpoint rows) that took more than {STALL_FACTOR} x their "
        "run's p50. On the floor rows they are the database's own pauses; in the p99 targets, their rate on the "
        "scale server over the endpoint's req/s is the share of its requests those pauses alone would slow: "
        "above 1%, they set its p99.",
        "- **connections per worker** (every-run table): wrk's keep-alive connections held by each gunicorn "
        "worker halfway through the run. A connection stays with the worker that accepted it, and which one "
        "does is a race, so the split changes from run to run (32 connections: anywhere from 31 / 1 to 16 / 16 "
        "on this machine). "
        "A worker holding most of them queues their requests behind its 4 threads while the other worker idles: "
        "at concurrency 32, the split moves wrk's p50 and p99 more than anything else, while the app's own "
        "durations do not change.",
        "- **other db's CPU** (every-run table): CPU the bench's other database server (the one the run does not "
        "use) spent during the run, as a share of all cores: its background work competes for the same cores.",
        "- **other procs' CPU**: CPU used during the run by processes that are not the bench's (other work on "
        "the machine), as a share of all cores; a high value means the row was measured on a busy machine.",
        "- Everything (wrk, gunicorn, the database, the floor processes) shares the same cores, so the "
        "load generator takes CPU from what it measures.",
        "- **service CPU/req against the fixed route's**: the whole endpoint, and the least any service could "
        "spend on this request: the web stack's cost (the fixed route) plus the driver's (the floor's client CPU "
        "for the same operations at the same concurrency). When that sum is already over the target, the target is "
        "out of reach for the service's code; the rest of the endpoint's CPU is the service's own work (token, "
        "body parsing and validation, shaping the answer, and running the driver inside a larger process).",
        "- 409 rows run after the success path, floor, endpoint, floor again, and get slower as the bench goes on, "
        "whatever the concurrency: each refusal writes its audit record outside the transaction, a retryable "
        "write, and secantusd-py scans its table of recent retryable writes (up to 10,000, kept 30 minutes) on "
        "every such write (bench/README.md). The floor's median is the mean of the runs on either side.",
    ]
    parts += ["", CHANGES.read_text().strip()]
    if context.get("profile"):
        parts += ["", "## Profile of the service's workers (py-spy, GIL-holding samples)", "", context["profile"]]
    parts += ["", "## Every run, in order", "", runs_table(results)]
    return "\n".join(parts) + "\n"
