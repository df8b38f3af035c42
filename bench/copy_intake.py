"""catalog.copy_intake: from a scanned ISBN to every catalogue's candidates, with three catalogues.

Three Z39.50 targets: a Zebra server (tests/zebra_server.py, CNMARC in GBK) asked directly, and
the same server behind two proxies that hold each answer back (DELAYS_S per exchange: a
catalogue across the country, one across the world). The figure is the p95 time of
GET /staff/catalog/?isbn=…&wait=1 — the intake page once every catalogue has answered — on the
real server; the ceiling is the slowest catalogue's own answer time, asked by the same client
code (library.catalog.sources.z3950) from this process in the same run, rounds interleaved. If
the catalogues are really asked in parallel the ratio is near 1 (goal: within 1.2); asked one
after another it would be near the sum of the three over the slowest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx

from bench.harness import ROOT, Measurement, database, server
from library.catalog.sources import z3950
from library.catalog.sources.base import SourceQuery, Target
from tests.zebra_server import missing_zebra, start_zebra

ISBN = "9787544246507"  # in the Zebra's CNMARC, not in the demo catalogue
DELAYS_S = (0.0, 0.05, 0.15)  # added to each answer the catalogue sends (init, search, present)


class DelayingProxy:
    """A TCP proxy in a thread of its own that holds every chunk the server sends for `delay` s."""

    def __init__(self, upstream: int, delay: float) -> None:
        self.upstream, self.delay = upstream, delay
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    writer.write(chunk)
                    await writer.drain()
            writer.close()

        async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            await asyncio.gather(pipe(client_reader, server_writer, 0.0),
                                 pipe(server_reader, client_writer, self.delay))

        async def start() -> None:
            listener = await asyncio.start_server(serve, "127.0.0.1", 0)
            self.port = listener.sockets[0].getsockname()[1]
            ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# Run in the database's environment, as an administrator's form would save them.
_ADD_TARGETS = """
import asyncio, json, sys
from library.catalog.sources.targets import TargetInput, save_target

async def main():
    for name, port in json.loads(sys.argv[1]):
        await save_target(TargetInput(name=name, protocol="z3950", host="127.0.0.1", port=port, database="CNMARC",
                                      syntax="unimarc", charset="gb18030", timeout_seconds=10, enabled=True), "bench")

asyncio.run(main())
"""


def _add_targets(env: dict[str, str], targets: list[tuple[str, int]]) -> None:
    subprocess.run([sys.executable, "-c", _ADD_TARGETS, json.dumps(targets)], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)


def _signed_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    page = client.get("/staff/signin")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    client.post("/staff/signin", data={"username": "librarian", "password": "librarian-demo", "_csrf_token": token,
                                       "next": "/staff/"})
    return client


def _intake(client: httpx.Client, expected: int) -> tuple[float, bool]:
    started = time.perf_counter()
    page = client.get("/staff/catalog/", params={"isbn": ISBN, "wait": "1"})
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, page.status_code == 200 and page.text.count("data-copy-candidate") == expected


def _own_answer(target: Target) -> tuple[float, bool]:
    started = time.perf_counter()
    try:
        found = asyncio.run(z3950.search(target, SourceQuery(isbn=ISBN)))
    except Exception:  # noqa: BLE001 - counted as an error
        found = []
    return (time.perf_counter() - started) * 1000, len(found) == 1


@contextlib.contextmanager
def _catalogues() -> Iterator[list[Target]]:
    folder = Path(tempfile.mkdtemp(prefix="bench-zebra-"))
    zebra = start_zebra(folder)
    proxies = [DelayingProxy(zebra.cnmarc.port, delay) for delay in DELAYS_S if delay]
    try:
        ports = [zebra.cnmarc.port, *[proxy.port for proxy in proxies]]
        yield [replace(zebra.cnmarc, name=f"catalogue {n + 1} (+{int(delay * 1000)} ms)", port=port)
               for n, (port, delay) in enumerate(zip(ports, DELAYS_S))]
    finally:
        for proxy in proxies:
            proxy.stop()
        zebra.stop()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def run(engine: str, rounds: int = 40) -> list[dict]:
    missing = missing_zebra()
    if missing:
        return [{"bench": "catalog.copy_intake", "engine": engine, "skipped": missing}]
    with _catalogues() as targets, database(engine) as env:
        _add_targets(env, [(target.name, target.port) for target in targets])
        with server(env) as base, contextlib.closing(_signed_in(base)) as client:
            slowest = targets[-1]
            for _ in range(3):  # warm: the templates, the first connections
                _intake(client, len(targets))
                _own_answer(slowest)
            page, own = Measurement(0, 0, 0.0), Measurement(0, 0, 0.0)
            started = time.perf_counter()
            for _ in range(rounds):  # interleaved: noise falls on both alike
                for measurement, (elapsed, ok) in ((page, _intake(client, len(targets))), (own, _own_answer(slowest))):
                    measurement.requests += 1
                    measurement.errors += 0 if ok else 1
                    measurement.latencies_ms.append(elapsed)
            page.duration_s = own.duration_s = time.perf_counter() - started
    p95, ceiling = page.percentile(0.95), own.percentile(0.95)
    return [{
        "bench": "catalog.copy_intake", "engine": engine, "value": round(p95, 1), "unit": "ms p95",
        "ceiling": round(ceiling, 1), "ratio": round(p95 / ceiling, 3) if ceiling else None, "goal": 1.2,
        "p50_ms": round(page.percentile(0.5), 1), "p99_ms": round(page.percentile(0.99), 1),
        "ceiling_p50_ms": round(own.percentile(0.5), 1), "targets": len(targets),
        "delays_ms": [int(d * 1000) for d in DELAYS_S], "rounds": rounds,
        "errors": page.errors + own.errors, "python": sys.version.split()[0],
    }]
