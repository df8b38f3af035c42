import datetime as dt
import json

import pytest

from library.accounts.permissions import may
from library.branches import service
from library.branches.tables import AuditEntry, Branch, CalendarException, OpeningPeriod, Room
from library.demo import load_demo
from library.errors import Conflict, InvalidInput, NotFound, NotPermitted
from tests.support import branch_id, librarian_of


def editor(principal):
    """What the calendar controller hands the service: the matrix's answer per branch."""
    return service.CalendarEditor(principal.name, principal.audit_name,
                                  lambda branch: may(principal, "calendars.edit", branch))

TODAY = dt.date(2026, 11, 28)


@pytest.fixture
async def demo():
    await load_demo(TODAY, books=False)


async def test_next_open_day_skips_the_golden_week_and_mondays(demo):
    assert await service.next_open_day("ZX", dt.date(2026, 10, 1)) == dt.date(2026, 10, 8)
    assert await service.next_open_day("ZX", dt.date(2026, 11, 30)) == dt.date(2026, 12, 1)
    # The central library stays open on public holidays (but is closed on Mondays).
    assert await service.next_open_day("JX", dt.date(2026, 10, 1)) == dt.date(2026, 10, 1)


async def test_a_local_closure_moves_the_next_open_day(demo):
    zx = await branch_id("ZX")
    await service.add_calendar_exception(editor(librarian_of(zx)), "ZX", dt.date(2026, 12, 1), False, "盘点", "Stocktake",
                                         TODAY)
    assert await service.next_open_day("ZX", dt.date(2026, 11, 30)) == dt.date(2026, 12, 2)
    audit = await AuditEntry.select().where(AuditEntry.action == "calendar.exception_added")
    assert len(audit) == 1 and json.loads(audit[0]["detail"])["day"] == "2026-12-01"


async def test_the_same_day_twice_is_a_conflict_and_keeps_the_first(demo):
    zx = await branch_id("ZX")
    await service.add_calendar_exception(editor(librarian_of(zx)), "ZX", dt.date(2026, 12, 2), False, "甲", "", TODAY)
    with pytest.raises(Conflict) as refused:
        await service.add_calendar_exception(editor(librarian_of(zx)), "ZX", dt.date(2026, 12, 2), True, "乙", "", TODAY)
    assert refused.value.code == "calendar_exception_exists"
    rows = await CalendarException.select().where(CalendarException.day == dt.date(2026, 12, 2))
    assert [(row["reason_zh"], row["is_open"]) for row in rows] == [("甲", False)]
    assert await AuditEntry.count().where(AuditEntry.action == "calendar.exception_added") == 1


async def test_a_librarian_cannot_change_another_branch_calendar(demo):
    zx = await branch_id("ZX")
    before = await CalendarException.count()
    with pytest.raises(NotPermitted) as refused:
        await service.add_calendar_exception(editor(librarian_of(zx)), "JX", dt.date(2026, 12, 2), False, "x", "", TODAY)
    assert refused.value.params == {"code": "JX"}
    assert await CalendarException.count() == before


@pytest.mark.parametrize(
    ("day", "reason_zh", "code"),
    [(dt.date(2026, 11, 27), "昨天", "date_out_of_range"), (dt.date(2029, 1, 1), "太远", "date_out_of_range"),
     (dt.date(2026, 12, 3), "  ", "required"), (dt.date(2026, 12, 3), "长" * 201, "reason_too_long")],
)
async def test_bad_calendar_entries_are_refused(demo, day, reason_zh, code):
    zx = await branch_id("ZX")
    with pytest.raises(InvalidInput) as refused:
        await service.add_calendar_exception(editor(librarian_of(zx)), "ZX", day, False, reason_zh, "", TODAY)
    assert refused.value.code == code


async def test_removing_an_entry_that_is_not_there(demo):
    zx = await branch_id("ZX")
    with pytest.raises(NotFound):
        await service.remove_calendar_exception(editor(librarian_of(zx)), "ZX", dt.date(2026, 12, 9))


async def test_unknown_branch(demo):
    with pytest.raises(NotFound) as refused:
        await service.next_open_day("NOPE", TODAY)
    assert refused.value.params == {"code": "NOPE"}


async def test_branch_detail_lists_rooms_and_days(demo):
    detail = await service.branch_detail("ZX", TODAY, days=14)
    assert {room["name_zh"]: room["capacity"] for room in detail["rooms"]} == {
        "邻乐空间": 30, "书房": 40, "手工教室": 20, "邻里议事区": 15, "大师工作室": 8}
    assert len(detail["days"]) == 14
    assert detail["weekly"][0] == []  # closed on Mondays
    assert [d["reason"] for d in detail["days"] if d["day"] == dt.date(2026, 11, 30)] == ["closed_weekly"]


# The database itself keeps these, on both engines (triggers and unique indexes on SQLite).

async def test_the_database_refuses_a_room_without_seats(demo):
    with pytest.raises(Exception, match="(?i)check|constraint"):
        await Room.insert(Room(branch=await branch_id("ZX"), code="ZERO", name_zh="零", name_en="Zero", capacity=0))


async def test_the_database_refuses_a_room_code_twice_in_one_branch(demo):
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        await Room.insert(Room(branch=await branch_id("ZX"), code="KIDS", name_zh="又", name_en="Again", capacity=5))


async def test_the_database_refuses_an_opening_period_that_ends_before_it_starts(demo):
    with pytest.raises(Exception, match="(?i)check|constraint"):
        await OpeningPeriod.insert(OpeningPeriod(branch=await branch_id("ZX"), weekday=0, opens=dt.time(17),
                                                 closes=dt.time(9)))


async def test_the_database_refuses_a_branch_with_rooms_being_deleted(demo):
    with pytest.raises(Exception, match="(?i)foreign key|violates|constraint"):
        await Branch.delete().where(Branch.code == "XZ")
    assert await Branch.exists().where(Branch.code == "XZ")
