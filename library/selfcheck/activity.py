"""Today's self-check activity per machine: checkouts, returns, renewals, refusals and errors.

Neither a return nor a renewal records who made it (the loans tables keep the lender only),
and a refusal writes nothing at all; so each machine's outcomes are counted here, one row per
machine, day and kind (`SelfCheckTally`). The self-check page adds its counts as it goes (a
reader's tap is slow enough); the SIP2 server adds them up in memory and writes them every
few seconds, so a machine's checkout costs no extra write transaction (`Tallies`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

from library.accounts.principal import Principal
from library.branches.tables import Branch
from library.db import run_in_write_transaction
from library.selfcheck.tables import Kiosk, SelfCheckStation, SelfCheckTally

log = logging.getLogger("library.selfcheck")

KINDS = ("checkout", "checkin", "renewal", "refusal", "error")
# How often the SIP2 server writes what it counted.
FLUSH_SECONDS = 5.0

Key = tuple[str, int, dt.date, str]  # machine uuid, branch id, local day, kind


def local_day(now: dt.datetime, time_zone: str) -> dt.date:
    return now.astimezone(ZoneInfo(time_zone)).date()


_TALLY = SelfCheckTally._meta.tablename
# Raw SQL: Piccolo's on_conflict() can set a column to the incoming value, not add it to the stored one.
_ADD_SQL = (f'INSERT INTO {_TALLY} (machine, branch, day, kind, total) VALUES ({{}}, {{}}, {{}}, {{}}, {{}}) '
            f'ON CONFLICT (machine, day, kind) DO UPDATE SET total = {_TALLY}.total + excluded.total')


async def add_counts(counts: dict[Key, int]) -> None:
    """Add to the day's tallies in one transaction (an upsert: two processes never lose a count)."""
    if not counts:
        return

    async def work() -> None:
        for (machine, branch_id, day, kind), number in sorted(counts.items()):
            await SelfCheckTally.raw(_ADD_SQL, machine, branch_id, day, kind, number)

    await run_in_write_transaction(work)


async def count(machine: str, branch_id: int, kind: str, now: dt.datetime, time_zone: str, number: int = 1) -> None:
    """Count one outcome now (the self-check page)."""
    if number:
        await add_counts({(machine, branch_id, local_day(now, time_zone), kind): number})


class Tallies:
    """Counts kept in memory by a SIP2 server and written every `FLUSH_SECONDS` (and at its stop)."""

    def __init__(self, time_zone: str) -> None:
        self.time_zone = time_zone
        self.pending: Counter[Key] = Counter()
        self._task: asyncio.Task | None = None

    def add(self, machine: str, branch_id: int, kind: str, now: dt.datetime, number: int = 1) -> None:
        if number:
            self.pending[(machine, branch_id, local_day(now, self.time_zone), kind)] += number

    async def flush(self) -> None:
        pending, self.pending = self.pending, Counter()
        try:
            await add_counts(dict(pending))
        except Exception:  # noqa: BLE001 - the database away for a moment: keep the counts for the next round
            log.exception("self-check tallies not written; kept for the next round")
            self.pending.update(pending)

    def start(self) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                await self.flush()

        self._task = asyncio.ensure_future(loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping either way
                pass
            self._task = None
        await self.flush()


async def today_by_machine(principal: Principal, now: dt.datetime, time_zone: str) -> list[dict[str, Any]]:
    """Each self-check machine of the branches this member of staff works for, with today's counts.

    Machines that did nothing today are listed too (with zeros), revoked stations and disabled
    kiosks only if they did something.
    """
    if not principal.is_staff:
        return []
    day = local_day(now, time_zone)
    branches = await Branch.select(Branch.id, Branch.code, Branch.name_zh, Branch.name_en)
    mine = {row["id"]: row for row in branches if principal.works_for(row["id"])}
    if not mine:
        return []
    ids = list(mine)
    tallies = await SelfCheckTally.select(SelfCheckTally.machine, SelfCheckTally.kind, SelfCheckTally.total).where(
        (SelfCheckTally.day == day) & SelfCheckTally.branch.is_in(ids))
    kiosks = await Kiosk.select(Kiosk.uuid, Kiosk.login, Kiosk.location_code, Kiosk.branch, Kiosk.enabled).where(
        Kiosk.branch.is_in(ids))
    stations = await SelfCheckStation.select(SelfCheckStation.uuid, SelfCheckStation.name, SelfCheckStation.branch,
                                             SelfCheckStation.revoked_at).where(SelfCheckStation.branch.is_in(ids))
    counts: dict[str, Counter[str]] = {}
    for row in tallies:
        counts.setdefault(row["machine"], Counter())[row["kind"]] += row["total"]
    machines = [("sip2", str(k["uuid"]), k["login"], k["location_code"], k["branch"], k["enabled"]) for k in kiosks]
    machines += [("page", str(s["uuid"]), s["name"], "", s["branch"], s["revoked_at"] is None) for s in stations]
    views = []
    for kind, uuid, name, location, branch_id, active in machines:
        counted = counts.get(uuid, Counter())
        if not active and not counted:
            continue
        branch = mine[branch_id]
        views.append({"machine": uuid, "kind": kind, "name": name, "location": location, "active": active,
                      "branch_code": branch["code"], "branch_name_zh": branch["name_zh"],
                      "branch_name_en": branch["name_en"], **{k: counted.get(k, 0) for k in KINDS}})
    views.sort(key=lambda view: (view["branch_code"], view["kind"], view["name"]))
    return views
