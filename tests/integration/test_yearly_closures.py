"""Yearly closures on a real database: the demo's central library closes on New Year's Eve and
Day of every year from one rule, staff change the rules of their own branch only, and what
reads a branch's calendar (the calendar API, due dates' cache, the activities planner) sees them."""

import datetime as dt
import json

import pytest

from library import config_cache
from library.activities.service import EventInput, schedule_event
from library.activities.tables import Occurrence
from library.accounts.permissions import may
from library.branches import service
from library.branches.tables import AuditEntry, Branch
from library.demo import _NETWORK_ADMIN, load_demo
from library.errors import InvalidInput, NotPermitted
from tests.support import branch_id, librarian_of


def editor(principal):
    """What the calendar controller hands the service: the matrix's answer per branch."""
    return service.CalendarEditor(principal.name, principal.audit_name,
                                  lambda branch: may(principal, "calendars.edit", branch))

TODAY = dt.date(2026, 11, 28)
NOW = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
async def demo():
    await load_demo(TODAY, books=False)


async def closed_days(code: str, start: dt.date, days: int) -> list[dt.date]:
    return [day["day"] for day in await service.calendar_days(code, start, days) if not day["is_open"]]


@pytest.mark.parametrize(("eve", "day"), [(dt.date(2025, 1, 28), dt.date(2025, 1, 29)),
                                          (dt.date(2026, 2, 16), dt.date(2026, 2, 17)),
                                          (dt.date(2027, 2, 5), dt.date(2027, 2, 6))])
async def test_the_demo_central_library_closes_on_new_years_eve_and_day_of_every_year(demo, eve, day):
    days = await service.calendar_days("JX", eve - dt.timedelta(days=1), 4)
    by_day = {row["day"]: row for row in days}
    assert not by_day[eve]["is_open"] and not by_day[day]["is_open"]
    assert by_day[day]["note_zh"] == "除夕、正月初一闭馆"
    assert by_day[day + dt.timedelta(days=1)]["is_open"]  # the second day of the year: open again
    assert (await Branch.select(Branch.yearly_closures).where(Branch.code == "JX").first())[
        "yearly_closures"] in ('["spring_festival_eve_and_day"]', ["spring_festival_eve_and_day"])


async def test_staff_set_the_rules_of_their_branch_and_the_calendar_follows(demo):
    jx = await branch_id("JX")
    await service.set_yearly_closures(editor(librarian_of(jx)), "JX", False, ["spring_festival", "mid_autumn"])
    closed = await closed_days("JX", dt.date(2026, 2, 14), 12)
    # The whole 2026 break, 15 to 23 February (the 16th is a Monday, the weekly closing day, anyway).
    assert closed == [dt.date(2026, 2, 15) + dt.timedelta(days=n) for n in range(9)]
    assert await closed_days("JX", dt.date(2026, 9, 25), 3) == [dt.date(2026, 9, 25), dt.date(2026, 9, 26),
                                                                 dt.date(2026, 9, 27)]
    assert await closed_days("JX", dt.date(2026, 10, 1), 1) == []  # National Day: not one of its rules
    detail = await service.branch_detail("JX", TODAY, days=1)
    assert detail["yearly_closures"] == ["spring_festival", "mid_autumn"]
    audit = await AuditEntry.select().where(AuditEntry.action == "calendar.yearly_closures_set")
    assert json.loads(audit[0]["detail"])["yearly_closures"] == ["spring_festival", "mid_autumn"]


async def test_a_librarian_cannot_change_another_branchs_rules_and_nonsense_is_refused(demo):
    zx, jx = await branch_id("ZX"), await branch_id("JX")
    with pytest.raises(NotPermitted):
        await service.set_yearly_closures(editor(librarian_of(zx)), "JX", True, [])
    with pytest.raises(InvalidInput) as unknown:
        await service.set_yearly_closures(editor(librarian_of(jx)), "JX", False, ["spring_festival", "every_tuesday"])
    assert unknown.value.code == "invalid_choice"
    row = await Branch.select(Branch.closes_on_public_holidays, Branch.yearly_closures).where(Branch.id == jx).first()
    assert row["closes_on_public_holidays"] is False and "spring_festival_eve_and_day" in str(row["yearly_closures"])


async def test_the_cached_calendar_of_due_dates_sees_a_changed_rule(demo):
    """Due dates read the calendar through the configuration cache: a rule saved by staff must
    reach it at once (the version trigger on `branch` fires on the update)."""
    # As loans read a branch: a few columns, not its rules.
    jx = await Branch.select(Branch.id, Branch.code, Branch.closes_on_public_holidays).where(
        Branch.code == "JX").first()
    start, end = dt.date(2027, 1, 1), dt.date(2027, 12, 31)
    before = await service.cached_calendar(jx, start, end, await config_cache.current_version())
    assert [closure.value for closure in before.yearly] == ["spring_festival_eve_and_day"]
    await service.set_yearly_closures(editor(_NETWORK_ADMIN), "JX", False, ["national_day"])
    after = await service.cached_calendar(jx, start, end, await config_cache.current_version())
    assert [closure.value for closure in after.yearly] == ["national_day"]


async def test_a_weekly_series_skips_the_days_a_yearly_rule_closes(demo):
    """The planner's skip_closed_days (the default) asks the same calendar: a Saturday club at the
    central library across Chinese New Year 2027 leaves out 6 February, and only that."""
    data = EventInput(branch_code="JX", title_zh="周六故事会", kind="reading_club", room_code="KIDS",
                      first_start=dt.datetime(2027, 1, 23, 10, 0), duration_minutes=60, capacity=30,
                      rrule="FREQ=WEEKLY;BYDAY=SA;UNTIL=20270213T235959")
    await schedule_event(_NETWORK_ADMIN, data, NOW)
    days = [row["local_start"].date() for row in await Occurrence.select(Occurrence.local_start).where(
        Occurrence.event.title_zh == "周六故事会").order_by(Occurrence.local_start)]
    assert days == [dt.date(2027, 1, 23), dt.date(2027, 1, 30), dt.date(2027, 2, 13)]
