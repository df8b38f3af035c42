"""ops.request_path, ops.observe_cost: what observing every request costs the cheapest one (issue 24,
part 4).

ops.observe_cost: microseconds per request spent in the one ASGI wrapper (request id; with metrics),
called directly, beside the same calls of a do-nothing app: the share without a server's noise.

ops.request_path:
GET /api/ping (no database) served by uvicorn, as the bench's other servers are, five ways, each
in a server process of its own, in alternating rounds so that a drift of the machine's load falls
on all of them alike:
- `bare`: a Litestar app with only that route — the ceiling (issue 20's pair);
- `service`: the library as shipped (request id on every answer, metrics off);
- `metrics`: the same with LIBRARY_METRICS_TOKEN (each request counted and timed by route);
- `metrics_access_text`, `metrics_access_json`: and uvicorn's access log on, as `library serve` has
  it, a text line a request, then a JSON line (LIBRARY_LOG_FORMAT=json).
One JSON line per variant: its rate, the bare app's, the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import time
from collections.abc import Iterator

from litestar import Litestar, get

from bench.harness import Measurement, database, drive, figure, free_port, get_json, listening
from library.web.metrics import record_request
from library.web.request_id import observe_requests

ROUNDS = 3
TOKEN = "bench-" + secrets.token_hex(24)
VARIANTS = {
    "bare": ({}, "bench.ops:bare", False),
    "service": ({}, "library.asgi:app", False),
    "metrics": ({"LIBRARY_METRICS_TOKEN": TOKEN}, "library.asgi:app", False),
    # What `library serve` runs: uvicorn's access log on, a line a request (text, then JSON).
    "metrics_access_text": ({"LIBRARY_METRICS_TOKEN": TOKEN}, "library.asgi:app", True),
    "metrics_access_json": ({"LIBRARY_METRICS_TOKEN": TOKEN, "LIBRARY_LOG_FORMAT": "json"}, "library.asgi:app", True),
}


@get("/api/ping")
async def _ping() -> dict[str, str]:
    return {"status": "ok"}


# The ceiling: Litestar with nothing of the library's, `uvicorn bench.ops:bare`.
bare = Litestar([_ping])


@contextlib.contextmanager
def served(env: dict[str, str], target: str, access_log: bool) -> Iterator[str]:
    """uvicorn as harness.server starts it, with or without its access log."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "info" if access_log else "warning"]
    if not access_log:
        command.append("--no-access-log")
    with listening(command, env, port, target):
        yield f"http://127.0.0.1:{port}"


def request_path(engine: str, duration: float, concurrency: int) -> Iterator[dict]:
    totals = {name: Measurement(0, 0, 0.0) for name in VARIANTS}
    with database(engine) as env:
        for _ in range(ROUNDS):
            for name, (variables, target, access_log) in VARIANTS.items():
                with served({**env, **variables}, target, access_log) as base:
                    measured = asyncio.run(drive(base, get_json("/api/ping"), concurrency, duration / ROUNDS))
                total = totals[name]
                total.requests += measured.requests
                total.errors += measured.errors
                total.duration_s += measured.duration_s
                total.latencies_ms += measured.latencies_ms
    for name in VARIANTS:
        if name == "bare":
            continue
        figures = figure(f"ops.request_path.{name}", engine, totals[name], totals["bare"], concurrency)
        figures["ceiling_is"] = "GET /api/ping of a bare Litestar app, same uvicorn, same load, alternating rounds"
        yield figures


async def _calls(app, count: int) -> float:
    """Seconds for `count` requests through `app` with nothing around it: no server, no socket."""
    scope = {"type": "http", "method": "GET", "path": "/api/ping", "headers": [(b"host", b"bench")],
             "path_template": "/api/ping"}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        return None

    started = time.perf_counter()
    for _ in range(count):
        await app(dict(scope), receive, send)
    return time.perf_counter() - started


def wrapper_cost(count: int = 200_000) -> Iterator[dict]:
    """The request path's own share, without the noise of a server and a load generator on the same
    cores: microseconds a request spends in `observe_requests` (the id alone, and with the metrics),
    over a do-nothing ASGI app answering 200 with one header."""
    async def answer(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"status":"ok"}'})

    async def measure() -> dict[str, float]:
        timings = {"bare": [], "request_id": [], "request_id_metrics": []}
        apps = {"bare": answer, "request_id": observe_requests(answer),
                "request_id_metrics": observe_requests(answer, record_request)}
        for _ in range(5):  # alternating, the best of five: the machine's other work falls on all alike
            for name, app in apps.items():
                timings[name].append(await _calls(app, count // 5))
        return {name: min(values) / (count // 5) * 1e6 for name, values in timings.items()}

    micro = asyncio.run(measure())
    for name in ("request_id", "request_id_metrics"):
        yield {"bench": f"ops.observe_cost.{name}", "value": round(micro[name] - micro["bare"], 2), "unit": "µs/request",
               "ceiling": round(micro["bare"], 2), "ceiling_is": "the same calls of a do-nothing ASGI app, µs",
               "python": sys.version.split()[0]}


def main() -> None:
    """`python -m bench.ops [--engine sqlite|postgres] [--duration S] [--concurrency N]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds measured per variant (default 12)")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    for figures in wrapper_cost():
        print(json.dumps(figures, ensure_ascii=False), flush=True)
    for figures in request_path(args.engine, args.duration, args.concurrency):
        print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
