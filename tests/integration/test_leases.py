"""Leases on periodic work (library.branches.leases) on a real database: one claimer wins an interval,
among coroutines of one process and among processes; the notice loop runs its round only with the lease."""

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid as uuid_module

import pytest

from library.branches import leases
from library.branches.leases import claim
from library.branches.tables import PeriodicLease
from library.app import NOTICE_STEPS
from library.notices import worker
from library.notices.tables import Notice
from library.settings import PROJECT_ROOT
from tests.integration.notice_world import free_port, smtp_server, until
from tests.integration.test_notices import mail_settings

NOW = dt.datetime(2026, 12, 7, 4, 0, tzinfo=dt.timezone.utc)
SECOND = dt.timedelta(seconds=1)


async def lease(name: str) -> dict | None:
    return await PeriodicLease.select(PeriodicLease.holder, PeriodicLease.held_until).where(
        PeriodicLease.name == name).first()


async def test_the_first_claim_creates_the_lease_and_wins():
    assert await claim("notices", "a", 54, NOW)
    row = await lease("notices")
    assert row["holder"] == "a" and row["held_until"] == NOW + 54 * SECOND


async def test_a_running_lease_is_not_won_again_even_by_its_holder_and_is_free_when_it_ends():
    assert await claim("notices", "a", 54, NOW)
    assert not await claim("notices", "b", 54, NOW + 53 * SECOND)
    assert not await claim("notices", "a", 54, NOW + 53 * SECOND)  # one interval's turn, not a role
    assert (await lease("notices"))["holder"] == "a"
    assert await claim("notices", "b", 54, NOW + 54 * SECOND)  # ends at held_until
    row = await lease("notices")
    assert row["holder"] == "b" and row["held_until"] == NOW + 108 * SECOND
    assert await PeriodicLease.count() == 1


async def test_the_leases_of_different_jobs_are_independent():
    assert await claim("notices", "a", 54, NOW)
    assert await claim("sync.compaction", "a", 270, NOW)
    assert not await claim("sync.compaction", "b", 270, NOW + 100 * SECOND)
    assert await claim("notices", "b", 54, NOW + 100 * SECOND)


async def test_an_hour_behind_in_another_zone_is_the_same_moment():
    assert await claim("notices", "a", 60, NOW)
    shanghai = dt.timezone(dt.timedelta(hours=8))
    assert not await claim("notices", "b", 60, (NOW + 59 * SECOND).astimezone(shanghai))
    assert await claim("notices", "b", 60, (NOW + 60 * SECOND).astimezone(shanghai))


@pytest.mark.parametrize("before", ["missing", "ended"])
async def test_of_twenty_claimers_at_once_exactly_one_wins(before):
    if before == "ended":
        assert await claim("notices", "earlier", 54, NOW - 60 * SECOND)
    holders = [f"worker-{n}" for n in range(20)]
    won = await asyncio.gather(*(claim("notices", holder, 54, NOW) for holder in holders))
    assert sum(won) == 1
    assert (await lease("notices"))["holder"] == holders[won.index(True)]


CLAIM_IN_A_PROCESS = """
import asyncio, datetime as dt, json, sys, time
from library.branches.leases import claim
from library.db import close_connections, prepare_sqlite

async def main():
    await prepare_sqlite()
    now = dt.datetime.fromisoformat(sys.argv[2])
    time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # all processes start together
    try:
        print(json.dumps(await claim("notices", sys.argv[1], 54, now)))
    finally:
        await close_connections()

asyncio.run(main())
"""


def test_of_eight_processes_claiming_at_once_exactly_one_wins():
    """Across processes nothing of this process (SQLite's in-process writer queue) helps: the database decides."""
    start = time.time() + 4  # time enough for every process to import the library
    processes = [subprocess.Popen([sys.executable, "-c", CLAIM_IN_A_PROCESS, f"process-{n}", NOW.isoformat(),
                                   str(start)], cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for n in range(8)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(results) == 1, results


def test_the_holder_names_this_process_and_the_lease_ends_before_the_interval():
    holder = leases.this_process()
    assert holder == leases.this_process()
    assert f":{os.getpid()}:" in holder
    assert leases.lease_seconds(60) == 54


# --- the notice loop ----------------------------------------------------------------------------


async def test_the_notice_loop_runs_no_round_while_another_process_holds_the_lease():
    now = dt.datetime.now(dt.timezone.utc)
    await Notice.insert(Notice(uuid=str(uuid_module.uuid4()), key="test:lease", kind="overdue",
                               to_address="wangfang@example.org", subject="逾期", body="请还书", created_at=now,
                               send_after=now))
    assert await claim("notices", "another-host:1:abcd", 3600, now)
    port = free_port()
    with smtp_server(port) as inbox:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.notice_loop(mail_settings(port, notice_interval_seconds=1), stop, NOTICE_STEPS,
                                                      first_delay=0))
        await asyncio.sleep(2.5)  # two or three rounds' timers
        assert inbox.messages == [] and (await lease("notices"))["holder"] == "another-host:1:abcd"
        # The other process is gone and its lease has ended: the next timer here wins it.
        await PeriodicLease.update({PeriodicLease.held_until: now}).where(PeriodicLease.name == "notices")
        await until(lambda: len(inbox.messages) == 1)
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert (await lease("notices"))["holder"] == leases.this_process()


async def test_a_leased_loop_runs_its_work_at_once_where_it_wins_and_not_where_another_holds_the_lease():
    """start_leased_loop (the retention job's and the seat-offer loop's): the winner runs the work with
    the moment it claimed at; a loop whose lease another process holds runs nothing; 0 starts nothing."""
    import logging

    log = logging.getLogger("test")
    ran: list[dt.datetime] = []

    async def work(moment: dt.datetime) -> None:
        ran.append(moment)

    moment = dt.datetime(2026, 12, 7, 4, 0, tzinfo=dt.timezone.utc)
    assert await claim("test.held", "another-host:1:x", 3600, moment)
    held = leases.start_leased_loop("test.held", 60, work, lambda: moment, log)
    free = leases.start_leased_loop("test.free", 60, work, lambda: moment, log)
    off = leases.start_leased_loop("test.off", 0, work, lambda: moment, log)
    for _ in range(100):
        if ran:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    for stop in (held, free, off):
        await stop()
    assert ran == [moment], "one run, by the loop that won its lease"
    assert await PeriodicLease.count().where(PeriodicLease.name == "test.off") == 0
