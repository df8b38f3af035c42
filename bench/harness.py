"""Start the real service as a user would, drive it over HTTP, measure.

Every figure is printed beside a ceiling measured in the same run on the same
machine (by default a plain JSON endpoint of the same app), so the ratio still
means something on a noisy 2-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Measurement:
    requests: int
    errors: int
    duration_s: float
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# A request factory gets a session and the base URL and performs ONE request,
# returning True when the answer was the expected one.
RequestFn = Callable[[aiohttp.ClientSession, str], Awaitable[bool]]


def get_json(path: str, expect_status: int = 200) -> RequestFn:
    async def request(session: aiohttp.ClientSession, base: str) -> bool:
        async with session.get(base + path) as response:
            await response.read()
            return response.status == expect_status

    return request


async def drive(base: str, request: RequestFn, concurrency: int, duration_s: float, warmup_s: float = 1.0) -> Measurement:
    """`concurrency` clients, each with keep-alive, sending one request after another."""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker(deadline: float, record: Measurement | None) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    ok = await request(session, base)
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                if record is not None:
                    record.requests += 1
                    record.errors += 0 if ok else 1
                    record.latencies_ms.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker(time.perf_counter() + warmup_s, None) for _ in range(concurrency)))
        result = Measurement(0, 0, 0.0)
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + duration_s, result) for _ in range(concurrency)))
        result.duration_s = time.perf_counter() - started
        return result


def in_child(env: dict[str, str], module: str, code: str) -> dict:
    """Run `code`, an awaitable expression over `module` (imported as `bench`), in a second process
    with the bench database's settings; its answer, as JSON."""
    script = ("import asyncio, json, sys\n"
              f"import {module} as bench\n"
              f"print(json.dumps(asyncio.run({code}), default=str))\n")
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


async def in_flight(count: int, limit: int, attempt: Callable[[int], Awaitable[bool]]) -> Measurement:
    """`attempt(n)` for every n below `count`, `limit` of them at a time, each timed; one that
    answers False, or fails to reach the server, counts as an error."""
    gate = asyncio.Semaphore(limit)
    result = Measurement(0, 0, 0.0)

    async def one(n: int) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                ok = await attempt(n)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            result.requests += 1
            result.errors += 0 if ok else 1
            result.latencies_ms.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    result.duration_s = time.perf_counter() - started
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def database(engine: str) -> Iterator[dict[str, str]]:
    """A fresh database with the schema and the demo data, made with the `library` command."""
    data_dir = tempfile.mkdtemp(prefix="library-bench-")
    env = {**os.environ, "LIBRARY_DATA_DIR": data_dir, "LIBRARY_SECRET_KEY": secrets.token_urlsafe(40)}
    created = None
    admin = os.environ.get("LIBRARY_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN)
    if engine == "postgres":
        import asyncpg

        created = f"library_bench_{secrets.token_hex(4)}"

        async def execute(*statements: str) -> None:
            connection = await asyncpg.connect(admin)
            try:
                for statement in statements:
                    await connection.execute(statement)
            finally:
                await connection.close()

        asyncio.run(execute(f'CREATE DATABASE "{created}"'))
        env["LIBRARY_DATABASE_URL"] = admin.rsplit("/", 1)[0] + f"/{created}"
    else:
        env["LIBRARY_DATABASE_URL"] = f"sqlite:///{data_dir}/bench.sqlite3"
    library = [sys.executable, "-m", "library.cli"]
    try:
        subprocess.run([*library, "migrate"], env=env, check=True, cwd=ROOT, capture_output=True)
        subprocess.run([*library, "demo"], env=env, check=True, cwd=ROOT, capture_output=True)
        yield env
    finally:
        if created:
            asyncio.run(execute(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{created}'",
                f'DROP DATABASE IF EXISTS "{created}"'))
        subprocess.run(["rm", "-rf", data_dir], check=False)


@contextlib.contextmanager
def listening(command: list[str], env: dict[str, str], port: int, what: str) -> Iterator[None]:
    """A server process started with `command`, once it accepts connections on `port`; stopped
    (terminated, killed if need be) on the way out. Its log goes to a file, as to journald: a pipe
    nobody reads would stop a server that logs every request."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"{what} did not start: {log.read()[-2000:].decode()}") from None
                    time.sleep(0.1)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def server(env: dict[str, str], workers: int = 1) -> Iterator[str]:
    """uvicorn, the production ASGI server `library serve` runs, in its own process."""
    port = free_port()
    with listening([sys.executable, "-m", "uvicorn", "library.asgi:app", "--host", "127.0.0.1", "--port", str(port),
                    "--workers", str(workers), "--no-access-log", "--log-level", "warning"], env, port, "server"):
        yield f"http://127.0.0.1:{port}"


def figure(bench: str, engine: str, measured: Measurement, ceiling: Measurement, concurrency: int) -> dict:
    return {
        "bench": bench,
        "engine": engine,
        "value": round(measured.rate, 1),
        "unit": "req/s",
        "ceiling": round(ceiling.rate, 1),
        "ratio": round(measured.rate / ceiling.rate, 3) if ceiling.rate else None,
        "p50_ms": round(measured.percentile(0.50), 2),
        "p95_ms": round(measured.percentile(0.95), 2),
        "p99_ms": round(measured.percentile(0.99), 2),
        "errors": measured.errors,
        "requests": measured.requests,
        "ceiling_p50_ms": round(ceiling.percentile(0.50), 2),
        "concurrency": concurrency,
        "duration_s": round(measured.duration_s, 2),
        "python": sys.version.split()[0],
        "mean_ms": round(statistics.fmean(measured.latencies_ms), 2) if measured.latencies_ms else None,
    }
