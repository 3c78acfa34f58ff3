#!/usr/bin/env python3
"""Helpers for bench/run.sh (standard library only).

  report.py oha FILE                     one oha JSON result -> "rps p50_ms p99_ms requests errors"
  report.py wrk FILE                     one `wrk --latency` text result -> the same five fields
  report.py table TSV [META] [BASELINE]  runs.tsv -> markdown table of medians, ratios against
                                         the BASELINE target (default: direct)
  report.py upstream URL                 chat requests a mock has received (its /mock/stats), or "-"
  report.py cache TSV [META]             cache-runs.tsv (cache-load JSON per run) -> markdown table
"""

import json
import re
import statistics
import sys
import urllib.request
from collections import OrderedDict


def oha(path):
    with open(path) as f:
        data = json.load(f)
    codes = {int(code): n for code, n in (data.get("statusCodeDistribution") or {}).items()}
    transport_errors = sum((data.get("errorDistribution") or {}).values())
    requests = sum(codes.values())
    non_2xx = sum(n for code, n in codes.items() if not 200 <= code < 300)
    percentiles = data.get("latencyPercentiles") or {}
    # oha's own rate counts failed requests too; report only what completed.
    rps = requests / data["summary"]["total"] if data["summary"].get("total") else 0.0
    p50 = (percentiles.get("p50") or 0.0) * 1000
    p99 = (percentiles.get("p99") or 0.0) * 1000
    print(f"{rps:.1f} {p50:.3f} {p99:.3f} {requests} {non_2xx + transport_errors}")


def wrk(path):
    text = open(path).read()

    def duration_ms(value, unit):
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    latency = {
        m.group(1): duration_ms(m.group(2), m.group(3))
        for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    }
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    print(f"{rps:.1f} {latency.get('50', 0.0):.3f} {latency.get('99', 0.0):.3f} {requests} {errors}")


def fmt(value, digits=1):
    return "–" if value is None else f"{value:,.{digits}f}"


def upstream(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            print(int(json.load(response)["requests"]))
    except (OSError, ValueError, KeyError, TypeError):
        print("-")


def table(tsv, meta=None, baseline="direct"):
    groups = OrderedDict()
    with open(tsv) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(header, line.rstrip("\n").split("\t")))
            requests, errors = float(row["requests"] or 0), float(row["errors"] or 0)
            row["error_pct"] = f"{100 * errors / requests}" if requests else "-"
            groups.setdefault((row["scenario"], row["target"]), []).append(row)

    def median(rows, key):
        values = [float(r[key]) for r in rows if r.get(key) not in (None, "", "-")]
        return statistics.median(values) if values else None

    med = {
        key: {
            k: median(rows, k)
            for k in (
                "rps",
                "p50_ms",
                "p99_ms",
                "requests",
                "errors",
                "cpu_us_per_req",
                "peak_rss_kib",
                "upstream_per_req",
                "error_pct",
            )
        }
        | {"runs": len(rows)}
        for key, rows in groups.items()
    }
    out = []
    if meta:
        out.append(open(meta).read().rstrip("\n"))
        out.append("")
    out.append(
        "| scenario | target | runs | req/s | p50 ms | p99 ms | errors | error % | upstream/req "
        f"| CPU µs/req | peak RSS MiB | req/s ×{baseline} | p50 ×{baseline} | p99 ×{baseline} | +p50 ms |"
    )
    out.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for (scenario, target), m in med.items():
        direct = med.get((scenario, baseline)) if target != baseline else None

        def ratio(key):
            if not direct or not direct[key] or m[key] is None:
                return "–"
            return f"{m[key] / direct[key]:.2f}"

        added = None if not direct or direct["p50_ms"] is None else m["p50_ms"] - direct["p50_ms"]
        rss = None if m["peak_rss_kib"] is None else m["peak_rss_kib"] / 1024
        out.append(
            f"| {scenario} | {target} | {m['runs']} | {fmt(m['rps'])} | {fmt(m['p50_ms'], 3)} "
            f"| {fmt(m['p99_ms'], 3)} | {fmt(m['errors'], 0)} | {fmt(m['error_pct'], 2)} "
            f"| {fmt(m['upstream_per_req'], 3)} | {fmt(m['cpu_us_per_req'])} | {fmt(rss)} "
            f"| {ratio('rps')} | {ratio('p50_ms')} | {ratio('p99_ms')} | {fmt(added, 3)} |"
        )
    print("\n".join(out))


def cache(path, meta=None):
    groups = OrderedDict()
    with open(path) as f:
        next(f)
        for line in f:
            backend, mode, load, _run, result = line.rstrip("\n").split("\t", 4)
            groups.setdefault((backend, mode, load), []).append(json.loads(result))

    def med(runs, pick):
        values = [v for v in (pick(r) for r in runs) if v is not None]
        return statistics.median(values) if values else None

    def cls(name, field):
        def pick(r):
            c = r["by_outcome"].get(name)
            return c[field] if c else None
        return pick

    if meta:
        print(open(meta).read())
    print("| backend | scenario | req/s | hit rate | hit p50 ms | hit p99 ms | miss p50 ms | miss p99 ms | all p99 ms | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (backend, mode, load), runs in groups.items():
        # With the cache off no answer carries the header: every request is a miss.
        miss = "none" if backend == "off" else "miss"
        hit_rate = med(runs, lambda r: r["hit_rate"])
        print(
            f"| {backend} | {mode}/{load} | {fmt(med(runs, lambda r: r['rps']))} "
            f"| {fmt(hit_rate * 100 if hit_rate is not None else None)}% "
            f"| {fmt(med(runs, cls('hit', 'p50_ms')), 2)} | {fmt(med(runs, cls('hit', 'p99_ms')), 2)} "
            f"| {fmt(med(runs, cls(miss, 'p50_ms')), 2)} | {fmt(med(runs, cls(miss, 'p99_ms')), 2)} "
            f"| {fmt(med(runs, lambda r: r['p99_ms']), 2)} | {fmt(med(runs, lambda r: r['errors']), 0)} |"
        )


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"oha": oha, "wrk": wrk, "table": table, "upstream": upstream, "cache": cache}[command](*args)
