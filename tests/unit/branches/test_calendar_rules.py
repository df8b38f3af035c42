"""Open or closed, and why: the branch calendar as a table of cases, plus properties."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from library.branches.public_holidays import public_calendar
from library.branches.rules import (
    BranchCalendar,
    DayReason,
    LocalException,
    Period,
    PublicCalendar,
    day_status,
    next_open_day,
    validate_period,
)

D = dt.date
T = dt.time
DAY = (Period(T(8, 30), T(11, 30)), Period(T(13, 30), T(20, 30)))
OFFICE = (Period(T(9, 0), T(17, 0)),)

# Zhenxing: open Tuesday to Sunday, closed Mondays, closed on public holidays.
ZHENXING = BranchCalendar(weekly={weekday: DAY for weekday in range(1, 7)}, closes_on_public_holidays=True)
# A branch with office hours: Monday to Friday only.
OFFICE_HOURS = BranchCalendar(weekly={weekday: OFFICE for weekday in range(5)}, closes_on_public_holidays=True)
# The central library stays open through public holidays.
CENTRAL = BranchCalendar(weekly={weekday: OFFICE for weekday in range(1, 7)}, closes_on_public_holidays=False)

PUBLIC = public_calendar(D(2026, 1, 1), D(2026, 12, 31))


@pytest.mark.parametrize(
    ("name", "calendar", "day", "is_open", "reason"),
    [
        ("an ordinary Tuesday", ZHENXING, D(2026, 11, 24), True, DayReason.open_regular),
        ("the weekly Monday closing", ZHENXING, D(2026, 11, 30), False, DayReason.closed_weekly),
        ("National Day", ZHENXING, D(2026, 10, 1), False, DayReason.closed_public_holiday),
        ("a Sunday inside the Golden Week", ZHENXING, D(2026, 10, 4), False, DayReason.closed_public_holiday),
        ("the last day off of the Golden Week", ZHENXING, D(2026, 10, 7), False, DayReason.closed_public_holiday),
        ("the day after the Golden Week", ZHENXING, D(2026, 10, 8), True, DayReason.open_regular),
        ("the make-up Saturday after National Day", ZHENXING, D(2026, 10, 10), True, DayReason.open_makeup_workday),
        ("a make-up Saturday at an office-hours branch", OFFICE_HOURS, D(2026, 10, 10), True,
         DayReason.open_makeup_workday),
        ("an ordinary Saturday at an office-hours branch", OFFICE_HOURS, D(2026, 11, 28), False,
         DayReason.closed_weekly),
        ("the weekend of the Dragon Boat break", ZHENXING, D(2026, 6, 20), False, DayReason.closed_public_holiday),
        ("an ordinary weekend next to no holiday", ZHENXING, D(2026, 11, 29), True, DayReason.open_regular),
        ("National Day at a branch that stays open", CENTRAL, D(2026, 10, 1), True, DayReason.open_regular),
        ("Spring Festival eve", ZHENXING, D(2026, 2, 16), False, DayReason.closed_public_holiday),
    ],
)
def test_day_status(name, calendar, day, is_open, reason):
    status = day_status(day, calendar, PUBLIC)
    assert (status.is_open, status.reason) == (is_open, reason), name


def test_a_holiday_carries_its_name_in_both_languages():
    status = day_status(D(2026, 10, 1), ZHENXING, PUBLIC)
    assert status.note_zh == "国庆节"
    assert status.note_en == "National Day"


def test_makeup_day_at_office_branch_uses_its_working_day_hours():
    assert day_status(D(2026, 10, 10), OFFICE_HOURS, PUBLIC).hours == OFFICE


def test_a_local_closure_beats_the_weekly_hours():
    calendar = BranchCalendar(
        weekly=ZHENXING.weekly, exceptions={D(2026, 12, 15): LocalException(False, "设备检修", "Maintenance")}
    )
    status = day_status(D(2026, 12, 15), calendar, PUBLIC)
    assert (status.is_open, status.reason, status.note_en) == (False, DayReason.closed_local, "Maintenance")


def test_a_special_opening_beats_a_public_holiday_and_uses_regular_hours():
    calendar = BranchCalendar(
        weekly=ZHENXING.weekly, exceptions={D(2026, 10, 2): LocalException(True, "国庆阅读周", "Reading week")}
    )
    status = day_status(D(2026, 10, 2), calendar, PUBLIC)
    assert (status.is_open, status.reason, status.hours) == (True, DayReason.open_special, DAY)


def test_a_special_opening_on_the_weekly_closing_day_takes_working_day_hours():
    calendar = BranchCalendar(weekly=ZHENXING.weekly, exceptions={D(2026, 11, 30): LocalException(True)})
    assert day_status(D(2026, 11, 30), calendar, PUBLIC).hours == DAY


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (D(2026, 11, 24), D(2026, 11, 24)),  # open today
        (D(2026, 11, 30), D(2026, 12, 1)),  # Monday -> Tuesday
        (D(2026, 10, 1), D(2026, 10, 8)),  # the whole Golden Week is skipped
        (D(2026, 9, 28), D(2026, 9, 29)),  # Monday before National Day
    ],
)
def test_next_open_day(start, expected):
    assert next_open_day(start, ZHENXING, PUBLIC) == expected


def test_a_branch_without_hours_has_no_next_open_day():
    assert next_open_day(D(2026, 11, 24), BranchCalendar(weekly={}), PUBLIC, horizon_days=30) is None


def test_an_opening_period_must_close_after_it_opens():
    assert validate_period(T(9), T(17)) is None
    assert validate_period(T(17), T(9)) == "period_closes_before_opening"
    assert validate_period(T(9), T(9)) == "period_closes_before_opening"


weekly_hours = st.dictionaries(st.integers(0, 6), st.just(OFFICE), min_size=1)
closures = st.dictionaries(
    st.dates(D(2026, 1, 1), D(2026, 12, 31)), st.builds(LocalException, st.booleans()), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(start=st.dates(D(2026, 1, 1), D(2026, 12, 31)), weekly=weekly_hours, exceptions=closures,
       closes_on_holidays=st.booleans())
def test_next_open_day_is_open_and_nothing_before_it_is(start, weekly, exceptions, closes_on_holidays):
    calendar = BranchCalendar(weekly=weekly, exceptions=exceptions, closes_on_public_holidays=closes_on_holidays)
    public = public_calendar(start, start + dt.timedelta(days=60))
    found = next_open_day(start, calendar, public, horizon_days=60)
    assert found is not None, "a branch open one weekday finds an open day within 60 days of 2026"
    assert found >= start
    assert day_status(found, calendar, public).is_open
    day = start
    while day < found:
        assert not day_status(day, calendar, public).is_open
        day += dt.timedelta(days=1)


def test_public_calendar_knows_2026_makeup_days():
    assert {D(2026, 10, 10), D(2026, 9, 20), D(2026, 1, 4)} <= PUBLIC.makeup_workdays
    assert 2026 in PUBLIC.confirmed_years


def test_break_detection_on_plain_data():
    public = PublicCalendar(holidays={D(2030, 5, 3): ("节", "Festival")})  # a Friday
    assert public.holiday_break(D(2030, 5, 4)) == ("节", "Festival")  # the weekend after it
    assert public.holiday_break(D(2030, 5, 11)) is None  # the next weekend is not
