"""Whether a branch is open on a day, and its next open day. Pure: plain values in.

The order of precedence, most specific first:
1. a local exception staff entered for that branch and day (closure or special opening);
2. China's public holidays — the whole official break, including the weekend days
   inside it — close a branch that closes on public holidays;
3. a make-up working day (调休上班日) is a working day: a branch that is closed on
   that weekday by its weekly hours opens with the hours of its first open weekday
   from Monday to Friday;
4. the weekly opening hours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


class DayReason(str, Enum):
    open_regular = "open_regular"
    open_makeup_workday = "open_makeup_workday"
    open_special = "open_special"
    closed_weekly = "closed_weekly"
    closed_public_holiday = "closed_public_holiday"
    closed_local = "closed_local"


@dataclass(frozen=True)
class Period:
    opens: dt.time
    closes: dt.time


@dataclass(frozen=True)
class LocalException:
    is_open: bool
    reason_zh: str = ""
    reason_en: str = ""


@dataclass(frozen=True)
class PublicCalendar:
    """China's statutory holidays and make-up working days, as plain data."""

    holidays: Mapping[dt.date, tuple[str, str]] = field(default_factory=dict)  # day -> (zh, en)
    makeup_workdays: frozenset[dt.date] = frozenset()
    # Years whose make-up days have been published (the State Council announces them
    # each November); later years show only the statutory holidays.
    confirmed_years: frozenset[int] = frozenset()

    def is_non_working(self, day: dt.date) -> bool:
        if day in self.holidays:
            return True
        return day.weekday() >= 5 and day not in self.makeup_workdays

    def holiday_break(self, day: dt.date) -> tuple[str, str] | None:
        """The holiday whose official break includes `day`, if any.

        A weekend day belongs to a break when the run of non-working days around it
        contains a holiday: 1-7 October is one break even though the 4th is a Sunday.
        """
        if day in self.holidays:
            return self.holidays[day]
        if not self.is_non_working(day):
            return None
        for step in (-1, 1):
            cursor = day + dt.timedelta(days=step)
            while self.is_non_working(cursor):
                if cursor in self.holidays:
                    return self.holidays[cursor]
                cursor += dt.timedelta(days=step)
        return None


@dataclass(frozen=True)
class BranchCalendar:
    weekly: Mapping[int, tuple[Period, ...]]
    exceptions: Mapping[dt.date, LocalException] = field(default_factory=dict)
    closes_on_public_holidays: bool = True


@dataclass(frozen=True)
class DayStatus:
    day: dt.date
    is_open: bool
    reason: DayReason
    hours: tuple[Period, ...] = ()
    note_zh: str = ""
    note_en: str = ""


def _working_weekday_hours(calendar: BranchCalendar) -> tuple[Period, ...]:
    for weekday in range(5):
        if calendar.weekly.get(weekday):
            return tuple(calendar.weekly[weekday])
    return ()


def _regular_or_working_hours(day: dt.date, calendar: BranchCalendar) -> tuple[Period, ...]:
    return tuple(calendar.weekly.get(day.weekday(), ())) or _working_weekday_hours(calendar)


def day_status(day: dt.date, calendar: BranchCalendar, public: PublicCalendar) -> DayStatus:
    local = calendar.exceptions.get(day)
    if local is not None:
        if local.is_open:
            hours = _regular_or_working_hours(day, calendar)
            return DayStatus(day, bool(hours), DayReason.open_special, hours, local.reason_zh, local.reason_en)
        return DayStatus(day, False, DayReason.closed_local, (), local.reason_zh, local.reason_en)

    if calendar.closes_on_public_holidays:
        holiday = public.holiday_break(day)
        if holiday is not None:
            return DayStatus(day, False, DayReason.closed_public_holiday, (), holiday[0], holiday[1])

    if day in public.makeup_workdays:
        hours = _regular_or_working_hours(day, calendar)
        if hours:
            return DayStatus(day, True, DayReason.open_makeup_workday, hours)

    hours = tuple(calendar.weekly.get(day.weekday(), ()))
    if hours:
        return DayStatus(day, True, DayReason.open_regular, hours)
    return DayStatus(day, False, DayReason.closed_weekly)


def next_open_day(
    start: dt.date, calendar: BranchCalendar, public: PublicCalendar, horizon_days: int = 366
) -> dt.date | None:
    """The first day on or after `start` the branch is open; None if none within the horizon.

    None is an answer, not an error: a branch with no opening hours has no open day,
    and a caller (a due date) must decide what that means.
    """
    for offset in range(horizon_days + 1):
        day = start + dt.timedelta(days=offset)
        if day_status(day, calendar, public).is_open:
            return day
    return None


def validate_period(opens: dt.time, closes: dt.time) -> str | None:
    """A reason code when an opening period is impossible, else None."""
    if closes <= opens:
        return "period_closes_before_opening"
    return None
