"""Helpers shared by the tests that use the database or the HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

# How long a server started by a test may take to answer before the test calls it broken. Only an
# upper bound (a healthy start answers in a second or two): generous, because two test workers,
# their servers and the browser share the machine's cores (`make test` runs pytest-xdist).
SERVER_START_SECONDS = float(os.environ.get("LIBRARY_TEST_SERVER_START_SECONDS", "120"))

ROOT = Path(__file__).resolve().parents[1]


async def admin_execute(url: str, *statements: str) -> None:
    """Statements on a PostgreSQL server over a connection of their own, outside any transaction
    (CREATE DATABASE and DROP DATABASE cannot run inside one)."""
    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def drop_database(url: str, name: str) -> None:
    """A test's own PostgreSQL database gone, whoever is still connected to it."""
    await admin_execute(url, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
                        f'DROP DATABASE IF EXISTS "{name}"')


async def migrate() -> None:
    from piccolo.apps.migrations.commands.forwards import run_forwards

    from library.db import prepare_sqlite

    await prepare_sqlite()
    with contextlib.redirect_stdout(io.StringIO()):
        result = await run_forwards(app_name="all")
    assert result.success, result.message


def all_tables():
    from piccolo.conf.apps import Finder

    from library.db import engine

    tables = Finder().get_table_classes()
    return engine(), tables


async def empty_all_tables() -> None:
    """Every table emptied, children before parents: each test starts from nothing."""
    from piccolo.table import sort_table_classes

    db, tables = all_tables()
    ordered = list(reversed(sort_table_classes(tables)))
    async with db.transaction():
        for table in ordered:
            await table.delete(force=True)


@contextlib.asynccontextmanager
async def connection_pool(max_size: int = 20) -> AsyncIterator[None]:
    """On PostgreSQL, a pool as the server runs with, for tests whose requests arrive at once;
    SQLite has none."""
    from piccolo.engine.postgres import PostgresEngine

    from library.db import engine

    db = engine()
    if isinstance(db, PostgresEngine):
        await db.start_connection_pool(min_size=2, max_size=max_size)
        try:
            yield
        finally:
            await db.close_connection_pool()
    else:
        yield


def librarian_of(*branch_ids: int):
    """A librarian of the given branches (a library.accounts.principal.Principal)."""
    from library.accounts.principal import Principal

    return Principal(kind="staff", id=1, uuid="u", name="馆员", language="zh_CN", role="librarian",
                     branch_ids=frozenset(branch_ids))


async def branch_id(code: str) -> int:
    from library.branches.tables import Branch

    return (await Branch.select(Branch.id).where(Branch.code == code).first())["id"]


# --- a node's server in a process of its own (tests/server, tests/sync) ------------------------


@contextlib.contextmanager
def node_database(pg_prefix: str, sqlite_file: Path) -> Iterator[str]:
    """The URL of a fresh database for a node: a PostgreSQL database `<pg_prefix>_<random>` when
    the suite runs on PostgreSQL (LIBRARY_TEST_DATABASE_URL; dropped on the way out), else
    `sqlite_file`."""
    admin_url = os.environ.get("LIBRARY_TEST_DATABASE_URL")
    if not admin_url:
        yield f"sqlite:///{sqlite_file}"
        return
    name = f"{pg_prefix}_{secrets.token_hex(4)}"
    asyncio.run(admin_execute(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        asyncio.run(drop_database(admin_url, name))


@contextlib.contextmanager
def node_folder(name: str, sqlite_name: str = "library.sqlite3") -> Iterator[tuple[Path, str]]:
    """A data folder `library-<name>-...` and a fresh database (node_database, `test_<name>`) for
    a node; both gone on the way out."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"library-{name}-"))
    try:
        with node_database(f"test_{name}", data_dir / sqlite_name) as url:
            yield data_dir, url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def serve_with_workers(node, workers: int, timeout: float,
                       started: Callable[[str], bool] = lambda log: True) -> None:
    """`library serve --workers N` for `node` (a tests.sync.nodes.Node), its output in the node's
    server.log, returning once every worker has logged its start-up (answering /health proves
    only one) and `started(log)` holds."""
    log = open(node.data_dir / "server.log", "ab")  # noqa: SIM115 - the child keeps it open
    node.process = subprocess.Popen(
        [sys.executable, "-m", "library.cli", "serve", "--host", "127.0.0.1", "--port", str(node.port),
         "--workers", str(workers)], env=node.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + timeout
    while node.server_log().count("Application startup complete") < workers or not started(node.server_log()):
        if node.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{node.name} did not start:\n{node.server_log()[-3000:]}")
        time.sleep(0.1)


def csrf_token_from(html: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def form_token(client: httpx.AsyncClient, path: str = "/signin") -> str:
    response = await client.get(path)
    return csrf_token_from(response.text)


async def sign_in_patron(client: httpx.AsyncClient, card: str = "ZX10000001", pin: str = "123456") -> httpx.Response:
    token = await form_token(client, "/signin")
    return await client.post("/signin", data={"card_number": card, "pin": pin, "_csrf_token": token, "next": "/account"})


async def sign_in_staff(client: httpx.AsyncClient, username: str = "librarian",
                        password: str = "librarian-demo") -> httpx.Response:
    token = await form_token(client, "/staff/signin")
    return await client.post("/staff/signin", data={"username": username, "password": password,
                                                    "_csrf_token": token, "next": "/staff/"})


@contextlib.asynccontextmanager
async def running(app) -> AsyncIterator[None]:
    """The app's lifespan, entered and left in one task of its own: pytest-asyncio may set
    a fixture up and tear it down in different tasks, which anyio's cancel scopes refuse."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def keep_running() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(keep_running())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises what start-up raised
    try:
        yield
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def client_for(app) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
