"""Turn the runs' results into the RESULTS.md tables."""
import datetime
import os
import platform

LABELS = {
    ("endpoint", "201"): "add_and_link, links (201)",
    ("floor", "201"): "floor: pymongo only, links",
    ("endpoint", "409"): "add_and_link, already linked (409)",
    ("floor", "409"): "floor: pymongo only, already linked",
    ("ceiling", "201"): "ceiling: POST /bench/fixed",
}
ORDER = list(LABELS)


def percentile(sorted_values, fraction):
    """Return the nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return 0
    rank = max(1, round(fraction * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


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


def find(results, kind, path, concurrency, dataset="empty"):
    """Return the result of one run, or None."""
    for result in results:
        if (result["kind"], result["path"], result["concurrency"], result["dataset"]) == (
                kind, path, concurrency, dataset):
            return result
    return None


def ratio(results, result, against):
    """Return the endpoint's req/s over the floor's or the ceiling's at the same concurrency, for endpoint rows."""
    if result["kind"] != "endpoint":
        return None
    path = result["path"] if against == "floor" else "201"
    other = find(results, against, path, result["concurrency"], result["dataset"])
    return result["rps"] / other["rps"] if other and other["rps"] else None


def main_table(results, concurrencies):
    """Return the markdown table of the empty-database runs."""
    lines = [
        "| conc. | run | req/s | p50 ms | p95 ms | p99 ms | errors | service CPU ms/req | db CPU ms/req "
        "| endpoint/floor | endpoint/ceiling | other procs' CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for concurrency in concurrencies:
        for kind, path in ORDER:
            r = find(results, kind, path, concurrency)
            if r is None:
                continue
            service_cpu = number(r["service_cpu_ms"], 2) + (" †" if kind == "floor" else "")
            lines.append(
                f"| {concurrency} | {LABELS[kind, path]} | {number(r['rps'])} | {number(r['p50_ms'], 2)} "
                f"| {number(r['p95_ms'], 2)} | {number(r['p99_ms'], 2)} | {r['errors']} | {service_cpu} "
                f"| {number(r['db_cpu_ms'], 2)} | {number(ratio(results, r, 'floor'), 2)} "
                f"| {number(ratio(results, r, 'ceiling'), 2)} | {r['other_cpu_pct']:.0f}% |")
    return "\n".join(lines)


def scale_table(results, concurrencies):
    """Return the markdown table comparing the success path on the empty and the scale database."""
    lines = ["| conc. | req/s empty | req/s scale | p50 ms empty | p50 ms scale | p99 ms empty | p99 ms scale "
             "| p99 scale/empty | errors scale |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for concurrency in concurrencies:
        empty = find(results, "endpoint", "201", concurrency)
        scale = find(results, "endpoint", "201", concurrency, "scale")
        if not (empty and scale):
            continue
        growth = scale["p99_ms"] / empty["p99_ms"] if empty["p99_ms"] else None
        lines.append(f"| {concurrency} | {number(empty['rps'])} | {number(scale['rps'])} "
                     f"| {number(empty['p50_ms'], 2)} | {number(scale['p50_ms'], 2)} "
                     f"| {number(empty['p99_ms'], 2)} | {number(scale['p99_ms'], 2)} "
                     f"| {number(growth, 2)} | {scale['errors']} |")
    return "\n".join(lines)


def render(results, context):
    """Return RESULTS.md: the machine, the tables and what each column means."""
    s = context["settings"]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# `make bench`: POST /patients/add_and_link",
        "",
        f"{when}; {os.cpu_count()} cores ({cpu_model()}), {context['memory_gib']:.0f} GiB; "
        f"Python {platform.python_version()}; {context['wrk_version']}; SecantusDB {context['db_version']} "
        f"({'standalone, no transactions' if s.standalone else 'single-node replica set, transactions'}).",
        f"Service: `{context['gunicorn']}` (the flags of `make run`). {s.seconds:g} s per run after a "
        f"{s.warmup:g} s warm-up; wrk with {context['wrk_threads_note']}. The whole bench took "
        f"{context['elapsed_s']:.0f} s.",
        "",
        main_table(results, s.concurrency),
        "",
        f"## Success path with {s.scale_records:,} patients and appointments over {s.scale_doctors:,} doctors",
        "",
        f"Inserted in {context['scale_insert_s']:.0f} s with insert_many, with the service's indexes in place.",
        "",
        scale_table(results, s.concurrency),
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
        "- **other procs' CPU**: CPU used during the run by processes that are not the bench's (other work on "
        "the machine), as a share of all cores; a high value means the row was measured on a busy machine.",
        "- Everything (wrk, gunicorn, the database, the floor processes) shares the same cores, so the "
        "load generator takes CPU from what it measures.",
        "- 409 rows run in the order of the table and get slower as the bench goes on, whatever the concurrency: "
        "each refusal writes its audit record outside the transaction, a retryable write, and secantusd-py "
        "scans its table of recent retryable writes (up to 10,000, kept 30 minutes) on every such write "
        "(bench/README.md).",
    ]
    if context.get("profile"):
        parts += ["", "## Profile of the service's workers (py-spy, GIL-holding samples)", "", context["profile"]]
    return "\n".join(parts) + "\n"
