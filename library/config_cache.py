"""Circulation configuration — branches, their calendars, circulation rules — cached per process.

Every checkout needs the branch, the rules and a year of the branch's calendar; reading
them took four of a checkout's queries. They change rarely, but they may change from
anywhere: an administrator's form, branch sync upserting rows with raw SQL, another
server process, a command, a test emptying the tables. So the database says when they
changed: triggers on `branch`, `opening_period`, `calendar_exception` and
`circulation_rule` give the one row of `config_version` a new random value on every
insert, update and delete (migration loans 2026-11-29T05:10). A caller reads that value
(one tiny query) and reuses what was loaded under the same value; anything else is
reloaded. A rolled-back change puts the old value back, and what was cached under the
value that never committed is never matched again.

`invalidate()` empties this process's cache — never needed for correctness, offered to
code that wants the memory back or distrusts the triggers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from contextvars import ContextVar
from typing import Any, TypeVar

from piccolo.querystring import QueryString

from library.db import before_write, engine

T = TypeVar("T")

# A year of calendar per branch and per day asked for: bounded, emptied when full.
MAX_ENTRIES = 512

_entries: dict[Hashable, tuple[int, Any]] = {}


# The version read with the signed-in person at the start of an HTTP request (one query for
# both, see library.web.auth); used once, and forgotten when the request starts writing.
_read_with_request: ContextVar[tuple[int, int] | None] = ContextVar("config_version_read_with_request", default=None)

# Selects the version beside other columns of a query that runs anyway.
VERSION_COLUMN = "(SELECT version FROM config_version WHERE id = 1) AS config_version"


def _labelled(version: int | None) -> tuple[int, int] | None:
    return None if version is None else (id(engine()), version)


async def current_version() -> tuple[int, int] | None:
    """The configuration's version now (with the engine it belongs to); None, and nothing is
    cached, if the database has no version row."""
    known = _read_with_request.get()
    if known is not None:
        _read_with_request.set(None)
        return known
    # Raw SQL: config_version is kept by triggers (migration loans 2026-11-29T05:10), not a
    # Piccolo table, and this module sits below every domain's tables.
    rows = await engine().run_querystring(QueryString("SELECT version FROM config_version WHERE id = 1"))
    return _labelled(rows[0]["version"]) if rows else None


def read_with_request(version: int | None) -> None:
    """The version a query at the start of this request read beside its own columns."""
    _read_with_request.set(_labelled(version))


def forget_request_version() -> None:
    """This request writes: what it read at its start may no longer be current."""
    if _read_with_request.get() is not None:
        _read_with_request.set(None)


before_write(forget_request_version)


async def cached(key: Hashable, version: Any, load: Callable[[], Awaitable[T]]) -> T:
    """What `load()` returns, loaded at most once per configuration version.

    The version must be read before loading: data newer than its label is only reloaded
    once more, never kept past a change. Callers must not mutate what they get.
    """
    if version is None:
        return await load()
    hit = _entries.get(key)
    if hit is not None and hit[0] == version:
        return hit[1]
    value = await load()
    if len(_entries) >= MAX_ENTRIES:
        _entries.clear()
    _entries[key] = (version, value)
    return value


def invalidate() -> None:
    """Forget everything cached in this process (the next caller reloads)."""
    _entries.clear()
