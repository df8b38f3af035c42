"""Yearly closures: a rule a branch keeps ("closed for the Spring Festival holiday") whose days
come from each year's official calendar, so nobody types 2027's dates in again for 2028."""

import datetime as dt

import pytest

from library.branches.public_holidays import public_calendar
from library.branches.rules import (
    YEARLY_CLOSURE_NAMES,
    BranchCalendar,
    DayReason,
    LocalException,
    Period,
    YearlyClosure,
    day_status,
    yearly_closure_days,
    yearly_closures_from,
)

D = dt.date
OFFICE = (Period(dt.time(9, 0), dt.time(20, 30)),)
PUBLIC = public_calendar(D(2025, 1, 1), D(2027, 12, 31))


def central(*closures: YearlyClosure, exceptions=None) -> BranchCalendar:
    """The central library: open Tuesday to Sunday, through public holidays, except its yearly closures."""
    return BranchCalendar(weekly={weekday: OFFICE for weekday in range(1, 7)}, closes_on_public_holidays=False,
                          yearly=frozenset(closures), exceptions=exceptions or {})


def spans(days: list[dt.date]) -> tuple[dt.date, dt.date, int]:
    return days[0], days[-1], len(days)


@pytest.mark.parametrize(("closure", "year", "expected"), [
    # The State Council's breaks (weekends and days off in exchange included).
    (YearlyClosure.spring_festival, 2025, (D(2025, 1, 28), D(2025, 2, 4), 8)),
    (YearlyClosure.spring_festival, 2026, (D(2026, 2, 15), D(2026, 2, 23), 9)),
    (YearlyClosure.spring_festival, 2027, (D(2027, 2, 5), D(2027, 2, 10), 6)),
    # 除夕 and 正月初一 move with the lunar calendar.
    (YearlyClosure.spring_festival_eve_and_day, 2025, (D(2025, 1, 28), D(2025, 1, 29), 2)),
    (YearlyClosure.spring_festival_eve_and_day, 2026, (D(2026, 2, 16), D(2026, 2, 17), 2)),
    (YearlyClosure.spring_festival_eve_and_day, 2027, (D(2027, 2, 5), D(2027, 2, 6), 2)),
    # In 2025 Mid-Autumn fell inside the National Day break: the one break belongs to both.
    (YearlyClosure.mid_autumn, 2025, (D(2025, 10, 1), D(2025, 10, 8), 8)),
    (YearlyClosure.mid_autumn, 2026, (D(2026, 9, 25), D(2026, 9, 27), 3)),
    (YearlyClosure.national_day, 2026, (D(2026, 10, 1), D(2026, 10, 7), 7)),
    (YearlyClosure.dragon_boat, 2026, (D(2026, 6, 19), D(2026, 6, 21), 3)),
    (YearlyClosure.new_year, 2026, (D(2026, 1, 1), D(2026, 1, 3), 3)),  # Sunday the 4th is worked
])
def test_a_rule_closes_the_official_days_of_each_year(closure, year, expected):
    assert spans(yearly_closure_days(closure, D(year, 1, 1), D(year, 12, 31), PUBLIC)) == expected


@pytest.mark.parametrize("day", [D(2025, 1, 28), D(2025, 1, 29), D(2026, 2, 16), D(2026, 2, 17), D(2027, 2, 5),
                                 D(2027, 2, 6)])
def test_the_central_library_closes_on_new_years_eve_and_day_every_year(day):
    status = day_status(day, central(YearlyClosure.spring_festival_eve_and_day), PUBLIC)
    assert (status.is_open, status.reason) == (False, DayReason.closed_public_holiday)
    assert (status.note_zh, status.note_en) == YEARLY_CLOSURE_NAMES[YearlyClosure.spring_festival_eve_and_day]


@pytest.mark.parametrize(("name", "day"), [
    ("the second day of the new year", D(2026, 2, 18)),
    ("Labour Day: not one of its rules", D(2026, 5, 1)),
    ("the day before New Year's Eve", D(2027, 2, 4)),
])
def test_other_holidays_stay_open(name, day):
    assert day_status(day, central(YearlyClosure.spring_festival_eve_and_day), PUBLIC).is_open, name


def test_without_a_rule_the_central_library_opens_through_the_spring_festival():
    assert day_status(D(2026, 2, 17), central(), PUBLIC).is_open


def test_a_special_opening_staff_entered_beats_the_yearly_rule():
    opened = central(YearlyClosure.spring_festival,
                     exceptions={D(2026, 2, 20): LocalException(True, "春节特别开放", "Special opening")})
    assert day_status(D(2026, 2, 20), opened, PUBLIC).reason == DayReason.open_special
    assert not day_status(D(2026, 2, 19), opened, PUBLIC).is_open


def test_a_weekly_closing_day_inside_the_break_is_closed_for_the_holiday():
    """Monday 16 February 2026 (除夕) is the central library's weekly closing day anyway; the
    holiday is the reason shown, as for a branch that closes on every public holiday."""
    status = day_status(D(2026, 2, 16), central(YearlyClosure.spring_festival), PUBLIC)
    assert (status.is_open, status.reason) == (False, DayReason.closed_public_holiday)


def test_stored_values_a_node_does_not_know_are_skipped_not_fatal():
    assert yearly_closures_from(["spring_festival", "lantern_festival", 3, None]) == {YearlyClosure.spring_festival}
    assert yearly_closures_from(None) == frozenset()


def test_every_rule_has_a_name_in_both_languages():
    for closure in YearlyClosure:
        zh, en = YEARLY_CLOSURE_NAMES[closure]
        assert zh and en and zh != en
