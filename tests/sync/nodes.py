"""Two real nodes on loopback: processes, databases, and ways to look inside them.

A node is a data folder, a database (a SQLite file, or a PostgreSQL database when the
suite runs on PostgreSQL and the node is the central one) and the settings of the
`library` command. Its server is the real one (`library serve`) in a child process, so it
can be stopped, killed with SIGKILL and started again on the same port. The test process
never uses Piccolo's engine for a node: it reads a node's tables with sqlite3 or asyncpg
directly, and changes a node's data the way people do (its HTTP API, its pages, the
`library` command), or in a child process with the node's settings (`in_node`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid as uuid_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import SERVER_START_SECONDS, admin_execute

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- PostgreSQL administration --------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def pg_admin(admin_url: str, *statements: str) -> None:
    asyncio.run(admin_execute(admin_url, *statements))


def pg_drop(admin_url: str, name: str) -> None:
    pg_admin(admin_url, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
             f'DROP DATABASE IF EXISTS "{name}"')


def _as_sqlite_gives(value: Any) -> Any:
    """UUIDs, dates and times as text, as SQLite stores them, so the two nodes' rows compare."""
    if isinstance(value, (uuid_module.UUID, dt.date, dt.time)):  # datetime is a date
        return str(value)
    return value


# --- a node ---------------------------------------------------------------------------------


class CommandFailed(AssertionError):
    def __init__(self, args: list[str], done: subprocess.CompletedProcess) -> None:
        super().__init__(f"{' '.join(args)} exited {done.returncode}\nstdout: {done.stdout[-2000:]}\n"
                         f"stderr: {done.stderr[-3000:]}")
        self.done = done


@dataclass
class Node:
    name: str
    data_dir: Path
    database_url: str
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    # -- settings and commands --

    @property
    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("LIBRARY_")}
        return {**inherited, "PICCOLO_CONF": "piccolo_conf", "LIBRARY_DATA_DIR": str(self.data_dir),
                "LIBRARY_DATABASE_URL": self.database_url, "LIBRARY_METADATA_PROVIDERS": "local",
                "LIBRARY_NOTICE_INTERVAL_SECONDS": "0", "LIBRARY_SYNC_INTERVAL_SECONDS": "0",
                # a round that meets a dead link gives up after 0.75 s of pauses instead of 7.5 s
                "LIBRARY_SYNC_RETRY_MS": "50",
                "LIBRARY_SECRET_KEY": f"sync-test-{self.name}-secret-key-of-enough-length", **self.settings}

    @property
    def engine(self) -> str:
        return "sqlite" if self.database_url.startswith("sqlite:///") else "postgres"

    @property
    def sqlite_path(self) -> Path:
        return Path(self.database_url[len("sqlite:///"):])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def library(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess:
        """The `library` command with this node's settings."""
        command = [PYTHON, "-m", "library.cli", *args]
        done = subprocess.run(command, env=self.env, cwd=ROOT, input=input, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise CommandFailed(["library", *args], done)
        return done

    def in_node(self, function: str, *args: Any, timeout: float = 120) -> Any:
        """`tests.sync.worker.<function>(*args)` in a child process with this node's settings."""
        code = ("import asyncio, json, sys; from tests.sync import worker; "
                f"print(json.dumps(asyncio.run(worker.run(worker.{function}, *json.loads(sys.argv[1])))))")
        done = subprocess.run([PYTHON, "-c", code, json.dumps(args)], env=self.env, cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise CommandFailed([function], done)
        return json.loads(done.stdout.strip().splitlines()[-1])

    # -- the server --

    def start(self, timeout: float = SERVER_START_SECONDS) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.name} is already running"
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - the child keeps it open
        self.process = subprocess.Popen(
            [PYTHON, "-m", "library.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start:\n{self.server_log()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """A clean stop (SIGTERM: uvicorn finishes what it is doing)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no answer to what is in flight."""
        assert self.process is not None and self.process.poll() is None, f"{self.name} is not running"
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def server_log(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- reading the database (no Piccolo: this process's engine is the suite's own) --

    def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Rows as dicts; `?` placeholders on both engines; UUIDs as text."""
        if self.engine == "sqlite":
            connection = sqlite3.connect(self.sqlite_path, timeout=30)
            try:
                connection.row_factory = sqlite3.Row
                return [dict(row) for row in connection.execute(sql, args).fetchall()]
            finally:
                connection.close()
        import asyncpg

        counter = iter(range(1, 1000))
        pg_sql = re.sub(r"\?", lambda _: f"${next(counter)}", sql)

        async def fetch() -> list[dict[str, Any]]:
            connection = await asyncpg.connect(self.database_url)
            try:
                return [{k: _as_sqlite_gives(v) for k, v in row.items()}
                        for row in await connection.fetch(pg_sql, *args)]
            finally:
                await connection.close()

        return asyncio.run(fetch())

    def value(self, sql: str, *args: Any) -> Any:
        found = self.rows(sql, *args)
        return next(iter(found[0].values())) if found else None

    def count(self, table: str, where: str = "1 = 1", *args: Any) -> int:
        return int(self.value(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", *args))

    def execute(self, sql: str, *args: Any) -> None:
        if self.engine == "sqlite":
            connection = sqlite3.connect(self.sqlite_path, timeout=30)
            try:
                with connection:
                    connection.execute(sql, args)
            finally:
                connection.close()
            return
        import asyncpg

        counter = iter(range(1, 1000))
        pg_sql = re.sub(r"\?", lambda _: f"${next(counter)}", sql)

        async def run() -> None:
            connection = await asyncpg.connect(self.database_url)
            try:
                await connection.execute(pg_sql, *args)
            finally:
                await connection.close()

        asyncio.run(run())

    def state(self) -> dict[str, Any]:
        return self.rows("SELECT * FROM sync_state WHERE id = 1")[0]

    # -- people at the node --

    def staff(self, username: str = "admin", password: str = "admin-demo-pass") -> StaffClient:
        return StaffClient(self.url, username, password)


class StaffClient:
    """A member of staff signed in to a node over HTTP (session cookie + CSRF header), as a browser would be."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30, headers={"Accept-Language": "en"})
        self.http.get("/")
        signed = self.post("/api/session", json={"kind": "staff", "login": username, "secret": password})
        assert signed.status_code == 201, signed.text

    def _csrf(self) -> dict[str, str]:
        return {"X-CSRFToken": self.http.cookies["library_csrf"]}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, headers=self._csrf(), **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.put(path, headers=self._csrf(), **kwargs)

    def ok(self, response: httpx.Response, *statuses: int) -> Any:
        assert response.status_code in (statuses or (200, 201, 303)), \
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text[:2000]}"
        return response.json() if "json" in response.headers.get("content-type", "") else response.text

    # the desk

    def checkout(self, branch: str, card: str, barcode: str, **extra: Any) -> dict[str, Any]:
        return self.ok(self.post("/api/loans/checkout", json={"branch": branch, "card_number": card,
                                                               "barcode": barcode, **extra}))

    def checkin(self, branch: str, barcode: str) -> dict[str, Any]:
        return self.ok(self.post("/api/loans/checkin", json={"branch": branch, "barcode": barcode}))

    def renew(self, loan: str, comment: str | None = "renewed at the desk") -> dict[str, Any]:
        outcomes = self.ok(self.post("/api/loans/renew", json={"loans": [loan], "override_comment": comment}))
        assert outcomes[0]["renewed"], outcomes
        return outcomes[0]

    def place_hold(self, record: str, pickup: str, card: str) -> dict[str, Any]:
        return self.ok(self.post("/api/holds", json={"record": record, "pickup_branch": pickup, "card_number": card}))

    def new_record(self, **values: Any) -> dict[str, Any]:
        return self.ok(self.post("/api/records", json=values))

    def add_copies(self, record: str, branch: str, barcodes: list[str]) -> list[str]:
        return self.ok(self.post(f"/api/records/{record}/items", json={"branch": branch, "barcodes": barcodes,
                                                                        "count": len(barcodes)}))

    def register(self, **form: str) -> None:
        response = self.post("/staff/patrons/new", data=form, follow_redirects=False)
        assert response.status_code == 303, response.text[:3000]

    def close(self) -> None:
        self.http.close()


# --- the branch's sync round ---------------------------------------------------------------


def sync(branch: Node, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    """`library sync` on the branch node: one round, in its own process, as staff run it."""
    return branch.library("sync", check=check, timeout=timeout)


def start_sync(branch: Node) -> subprocess.Popen:
    """`library sync` in the background (to do something to the central node while it runs)."""
    return subprocess.Popen([PYTHON, "-m", "library.cli", "sync"], env=branch.env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# --- a proxy that drops the link in the middle of an answer ------------------------------------


class CuttingProxy:
    """A TCP proxy in front of the central node that cuts the connection mid-response.

    When a request on a connection starts with `cut_on` (e.g. b"POST /api/sync/uploads"),
    the proxy lets `after_bytes` bytes of the answer through and then closes both sides —
    the central node has done the work, the branch never reads the whole answer. It does
    that `times` times, then forwards faithfully.
    """

    def __init__(self, target_port: int, cut_on: bytes, after_bytes: int = 40, times: int = 1) -> None:
        self.target_port = target_port
        self.cut_on = cut_on
        self.after_bytes = after_bytes
        self.times = times
        self.cuts = 0
        self.requests: list[bytes] = []
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sent(self, request_start: bytes) -> int:
        """How many requests starting with `request_start` went through (cut or not)."""
        return sum(line.startswith(request_start) for line in self.requests)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: Any) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        armed = asyncio.Event()

        async def upstream() -> None:
            while data := await client_reader.read(65536):
                for line in re.findall(rb"(?:GET|POST|PUT|DELETE) [^ ]+", data):
                    self.requests.append(line)
                if self.cuts < self.times and data.startswith(self.cut_on):
                    self.cuts += 1
                    armed.set()
                server_writer.write(data)
                await server_writer.drain()
            server_writer.close()

        async def downstream() -> None:
            while data := await server_reader.read(65536):
                if armed.is_set():  # the answer to the request to cut: a few bytes of it, then nothing
                    client_writer.write(data[: self.after_bytes])
                    await client_writer.drain()
                    raise ConnectionAbortedError("cut")
                client_writer.write(data)
                await client_writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            for writer in (client_writer, server_writer):
                writer.transport.abort()


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (its WAL folded in first)."""
    connection = sqlite3.connect(source)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    shutil.copyfile(source, target)


def new_uuid() -> str:
    return str(uuid_module.uuid4())


def token() -> str:
    return secrets.token_hex(4)
