"""Leases on periodic work: of all the processes on one database, one runs a job per interval.

`library serve --workers 4`, or several instances on one database, start the same timers
in every process. Each process claims the job's lease when its timer fires; the claim is
one conditional statement, so the database decides who wins and no two processes win
the same interval. The lease lasts a bit less than the interval (`lease_seconds`): the
timers of the workers drift apart, and the next interval must be free for whichever
timer fires first. Times come from the claimer (`now`): instances on several hosts need
clocks that agree to well within the interval's tenth.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

from library.branches.tables import PeriodicLease
from library.db import run_in_write_transaction

# The lease ends this share of the interval after it was claimed.
SHARE_OF_INTERVAL = 0.9

_holder: tuple[int, str] | None = None


def this_process() -> str:
    """hostname:pid:random; the random part tells apart two containers that both run pid 1,
    and a pid reused after a restart. A forked child gets its own."""
    global _holder
    pid = os.getpid()
    if _holder is None or _holder[0] != pid:
        _holder = (pid, f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}"[-200:])
    return _holder[1]


def lease_seconds(interval: float) -> float:
    """How long the winner of an interval holds the job's lease."""
    return interval * SHARE_OF_INTERVAL


async def claim(name: str, holder: str, seconds: float, now: dt.datetime) -> bool:
    """Take the lease `name` until `now + seconds` if nobody holds it at `now`; True if taken.

    One statement: insert the lease if it is missing, else take it over only where it has
    ended (INSERT ... ON CONFLICT DO UPDATE ... WHERE held_until <= now). PostgreSQL
    re-checks the WHERE on the row as the winner left it, SQLite has one writer: of any
    number of claimers, one wins. The holder of a running lease does not win it again —
    a lease is one interval's turn, not a standing role.
    """
    until = now + dt.timedelta(seconds=seconds)

    async def work() -> list[dict]:
        return await PeriodicLease.insert(PeriodicLease(name=name, holder=holder, held_until=until)).on_conflict(
            target=PeriodicLease.name, action="DO UPDATE", values=[PeriodicLease.holder, PeriodicLease.held_until],
            where=PeriodicLease.held_until <= now,
        ).returning(PeriodicLease.id)

    return bool(await run_in_write_transaction(work, begin_with_first_statement=True))


def start_leased_loop(name: str, interval: float, work: Callable[[dt.datetime], Awaitable[None]],
                      now: Callable[[], dt.datetime], log: logging.Logger) -> Callable[[], Awaitable[None]]:
    """Run `work(now)` every `interval` seconds, in the one process that claims the interval's lease
    (at once, then on the interval); returns the coroutine function that stops it (a run in
    progress gets 10 s to finish). An interval of 0 or less starts nothing."""
    if interval <= 0:
        async def nothing_to_stop() -> None:
            return None

        return nothing_to_stop
    stop = asyncio.Event()

    async def loop() -> None:
        holder = this_process()
        while not stop.is_set():
            try:
                moment = now()
                if await claim(name, holder, lease_seconds(interval), moment):
                    await work(moment)
            except Exception:  # noqa: BLE001 - the loop outlives any one run
                log.exception("%s failed", name)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass

    task = asyncio.create_task(loop(), name=f"library-{name}")

    async def stop_loop() -> None:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        except TimeoutError:
            task.cancel()

    return stop_loop
