"""Helpers shared by the tests that use the database or the HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator

import asyncpg
import httpx


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
