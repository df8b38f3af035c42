"""python -m bench [NAME ...] — run benchmarks against the real server, print JSON lines.

Each benchmark starts a fresh database (migrated, demo data loaded by the `library`
command), starts uvicorn in a second process, warms up, then measures its endpoint
and the ceiling endpoint of the same app in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import sys
from dataclasses import dataclass

from bench.harness import RequestFn, database, drive, figure, get_json, server


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    request: RequestFn
    ceiling: RequestFn


BENCHMARKS = {
    b.name: b
    for b in [
        Benchmark("system.health", "GET /health (one database round trip) against GET /api/ping",
                  get_json("/health"), get_json("/api/ping")),
        Benchmark("branches.next_open_day", "GET /api/branches/ZX/next-open-day (calendar rules over a year "
                  "of holidays) against GET /api/ping",
                  get_json("/api/branches/ZX/next-open-day?on_or_after=2026-10-01"), get_json("/api/ping")),
    ]
}


# Benchmarks that need their own data set and measure their own ceiling.
CUSTOM = {
    "catalog.search": ("GET /api/records over 200,000 generated records / 400,000 copies, p95 latency, against "
                       "the bare full-text query on the same database", "catalog:search"),
    "catalog.marc_import": ("`library catalog import` of a 50,000-record MARC21 file, records/s, against pymarc "
                            "alone reading it", "catalog:marc_import"),
    "catalog.sru_search": ("GET /sru searchRetrieve (CQL, 10 MARCXML records) over 200,000 generated records, p95, "
                           "against the bare full-text query and the answer's own statements run bare", "sru:run"),
    "catalog.copy_intake": ("GET /staff/catalog/?isbn=… until every one of three Z39.50 catalogues (a Zebra, and "
                            "the same behind two delaying proxies) has answered, p95, against the slowest catalogue's "
                            "own answer time in the same run (goal: within 1.2×)", "copy_intake:run"),
    "loans.checkout_cycle": ("checkout → checkin cycles through POST /api/loans/* by concurrent clients, cycles/s, "
                             "against the same cycles by the service functions with no HTTP; and a reader with 200 "
                             "open loans against one with none", "loans:checkout_cycle"),
    "activities.register": ("1,000 POST /api/activities/sessions/{id}/registrations at one 30-seat session, 100 in "
                            "flight, against the same registrations by the service functions; checks 30 confirmed "
                            "and the waitlist in arrival order", "activities:register"),
    "activities.register_programme": ("1,000 POST /api/activities/series/{id}/registrations (a child for an "
                                      "eight-session series, 30 seats), 100 in flight, against the same "
                                      "registrations by the service functions; checks 30 in every session and one "
                                      "arrival order (goal: ratio >= 0.5)", "activities_programme:register_programme"),
    "selfcheck.sip2_cycle": ("checkout → checkin cycles over SIP2 from concurrent self-check machines (`library "
                             "sip2`), cycles/s, against the same cycles by the service functions with no network "
                             "(goal: ratio ≥ 0.7, p99 < 100 ms on SQLite)", "selfcheck:sip2_cycle"),
    "sync.initial": ("initial sync of 100,000 copies with their records from a real central server to an empty "
                     "SQLite branch, copies/s, against a bare bulk insert of the same rows (target ≤ 3×); then "
                     "1,000 changes each way, one round each (target < 5 s)", "sync:run"),
    "sync.network": ("a central node on PostgreSQL serving --branches simulated branches at once over HTTP (initial "
                     "pull, a day's checkouts and returns uploaded, incremental pull): sync req/s against GET "
                     "/api/ping, feed-page p99 against the same pages' bare SQL, upload p50/p99; checks every "
                     "uploaded loan is there. PostgreSQL only, whatever --engine", "sync_network:run"),
    "ops.backup": ("`library backup` and `library restore` of a node with --records records (default 200,000), "
                   "twice as many copies and a year of loans while 16 clients lend and return on a real server: "
                   "seconds and rows/s against SQLite's bare online backup API or a bare pg_dump in the same run, "
                   "and checkout cycles/s during backups against without (goal: 0.8x)", "ops_backup:run"),
    "reports.dashboard": ("the network's year of statistics (/staff/reports/) over generated history, p95, against "
                          "the bare loan aggregate of the same numbers (issue 22: 2,000,000 loans, 20,000 sessions; "
                          "--records: loans)", "reports:run"),
    "ops.request_path": ("GET /api/ping through the service (request ids, and with /metrics on) against a bare "
                         "Litestar app under the same server and load", "ops:request_path"),
    "ops.observe_cost": ("the request-id and metrics wrapper alone, microseconds a request, against a do-nothing "
                         "ASGI app (no server, no engine)", "ops:wrapper_cost"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="benchmarks:\n" + "\n".join(
                                         [f"  {b.name:28} {b.description}" for b in BENCHMARKS.values()]
                                         + [f"  {name:28} {text}" for name, (text, _) in CUSTOM.items()]))
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per figure (default 8)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--output", help="also append the JSON lines to this file")
    parser.add_argument("--records", type=int, help="catalogue size for catalog.* and sync.* (default: 200000 / 50000 / 100000)")
    parser.add_argument("--branches", type=int, default=50, help="simulated branch nodes for sync.network (default 50)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes for sync.network (default 1)")
    parser.add_argument("--postgres-url", help="PostgreSQL admin URL sync.network makes its database on (default: "
                        "LIBRARY_BENCH_POSTGRES_URL, else postgresql://postgres@127.0.0.1:5432/test)")
    args = parser.parse_args(argv)

    unknown = [name for name in args.names if name not in BENCHMARKS and name not in CUSTOM]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    names = args.names or [*BENCHMARKS, *CUSTOM]
    chosen = [BENCHMARKS[name] for name in names if name in BENCHMARKS]
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]

    def emit(figures: dict) -> None:
        line = json.dumps(figures, ensure_ascii=False, default=str)
        print(line, flush=True)
        if args.output:
            with open(args.output, "a") as handle:
                handle.write(line + "\n")

    for engine in engines:
        if chosen:
            with database(engine) as env, server(env) as base:
                for bench in chosen:
                    ceiling = asyncio.run(drive(base, bench.ceiling, args.concurrency, args.duration))
                    measured = asyncio.run(drive(base, bench.request, args.concurrency, args.duration))
                    emit(figure(bench.name, engine, measured, ceiling, args.concurrency))
        for name in names:
            if name not in CUSTOM:
                continue
            module, _, function = CUSTOM[name][1].rpartition(":")
            run = getattr(importlib.import_module(f"bench.{module}"), function)
            # Each benchmark takes what it uses of the command line, by its parameters' names.
            offered = {"engine": engine, "duration": args.duration, "concurrency": args.concurrency,
                       "records": args.records, "branches": args.branches, "workers": args.workers,
                       "postgres_url": args.postgres_url}
            parameters = inspect.signature(run).parameters
            if "engine" not in parameters and engine != engines[-1]:
                continue  # an engine of its own (sync.network: PostgreSQL): once, whatever --engine
            for figures in run(**{key: value for key, value in offered.items()
                                  if key in parameters and value is not None}):
                emit(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
