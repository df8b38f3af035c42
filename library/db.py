"""The database engine and the two kinds of transaction every service uses.

Write transactions on SQLite must be IMMEDIATE: a DEFERRED one that reads then
writes fails at once with "database is locked" under concurrency, whatever the
busy timeout (see shared/STACK.md). PostgreSQL and CockroachDB may abort a
transaction with a serialization failure; `run_in_write_transaction` retries it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from library.settings import Settings

T = TypeVar("T")

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"


def make_engine(settings: Settings) -> Engine:
    if settings.engine == "postgres":
        return PostgresEngine(config={"dsn": settings.database_url, "timeout": 10})
    path: Path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteEngine(path=str(path), timeout=30)


def engine() -> Engine:
    import piccolo_conf

    return piccolo_conf.DB


def is_sqlite() -> bool:
    return isinstance(engine(), SQLiteEngine)


def write_transaction():
    db = engine()
    if isinstance(db, SQLiteEngine):
        return db.transaction(transaction_type=TransactionType.immediate)
    return db.transaction()


def read_transaction():
    """One connection for all the reads of a request (SQLite has no pool: ~3x faster)."""
    return engine().transaction()


def _is_retryable(error: BaseException) -> bool:
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate in (SERIALIZATION_FAILURE, DEADLOCK_DETECTED):
        return True
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


async def run_in_write_transaction(work: Callable[[], Awaitable[T]], attempts: int = 4) -> T:
    """Run `work` in one write transaction, retrying transient conflicts with back-off."""
    for attempt in range(1, attempts + 1):
        try:
            async with write_transaction():
                return await work()
        except Exception as error:  # noqa: BLE001 - filtered right below
            if attempt == attempts or not _is_retryable(error):
                raise
            await asyncio.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")


async def database_ok() -> bool:
    try:
        await engine().run_ddl("SELECT 1")
    except Exception:  # noqa: BLE001 - health reports, never raises
        return False
    return True


async def prepare_sqlite() -> None:
    """WAL lets readers go on while one writer writes; it is a property of the file."""
    db = engine()
    if isinstance(db, SQLiteEngine):
        await db.run_ddl("PRAGMA journal_mode=WAL")


def contains_text(column, text: str):
    """Case-insensitive 'contains': ILIKE on PostgreSQL, LIKE on SQLite (which has no ILIKE
    and whose LIKE already ignores ASCII case). A user's % or _ is not a wildcard: escaped
    on PostgreSQL; dropped on SQLite, whose LIKE has no default escape character."""
    if is_sqlite():
        return column.like("%" + text.replace("%", "").replace("_", "") + "%")
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%")


async def executemany(sql: str, rows: list[tuple]) -> None:
    """One statement for many rows on the current transaction's connection (bulk imports).

    `sql` uses {} placeholders, as Piccolo's raw queries do. Piccolo builds one query
    object per row, which is what made a 50,000-record import slower than reading it.
    """
    if not rows:
        return
    db = engine()
    transaction = db.current_transaction.get()
    if transaction is None:
        raise RuntimeError("executemany needs a write transaction")
    if isinstance(db, SQLiteEngine):
        await transaction.connection.executemany(sql.replace("{}", "?"), rows)
        return
    numbered, count = [], 0
    for part in sql.split("{}")[:-1]:
        count += 1
        numbered.append(f"{part}${count}")
    await transaction.connection.executemany("".join(numbered) + sql.split("{}")[-1], rows)


def is_unique_violation(error: BaseException) -> bool:
    """A unique constraint refused the write, on either engine."""
    if isinstance(error, sqlite3.IntegrityError):
        return "UNIQUE" in str(error)
    return getattr(error, "sqlstate", None) == "23505"


def json_list(raw) -> list:
    """JSON columns come back as text from both drivers."""
    import json

    value = json.loads(raw) if isinstance(raw, str) else raw
    return list(value or [])
