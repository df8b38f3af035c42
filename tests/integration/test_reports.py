"""Statistics counted from a small known world, on both engines; and a branch's offline day
brought in late by sync, after the counts were made (issue 22, part 4)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from library.accounts.principal import Principal
from library.accounts.tables import Patron
from library.activities.tables import Event, Occurrence, Registration
from library.branches.tables import Branch
from library.catalog.tables import Item, Record
from library.loans.tables import Loan
from library.reports import rules, service

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 20, 4, 0, tzinfo=UTC)  # noon in Jiaxing
YEAR = rules.parse_period("year", "2026")
MARCH = rules.parse_period("month", "2026-03")


def admin() -> Principal:
    return Principal(kind="staff", id=1, uuid="", name="admin", language="en", role="administrator", all_branches=True)


def librarian_of(branch_id: int) -> Principal:
    return Principal(kind="staff", id=2, uuid="", name="lib", language="en", role="librarian", branch_ids=frozenset({branch_id}))


async def world() -> dict:
    zx = (await Branch.insert(Branch(code="ZX", name_zh="振兴", name_en="Zhenxing")).returning(Branch.id))[0]["id"]
    cl = (await Branch.insert(Branch(code="CL", name_zh="总馆", name_en="Central")).returning(Branch.id))[0]["id"]
    record = (await Record.insert(Record(title="好饿的毛毛虫")).returning(Record.id))[0]["id"]
    patrons = {}
    for card, category, born in (("A1", "adult", dt.date(1990, 1, 1)), ("C1", "child", dt.date(2018, 5, 1)),
                                 ("C2", "child", dt.date(2017, 5, 1))):
        patrons[card] = (await Patron.insert(Patron(
            card_number=card, name=card, category=category, birth_date=born, home_branch=zx,
            expires_on=dt.date(2030, 1, 1), pin_hash="x",
            created_at=dt.datetime(2026, 1, 5, 2, 0, tzinfo=UTC))).returning(Patron.id))[0]["id"]
    items = []
    for n in range(8):
        items.append((await Item.insert(Item(record=record, barcode=f"B{n}", home_branch=zx, current_branch=zx,
                                             created_at=dt.datetime(2026, 1, 2, tzinfo=UTC))).returning(Item.id))[0]["id"])
    return {"zx": zx, "cl": cl, "patrons": patrons, "items": items}


async def lend(w, item: int, card: str, category: str, at: dt.datetime, branch: int | None = None,
               returned_at: dt.datetime | None = None) -> None:
    await Loan.insert(Loan(uuid=uuid.uuid4(), item=item, patron=w["patrons"][card], patron_category=category,
                           branch=branch or w["zx"], checked_out_at=at, due_on=at.date() + dt.timedelta(days=28),
                           due_at=at + dt.timedelta(days=28), returned_at=returned_at,
                           returned_branch=(branch or w["zx"]) if returned_at else None))


async def test_loans_and_readers_are_counted_by_the_local_day():
    w = await world()
    # 16:30 UTC on 1 March is 00:30 on 2 March in Jiaxing: it counts for 2 March.
    await lend(w, w["items"][0], "A1", "adult", dt.datetime(2026, 3, 1, 16, 30, tzinfo=UTC))
    await lend(w, w["items"][1], "C1", "child", dt.datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
               returned_at=dt.datetime(2026, 3, 10, 3, 0, tzinfo=UTC))
    await lend(w, w["items"][2], "C2", "child", dt.datetime(2026, 2, 14, 3, 0, tzinfo=UTC))
    await lend(w, w["items"][3], "C1", "child", dt.datetime(2026, 3, 2, 5, 0, tzinfo=UTC), branch=w["cl"])
    assert await service.refresh(NOW) is True
    month = await service.statistics(admin(), MARCH, None, NOW)
    assert month["totals"]["loans"] == 3
    assert month["series"]["loans"]["2026-03-02"] == 3
    assert "2026-03-01" not in month["series"]["loans"]
    assert month["totals"]["returns"] == 1
    assert month["breakdowns"]["loans"] == {"adult": 1, "child": 2}
    # Active readers of the network in March: A1 and C1 (C1 borrowed at two branches: one reader).
    assert month["active"]["total"] == 2
    year = await service.statistics(admin(), YEAR, None, NOW)
    assert year["series"]["loans"] == {"2026-02": 1, "2026-03": 3}
    assert year["totals"]["new_readers"] == 3
    assert year["breakdowns"]["new_readers"] == {"adult|18-59": 1, "child|7-12": 2}
    # A librarian of Zhenxing sees Zhenxing only.
    own = await service.statistics(librarian_of(w["zx"]), YEAR, None, NOW)
    assert own["totals"]["loans"] == 3 and [b["code"] for b in own["branches"]] == ["ZX"]


async def test_a_librarian_cannot_ask_for_another_branch():
    w = await world()
    from library.errors import InvalidInput
    with pytest.raises(InvalidInput):
        await service.statistics(librarian_of(w["zx"]), YEAR, "CL", NOW)


async def test_attendance_and_no_shows_by_kind_and_age_band():
    w = await world()
    event = (await Event.insert(Event(branch=w["zx"], title_zh="绘本", kind="reading_club", capacity=10,
                                      first_start=dt.datetime(2026, 3, 7, 10, 0), duration_minutes=60))
             .returning(Event.id))[0]["id"]
    starts = dt.datetime(2026, 3, 7, 2, 0, tzinfo=UTC)
    occurrence = (await Occurrence.insert(Occurrence(
        event=event, original_start=dt.datetime(2026, 3, 7, 10), local_start=dt.datetime(2026, 3, 7, 10),
        local_end=dt.datetime(2026, 3, 7, 11), starts_at=starts, ends_at=starts + dt.timedelta(hours=1),
        capacity=10, confirmed=3)).returning(Occurrence.id))[0]["id"]
    for n, (card, status) in enumerate((("C1", "attended"), ("C2", "no_show"), ("A1", "attended"))):
        await Registration.insert(Registration(occurrence=occurrence, patron=w["patrons"][card], arrival=n,
                                               status=status, created_at=starts - dt.timedelta(days=3)))
    await service.refresh(NOW)
    month = await service.statistics(admin(), MARCH, None, NOW)
    assert month["totals"]["sessions"] == 1
    assert month["totals"]["registrations"] == 3 and month["totals"]["attended"] == 2
    assert month["breakdowns"]["no_show"] == {"reading_club|7-12": 1}
    assert month["breakdowns"]["attended"] == {"reading_club|7-12": 1, "reading_club|18-59": 1}
    annual = await service.annual_return(admin(), 2026, None, NOW)
    assert annual["annual"]["sessions"] == 1 and annual["annual"]["attendance"] == 2
    assert annual["annual"]["card_holders"] == 3 and annual["annual"]["volunteer_hours"] == 0  # no shifts held


async def test_an_offline_day_synced_in_late_is_counted_on_its_own_day():
    """The adversary: a branch box offline on 3 March whose loans reach the central node on
    20 March, after the counts for 3 March were made (and long after RECENT_DAYS)."""
    w = await world()
    await lend(w, w["items"][0], "A1", "adult", dt.datetime(2026, 3, 3, 2, 0, tzinfo=UTC))
    await service.refresh(NOW)
    before = await service.statistics(admin(), MARCH, None, NOW)
    assert before["series"]["loans"] == {"2026-03-03": 1}
    # The offline day's rows arrive late: new rows with their own (old) timestamps.
    for n in (4, 5):
        await lend(w, w["items"][n], "C1", "child", dt.datetime(2026, 3, 3, 6, n, tzinfo=UTC))
    # And a loan of that day returned offline: an update of an old row, named by the sync log.
    await Loan.update({Loan.returned_at: dt.datetime(2026, 3, 4, 3, 0, tzinfo=UTC), Loan.returned_branch: w["zx"]}
                      ).where(Loan.item == w["items"][0])
    loan_uuid = (await Loan.select(Loan.uuid).where(Loan.item == w["items"][0]).first())["uuid"]
    from library.sync.tables import SyncChange
    if not await SyncChange.exists().where(SyncChange.entity_uuid == str(loan_uuid)):
        await SyncChange.insert(SyncChange(kind="loan", entity_uuid=str(loan_uuid)))
    later = NOW + dt.timedelta(seconds=service.REFRESH_SECONDS + 1)
    after = await service.statistics(admin(), MARCH, None, later)
    assert after["series"]["loans"] == {"2026-03-03": 3}
    assert after["series"]["returns"] == {"2026-03-04": 1}
    assert after["breakdowns"]["loans"] == {"adult": 1, "child": 2}
    assert after["active"]["total"] == 2
    # Recounting the whole month from the rows gives the very same counts: nothing drifted.
    await service.recount(MARCH.first, MARCH.last)
    again = await service.statistics(admin(), MARCH, None, later)
    assert again["series"] == after["series"] and again["breakdowns"] == after["breakdowns"]


async def test_a_refresh_within_the_interval_reads_the_counts_it_has():
    await world()
    assert await service.refresh(NOW) is True
    assert await service.refresh(NOW + dt.timedelta(seconds=10)) is False


async def test_reading_challenge_participation_and_completion():
    from library.activities.tables import Programme, ProgrammeParticipant, ReadingLog
    w = await world()
    programme = (await Programme.insert(Programme(
        branch=w["zx"], title_zh="暑期阅读", starts_on=dt.date(2026, 7, 1), ends_on=dt.date(2026, 8, 31),
        goals=[{"min": 0, "max": 12, "goal": 2}])).returning(Programme.id))[0]["id"]
    children = []
    for n in range(6):
        children.append((await Patron.insert(Patron(
            card_number=f"K{n}", name=f"K{n}", category="child", birth_date=dt.date(2018, 1, 1), home_branch=w["zx"],
            expires_on=dt.date(2030, 1, 1), pin_hash="x")).returning(Patron.id))[0]["id"])
    for n, child in enumerate(children):
        await ProgrammeParticipant.insert(ProgrammeParticipant(programme=programme, patron=child))
        for book in range(2 if n < 5 else 1):  # five finish, one reads one book of two
            await ReadingLog.insert(ReadingLog(uuid=uuid.uuid4(), programme=programme, patron=child,
                                               title=f"书{book}", read_on=dt.date(2026, 7, 2)))
    await service.refresh(NOW)
    year = await service.statistics(admin(), YEAR, None, NOW)
    assert [(c["title_zh"], c["participants"], c["finished"]) for c in year["challenges"]] == [("暑期阅读", 6, 5)]
    # Outside the programme's dates: not shown.
    march = await service.statistics(admin(), MARCH, None, NOW)
    assert march["challenges"] == []


async def test_the_counts_read_returns_and_renewals_through_their_indexes():
    """SQLite's plan for the reads `service.count_days` makes of a few days of returns and of
    renewals: through loan_returns_idx and loan_renewals_idx, never the whole loan table (at
    2,000,000 loans that was a full read every refresh, inside its write transaction)."""
    from library.db import is_sqlite

    if not is_sqlite():
        pytest.skip("SQLite's EXPLAIN QUERY PLAN (PostgreSQL's planner picks by the table's size)")
    start, end = NOW - dt.timedelta(days=3), NOW
    returns = Loan.select(Loan.returned_branch, Loan.patron_category, Loan.returned_at).where(
        Loan.returned_branch.is_in([1, 2]) & (Loan.returned_at >= start) & (Loan.returned_at < end))
    renewals = Loan.select(Loan.branch, Loan.patron_category, Loan.last_renewed_at).where(
        Loan.branch.is_in([1, 2]) & (Loan.last_renewed_at >= start) & (Loan.last_renewed_at < end))
    for query, index in ((returns, "loan_returns_idx"), (renewals, "loan_renewals_idx")):
        [sql] = [str(querystring) for querystring in query.querystrings]
        plan = " ".join(str(row["detail"]) for row in await Loan.raw("EXPLAIN QUERY PLAN " + sql))
        assert index in plan, plan
