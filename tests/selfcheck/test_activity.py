"""Today's self-check activity per machine, as the staff home shows it: the counts a real SIP2
server writes for its kiosks (what one answer adds: tests/unit/selfcheck/test_rules.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from library.accounts.principal import Principal
from library.branches.tables import Branch
from library.catalog.tables import Item
from library.selfcheck import activity
from library.selfcheck.tables import Kiosk, SelfCheckTally
from tests.selfcheck.conftest import KIOSKS, PASSWORD
from tests.selfcheck.machine import Machine


@pytest.mark.asyncio(loop_scope="module")
async def test_a_sip2_machines_checkouts_returns_and_refusals_reach_the_staff_home(world):
    login = sorted(KIOSKS)[0]
    kiosk = await Kiosk.select(Kiosk.uuid, Kiosk.branch).where(Kiosk.login == login).first()
    before = await SelfCheckTally.count()
    barcode = (await Item.select(Item.barcode).where(
        (Item.status == "available") & (Item.home_branch.code == "ZX")).order_by(Item.barcode).first())["barcode"]
    machine = await Machine(world.port, KIOSKS[login]).connect()
    try:
        assert (await machine.login(login, PASSWORD))["fixed"]["Ok"] == "1"
        machine.reader("ZX10000001")
        assert (await machine.ask("checkout", barcode))["fixed"]["Ok"] == "1"
        assert (await machine.ask("checkout", "NO-SUCH-COPY"))["fixed"]["Ok"] == "0"
        assert (await machine.ask("checkin", barcode))["fixed"]["Ok"] == "1"
    finally:
        machine.close()
    # Counted in memory, written every few seconds (and when the server stops): no extra write
    # per message.
    await world.server.tallies.flush()
    assert await SelfCheckTally.count() > before
    zhenxing = await Branch.select(Branch.id).where(Branch.code == "ZX").first()
    librarian = Principal(kind="staff", id=1, uuid="x", name="周晓琳", language="zh_CN", role="librarian",
                          branch_ids=frozenset({zhenxing["id"]}))
    machines = await activity.today_by_machine(librarian, world.server.clock(), world.server.settings.time_zone)
    mine = next(view for view in machines if view["machine"] == str(kiosk["uuid"]))
    assert mine["kind"] == "sip2" and mine["checkout"] >= 1 and mine["checkin"] >= 1 and mine["refusal"] >= 1
    # A member of staff of another branch does not see Zhenxing's machines.
    elsewhere = Principal(kind="staff", id=2, uuid="y", name="y", language="zh_CN", role="librarian",
                          branch_ids=frozenset({-1}))
    assert await activity.today_by_machine(elsewhere, world.server.clock(), "Asia/Shanghai") == []


@pytest.mark.asyncio(loop_scope="module")
async def test_counts_from_two_processes_add_up(world):
    """An upsert, not a read and a write: two servers counting the same machine lose nothing."""
    branch = (await Branch.select(Branch.id).where(Branch.code == "ZX").first())["id"]
    day = dt.date(2026, 1, 5)
    first, second = activity.Tallies("Asia/Shanghai"), activity.Tallies("Asia/Shanghai")
    now = dt.datetime(2026, 1, 5, 4, 0, tzinfo=dt.timezone.utc)
    for tallies in (first, second):
        tallies.add("machine-under-test", branch, "checkout", now, 3)
    await first.flush()
    await second.flush()
    row = await SelfCheckTally.select(SelfCheckTally.total).where(
        (SelfCheckTally.machine == "machine-under-test") & (SelfCheckTally.day == day)).first()
    assert row["total"] == 6
