"""The database engine and the two kinds of transaction every service uses.

Write transactions on SQLite must be IMMEDIATE: a DEFERRED one that reads then
writes fails at once with "database is locked" under concurrency, whatever the
busy timeout (see shared/STACK.md). PostgreSQL and CockroachDB may abort a
transaction with a serialization failure; `run_in_write_transaction` retries it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType, dict_factory
from piccolo.querystring import QueryString

from library.settings import Settings, load_settings

T = TypeVar("T")

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"


# Set on a pooled connection whose BEGIN waits to travel with the transaction's first statement.
_PENDING_BEGIN = "library_pending_begin"


def _begin_then_fetch(connection: sqlite3.Connection, begin: str, query: str, args) -> list:
    connection.execute(begin)
    cursor = connection.execute(query, args)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


class _PooledTransaction(SQLiteTransaction):
    """Piccolo's SQLite transaction, handing its connection back to the pool instead of closing it.

    With `begin_with_first_statement`, BEGIN is not a trip of its own to the connection's
    thread: it is sent with the first statement that goes through the engine (or `batch`).
    Only for code that never touches `transaction.connection` itself.
    """

    __slots__ = ("begin_with_first_statement",)

    def __init__(self, *args, begin_with_first_statement: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.begin_with_first_statement = begin_with_first_statement

    async def __aenter__(self) -> SQLiteTransaction:
        if self._parent is not None:
            return self._parent
        self.connection = await self.get_connection()
        if self.begin_with_first_statement:
            setattr(self.connection, _PENDING_BEGIN, f"BEGIN {self.transaction_type.value}")
        else:
            try:
                await self.begin()
            except BaseException:
                # Piccolo leaves the connection (and its thread) open when BEGIN fails.
                await self.engine.release(self.connection, broken=True)
                raise
        self.context = self.engine.current_transaction.set(self)
        return self

    async def commit(self) -> None:
        if self.connection.__dict__.pop(_PENDING_BEGIN, None) is None:  # else nothing was begun
            await self.connection.execute("COMMIT")
        self._committed = True

    async def rollback(self) -> None:
        # Nothing to roll back when BEGIN was never sent, or failed (database locked).
        if self.connection.__dict__.pop(_PENDING_BEGIN, None) is None and self.connection.in_transaction:
            await self.connection.execute("ROLLBACK")
        self._rolled_back = True

    async def __aexit__(self, exception_type, exception, traceback) -> bool:
        if self._parent:
            return exception is None
        broken = False
        try:
            if exception:
                if not self._rolled_back:
                    await self.rollback()
            elif not self._committed and not self._rolled_back:
                await self.commit()
        except BaseException:
            broken = True
            raise
        finally:
            await self.engine.release(self.connection, broken=broken)
            self.engine.current_transaction.reset(self.context)
        return exception is None


class PooledSQLiteEngine(SQLiteEngine):
    """SQLite with reused connections.

    Piccolo's SQLiteEngine opens a connection — and an aiosqlite thread — for every
    transaction and every query outside one, and repeats `PRAGMA foreign_keys` before
    each query: a checkout spent more time on that than on its SQL. Here idle connections
    are kept (up to `pool_size`), set up once (foreign keys, WAL-friendly synchronous
    NORMAL: a commit survives a crash of the process; only a power cut may lose the last
    commits, which is SQLite's documented trade-off for WAL), and their threads are
    daemons so that a forgotten connection never keeps a command from exiting.
    """

    __slots__ = ("pool_size", "_idle", "_locks", "_loop_commits", "_checkpoints")

    def __init__(self, path: str, pool_size: int = 32, **connection_kwargs) -> None:
        # Connections are opened in their aiosqlite thread; `run_script` also uses them from
        # the event loop's thread, one user at a time (a transaction owns its connection).
        connection_kwargs.setdefault("check_same_thread", False)
        super().__init__(path=path, **connection_kwargs)
        self.pool_size = pool_size
        # Idle connections of each event loop: aiosqlite answers a query on the loop that asked
        # it, so a connection last used on a loop that has since closed (a test's loop, a
        # checkpoint cancelled with it) is never handed to another loop; it could still owe
        # that loop an answer, and the next query on it would wait for ever.
        self._idle: dict = {}
        self._locks: dict = {}
        self._loop_commits = 0
        self._checkpoints: set[asyncio.Task] = set()

    def committed_on_loop(self) -> None:
        """Count a COMMIT made on the event loop (no checkpoint); now and then, checkpoint."""
        self._loop_commits += 1
        if self._loop_commits % CHECKPOINT_EVERY_LOOP_COMMITS == 0 and not self._checkpoints:
            task = asyncio.get_running_loop().create_task(self.checkpoint())
            self._checkpoints.add(task)
            task.add_done_callback(self._checkpoints.discard)

    async def checkpoint(self) -> None:
        """Copy the WAL into the database as far as readers allow (PASSIVE: it waits for no one),
        in a connection's thread."""
        connection = await self.get_connection()
        broken = False
        try:
            await connection.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")  # its row read: statement done
        except asyncio.CancelledError:
            broken = True  # its loop is going: the connection may still owe it an answer
            raise
        except Exception:  # noqa: BLE001 - the next one, or SQLite's own, will do it
            broken = True
        finally:
            await self.release(connection, broken=broken)

    @property
    def busy_timeout_ms(self) -> int:
        return int(float(self.connection_kwargs.get("timeout", 5)) * 1000)

    def write_lock(self) -> asyncio.Lock:
        """The writers' queue of the running event loop (tests run several loops)."""
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            self._locks = {known: held for known, held in self._locks.items() if not known.is_closed()}
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    def _idle_of_loop(self) -> list:
        loop = asyncio.get_running_loop()
        idle = self._idle.get(loop)
        if idle is None:
            # Forget the pools of closed loops (their connections' threads are daemons).
            self._idle = {known: kept for known, kept in self._idle.items() if not known.is_closed()}
            idle = self._idle[loop] = []
        return idle

    async def get_connection(self):
        idle = self._idle_of_loop()
        while idle:
            connection = idle.pop()
            if connection._running and connection._connection is not None:
                return connection
        import aiosqlite

        connection = aiosqlite.connect(**self.connection_kwargs)
        connection._thread.daemon = True
        await connection
        connection.row_factory = dict_factory
        await connection.execute("PRAGMA foreign_keys = 1")
        await connection.execute("PRAGMA synchronous = NORMAL")
        # A statement that fires triggers keeps a statement journal while it runs; on disk,
        # every row rewrote the pages it touched there (a MARC import made 1.5 million writes).
        await connection.execute("PRAGMA temp_store = MEMORY")
        return connection

    async def release(self, connection, broken: bool = False) -> None:
        idle = self._idle_of_loop()
        if broken or connection.in_transaction or len(idle) >= self.pool_size:
            try:
                await connection.close()
            except Exception:  # noqa: BLE001 - a broken connection is dropped either way
                pass
            return
        idle.append(connection)

    async def close_pool(self) -> None:
        pools, self._idle = self._idle, {}
        for connection in (connection for idle in pools.values() for connection in idle):
            try:
                await connection.close()
            except Exception:  # noqa: BLE001
                pass

    async def _run_in_existing_connection(self, connection, query: str, args=None, query_type: str = "generic",
                                          table=None):
        # One trip to the connection's thread (execute, fetch and close there), not three.
        begin = connection.__dict__.pop(_PENDING_BEGIN, None)
        if begin is not None:
            return await connection._execute(_begin_then_fetch, connection._conn, begin, query, args or [])
        return await connection.execute_fetchall(query, args or [])

    async def _run_in_new_connection(self, query: str, args=None, query_type: str = "generic", table=None):
        connection = await self.get_connection()
        broken = False
        try:
            rows = await connection.execute_fetchall(query, args or [])
            if connection.in_transaction:
                await connection.commit()
            return rows
        except BaseException:
            broken = True
            raise
        finally:
            await self.release(connection, broken=broken)

    def transaction(self, transaction_type: TransactionType = TransactionType.deferred,
                    allow_nested: bool = True, begin_with_first_statement: bool = False) -> SQLiteTransaction:
        return _PooledTransaction(engine=self, transaction_type=transaction_type, allow_nested=allow_nested,
                                  begin_with_first_statement=begin_with_first_statement)


def make_engine(settings: Settings) -> Engine:
    if settings.engine == "postgres":
        return PostgresEngine(config={"dsn": settings.database_url, "timeout": 10})
    path: Path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return PooledSQLiteEngine(path=str(path), timeout=30)


async def close_connections() -> None:
    db = engine()
    if isinstance(db, PooledSQLiteEngine):
        await db.close_pool()


_engine: Engine | None = None


def engine() -> Engine:
    """The process's one engine, made from the settings on first use. piccolo_conf.py hands this
    same object to Piccolo, so tables and this module always talk through one engine."""
    global _engine
    if _engine is None:
        _engine = make_engine(load_settings())
    return _engine


def is_sqlite() -> bool:
    return isinstance(engine(), SQLiteEngine)


@asynccontextmanager
async def _sqlite_write_transaction(db: PooledSQLiteEngine, begin_with_first_statement: bool = False):
    """IMMEDIATE, and one writer at a time within this process.

    SQLite has one writer anyway; writers of this process queue on an asyncio lock
    instead of colliding on BEGIN IMMEDIATE, where SQLite's busy handler would put them
    to sleep in growing steps. Another process still meets the busy timeout.
    """
    if db.current_transaction.get() is not None:  # nested: Piccolo makes it a no-op
        async with db.transaction(transaction_type=TransactionType.immediate) as transaction:
            yield transaction
        return
    async with db.write_lock():
        async with db.transaction(transaction_type=TransactionType.immediate,
                                  begin_with_first_statement=begin_with_first_statement) as transaction:
            yield transaction


# Called as a write transaction starts: a cache above this module (library.config_cache) forgets
# what this request read before it began writing.
_before_write: list[Callable[[], None]] = []


def before_write(hook: Callable[[], None]) -> None:
    if hook not in _before_write:
        _before_write.append(hook)


def write_transaction(begin_with_first_statement: bool = False):
    """A write transaction. `begin_with_first_statement` (SQLite): BEGIN travels with the first
    statement instead of alone — for work that runs its SQL through Piccolo or `batch` only."""
    for hook in _before_write:
        hook()
    db = engine()
    if isinstance(db, PooledSQLiteEngine):
        return _sqlite_write_transaction(db, begin_with_first_statement)
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


async def run_in_write_transaction(work: Callable[[], Awaitable[T]], attempts: int = 4,
                                   begin_with_first_statement: bool = False) -> T:
    """Run `work` in one write transaction, retrying transient conflicts with back-off."""
    for attempt in range(1, attempts + 1):
        try:
            async with write_transaction(begin_with_first_statement):
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


async def refresh_planner_statistics(*tables: str) -> None:
    """After a bulk load on PostgreSQL, the planner's statistics of `tables`, at once rather than
    when autovacuum comes round: without them a search's exact-title lookup walked the whole
    primary key (0.25-0.5 s a search at 200,000 records, issue 20). SQLite's planner goes by the
    indexes it has; nothing to do there. Raw SQL: ANALYZE is beyond the query builder."""
    if is_sqlite() or not tables:
        return
    await engine().run_ddl("ANALYZE " + ", ".join(f'"{name}"' for name in tables))


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
        begin = transaction.connection.__dict__.pop(_PENDING_BEGIN, None)
        if begin is not None:
            await transaction.connection.execute(begin)
        await transaction.connection.executemany(sql.replace("{}", "?"), rows)
        return
    numbered, count = [], 0
    for part in sql.split("{}")[:-1]:
        count += 1
        numbered.append(f"{part}${count}")
    await transaction.connection.executemany("".join(numbered) + sql.split("{}")[-1], rows)


@dataclass(frozen=True)
class Statement:
    """One statement of a `batch`: SQL with {} placeholders and its arguments. A `required`
    statement (a SELECT, or a write with RETURNING) that gives no row stops the batch there."""

    sql: str
    args: Sequence[Any] = ()
    required: bool = False


def _run_statements(connection: sqlite3.Connection,
                    statements: list[tuple[str, Sequence[Any], bool]]) -> list[list[dict[str, Any]]] | None:
    results = []
    for sql, args, required in statements:
        cursor = connection.execute(sql, args)
        try:
            rows = cursor.fetchall()
        finally:
            cursor.close()
        if required and not rows:
            return None
        results.append(rows)
    return results


def _run_batch(connection: sqlite3.Connection, begin: str | None, statements: list[tuple[str, Sequence[Any], bool]],
               commit: bool) -> list[list[dict[str, Any]]] | None:
    if begin is not None:
        connection.execute(begin)
    results = _run_statements(connection, statements)
    if commit and results is not None:
        connection.execute("COMMIT")
    return results


def _sqlite_statements(statements: Sequence[Statement], required: bool = True) -> list[tuple[str, list, bool]]:
    return [(s.sql.replace("{}", "?"), list(s.args), required and s.required) for s in statements]


async def _pg_rows(connection, statement: Statement) -> list[dict[str, Any]]:
    parts = statement.sql.split("{}")
    sql = "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], start=1)) + parts[-1]
    return [dict(row) for row in await connection.fetch(sql, *statement.args)]


def _transaction_for(what: str):
    """The engine and its current transaction, which `what` needs."""
    db = engine()
    transaction = db.current_transaction.get()
    if transaction is None:
        raise RuntimeError(f"{what} needs a transaction")
    return db, transaction


async def batch(*statements: Statement, commit: bool = False) -> list[list[dict[str, Any]]] | None:
    """Several statements of the current transaction in one trip; each one's rows, in order.

    On SQLite the statements (and the transaction's BEGIN, when it waits for its first
    statement) run in one trip to the connection's thread, and with `commit` the COMMIT too:
    nothing may run in the transaction after that. A `required` statement without rows
    stops the batch — nothing after it runs, nothing is committed — and None is returned.
    On PostgreSQL the statements run one after another and the transaction commits as usual.
    """
    db, transaction = _transaction_for("batch")
    if isinstance(db, SQLiteEngine):
        connection = transaction.connection
        begin = connection.__dict__.pop(_PENDING_BEGIN, None)
        results = await connection._execute(_run_batch, connection._conn, begin, _sqlite_statements(statements),
                                            commit)
        if commit and results is not None:
            transaction._committed = True
        return results
    results = []
    for statement in statements:
        rows = await _pg_rows(transaction.connection, statement)
        if statement.required and not rows:
            return None
        results.append(rows)
    return results


@dataclass(frozen=True)
class Unfinished:
    """What a transaction script returns when the rest of its work is done by async code
    in the same transaction: nothing is committed, `value` is handed back."""

    value: Any = None


# A transaction script: a generator that yields lists of statements, is sent each list's
# rows (one list of rows per statement) and returns its result.
Script = Generator[Sequence[Statement], list[list[dict[str, Any]]], T]


def _drive(connection: sqlite3.Connection, begin: str | None, script: Script, commit: bool) -> Any:
    if begin is not None:
        connection.execute(begin)
    try:
        asked = next(script)
        while True:
            asked = script.send(_run_statements(connection, _sqlite_statements(asked, required=False)))
    except StopIteration as finished:
        result = finished.value
    if commit and not isinstance(result, Unfinished):
        connection.execute("COMMIT")
    return result


def _execute_alone(connection: sqlite3.Connection, sql: str) -> list:
    """A statement run to its end and closed: a PRAGMA answers with a row, and a statement
    left open would keep the transaction from committing."""
    cursor = connection.execute(sql)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


class _Busy(Exception):
    """The file was busy (another connection holds what this one needs) at the instant asked."""


@contextmanager
def _at_once(connection: sqlite3.Connection, busy_timeout_ms: int) -> Iterator[None]:
    """Statements that do not wait: SQLite's busy wait is set aside (it would sleep on the
    event loop), and finding the file busy raises `_Busy`."""
    _execute_alone(connection, "PRAGMA busy_timeout = 0")
    try:
        yield
    except sqlite3.OperationalError as error:
        if "locked" in str(error) or "busy" in str(error):
            raise _Busy() from error
        raise
    finally:
        _execute_alone(connection, f"PRAGMA busy_timeout = {busy_timeout_ms}")


def _begin_now(connection: sqlite3.Connection, begin: str, busy_timeout_ms: int) -> bool:
    """BEGIN only if the database's write lock is free this instant (another process may hold it)."""
    try:
        with _at_once(connection, busy_timeout_ms):
            _execute_alone(connection, begin)
        return True
    except _Busy:
        return False


def _in_wal_mode(connection) -> bool:
    """Whether the file is in WAL mode (asked once per pooled connection): only there does a
    COMMIT never wait for readers."""
    known = connection.__dict__.get("library_wal")
    if known is None:
        row = _execute_alone(connection._conn, "PRAGMA journal_mode")[0]  # a dict: the engine's row factory
        known = connection.__dict__["library_wal"] = str(next(iter(row.values()))).lower() == "wal"
    return known


def _drive_on_loop(connection: sqlite3.Connection, script: Script, commit: bool) -> Any:
    # SQLite checkpoints the WAL in whichever connection commits once it passes 1000 pages:
    # copying pages into the database and two fsyncs, not for the event loop to wait on.
    # This COMMIT leaves it to `PooledSQLiteEngine.checkpoint`, run in a connection's thread.
    _execute_alone(connection, "PRAGMA wal_autocheckpoint = 0")
    try:
        return _drive(connection, None, script, commit)
    finally:
        _execute_alone(connection, f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")


WAL_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default
# A checkout writes about ten pages: a checkpoint every 100 commits made on the event loop
# keeps the WAL about as short as SQLite's own 1000 pages would.
CHECKPOINT_EVERY_LOOP_COMMITS = 100


async def run_script(script: Script, commit: bool = True) -> Any:
    """Run a transaction script in the current transaction; with `commit`, commit it unless it
    returns `Unfinished`, and nothing else may run in the transaction after.

    A write transaction holds SQLite's single writer from BEGIN to COMMIT. Run through the
    connection's thread, every statement was a hand-over between that thread and the event
    loop — each one waiting for the GIL and for the loop's other requests — and under load
    those waits, not the SQL, were two thirds of the time the lock was held. So on SQLite a
    script that begins its transaction runs right here, on the event loop, when its BEGIN
    IMMEDIATE takes the write lock at once and the file is in WAL mode: a few statements on a
    local file, waiting on no one (the WAL checkpoint is left to a thread). Otherwise — another
    process holds the lock, the transaction was begun before — it runs in the connection's
    thread, where it may wait.
    The script's Python must therefore be plain computation: no awaits, no blocking.
    A statement's `required` is not used here: the script looks at the rows itself.
    On PostgreSQL the statements run one after another and the transaction commits as usual.
    """
    db, transaction = _transaction_for("run_script")
    if isinstance(db, PooledSQLiteEngine):
        connection = transaction.connection
        begin = connection.__dict__.pop(_PENDING_BEGIN, None)
        # On the loop only when this script's own BEGIN IMMEDIATE took the lock at once: a
        # transaction begun elsewhere may be DEFERRED, and its first write could then wait.
        if begin is not None and begin.endswith("IMMEDIATE") and _in_wal_mode(connection) \
                and _begin_now(connection._conn, begin, db.busy_timeout_ms):
            result = _drive_on_loop(connection._conn, script, commit)
            if commit and not isinstance(result, Unfinished):
                db.committed_on_loop()
        else:
            result = await connection._execute(_drive, connection._conn, begin, script, commit)
        if commit and not isinstance(result, Unfinished):
            transaction._committed = True
        return result
    if isinstance(db, SQLiteEngine):
        raise RuntimeError("run_script needs the pooled SQLite engine")
    try:
        asked = next(script)
        while True:
            asked = script.send([await _pg_rows(transaction.connection, statement) for statement in asked])
    except StopIteration as finished:
        return finished.value


def _read_at_once(connection: sqlite3.Connection, sql: str, args: Sequence[Any], busy_timeout_ms: int) -> list | None:
    """The rows, or None when the file is busy this instant (it is then read where waiting is allowed)."""
    try:
        with _at_once(connection, busy_timeout_ms):
            cursor = connection.execute(sql, args)
            try:
                return cursor.fetchall()
            finally:
                cursor.close()
    except _Busy:
        return None


async def read_now(statement: Statement) -> list[dict[str, Any]]:
    """A small read through an index (a row or two), outside any transaction: its rows.

    For the checks made before every message or request (is this kiosk still enabled, which
    language does this card ask for). On SQLite in WAL mode it runs right here on the event
    loop, for the reason `run_script` does: the trip to a connection's thread and back, waiting
    for the GIL and the loop, cost more than the read, and a WAL reader never waits for the
    writer. Should the file be busy all the same (a checkpoint restarting the WAL), the read
    goes to the connection's thread, where waiting is allowed. Elsewhere it is a plain query.
    Raw SQL: the point is a read without building a query object.
    """
    db = engine()
    if isinstance(db, PooledSQLiteEngine) and db.current_transaction.get() is None:
        (sql, args, _), = _sqlite_statements([statement])
        connection = await db.get_connection()
        broken = False
        try:
            rows = _read_at_once(connection._conn, sql, args, db.busy_timeout_ms) if _in_wal_mode(connection) \
                else None
            return rows if rows is not None else await connection.execute_fetchall(sql, args)
        except BaseException:
            broken = True
            raise
        finally:
            await db.release(connection, broken=broken)
    return [dict(row) for row in await db.run_querystring(QueryString(statement.sql, *statement.args))]


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


def json_object(raw) -> dict:
    """A JSON object column, whichever driver read it."""
    import json

    value = json.loads(raw) if isinstance(raw, str) else raw
    return dict(value or {})
