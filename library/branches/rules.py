"""Whether a branch is open on a day, and its next open day. Pure: plain values in.

The order of precedence, most specific first:
1. a local exception staff entered for that branch and day (closure or special opening);
2. China's public holidays — the whole official break, including the weekend days
   inside it — close a branch that closes on public holidays; a branch that stays open
   on holidays may still close every year for chosen ones (its yearly closures: "the
   Spring Festival holiday", "New Year's Eve and Day"), whose days follow the official
   calendar of each year;
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


class YearlyClosure(str, Enum):
    """A closure a branch keeps every year, on days the official calendar of that year decides."""

    new_year = "new_year"
    spring_festival = "spring_festival"  # the whole official break
    spring_festival_eve_and_day = "spring_festival_eve_and_day"  # 除夕 and 正月初一 only
    qingming = "qingming"
    labour_day = "labour_day"
    dragon_boat = "dragon_boat"
    mid_autumn = "mid_autumn"
    national_day = "national_day"


# The note a day closed by the rule carries, in both languages (a day's notes are data, like
# the holiday names the public calendar gives).
YEARLY_CLOSURE_NAMES: dict[YearlyClosure, tuple[str, str]] = {
    YearlyClosure.new_year: ("元旦假期闭馆", "Closed for the New Year's Day holiday"),
    YearlyClosure.spring_festival: ("春节假期闭馆", "Closed for the Spring Festival holiday"),
    YearlyClosure.spring_festival_eve_and_day: ("除夕、正月初一闭馆", "Closed on Chinese New Year's Eve and Day"),
    YearlyClosure.qingming: ("清明节假期闭馆", "Closed for the Qingming holiday"),
    YearlyClosure.labour_day: ("劳动节假期闭馆", "Closed for the Labour Day holiday"),
    YearlyClosure.dragon_boat: ("端午节假期闭馆", "Closed for the Dragon Boat Festival holiday"),
    YearlyClosure.mid_autumn: ("中秋节假期闭馆", "Closed for the Mid-Autumn Festival holiday"),
    YearlyClosure.national_day: ("国庆节假期闭馆", "Closed for the National Day holiday"),
}


def yearly_closures_from(values: object) -> frozenset[YearlyClosure]:
    """The yearly closures among stored values; a value this version does not know is skipped
    (a newer node may know more festivals), never a reason to fail a calendar."""
    known = {closure.value: closure for closure in YearlyClosure}
    return frozenset(known[value] for value in (values or ()) if isinstance(value, str) and value in known)


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
    # The festival each statutory holiday day belongs to (a YearlyClosure value); a day off
    # given in exchange for a worked weekend (调休) has none: it belongs to its break.
    festivals: Mapping[dt.date, str] = field(default_factory=dict)
    # 正月初一 of each year, from which New Year's Eve follows whether or not it is a holiday.
    lunar_new_years: frozenset[dt.date] = frozenset()
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

    def break_festivals(self, day: dt.date) -> frozenset[str]:
        """The festivals whose official break includes `day`: the run of non-working days around
        it, weekends and days off in exchange included. In 2025 National Day and Mid-Autumn
        shared one break (1-8 October): each of its days belongs to both."""
        if not self.is_non_working(day):
            return frozenset()
        found = {self.festivals[day]} if day in self.festivals else set()
        for step in (-1, 1):
            cursor = day + dt.timedelta(days=step)
            while self.is_non_working(cursor):
                if cursor in self.festivals:
                    found.add(self.festivals[cursor])
                cursor += dt.timedelta(days=step)
        return frozenset(found)


def yearly_closure_on(day: dt.date, closures: frozenset[YearlyClosure],
                      public: PublicCalendar) -> YearlyClosure | None:
    """The yearly closure that closes `day`, if any (the first in the enum's order)."""
    if not closures:
        return None
    festivals = public.break_festivals(day)
    for closure in YearlyClosure:
        if closure not in closures:
            continue
        if closure is YearlyClosure.spring_festival_eve_and_day:
            if day in public.lunar_new_years or day + dt.timedelta(days=1) in public.lunar_new_years:
                return closure
        elif closure.value in festivals:
            return closure
    return None


def yearly_closure_days(closure: YearlyClosure, start: dt.date, end: dt.date,
                        public: PublicCalendar) -> list[dt.date]:
    """The days in [start, end] the closure closes, to show staff what a rule means this year."""
    days, day = [], start
    while day <= end:
        if yearly_closure_on(day, frozenset({closure}), public) is closure:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


@dataclass(frozen=True)
class BranchCalendar:
    weekly: Mapping[int, tuple[Period, ...]]
    exceptions: Mapping[dt.date, LocalException] = field(default_factory=dict)
    closes_on_public_holidays: bool = True
    yearly: frozenset[YearlyClosure] = frozenset()


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

    closure = yearly_closure_on(day, calendar.yearly, public)
    if closure is not None:
        # A public holiday closure all the same: only which holidays differs from branch to branch.
        zh, en = YEARLY_CLOSURE_NAMES[closure]
        return DayStatus(day, False, DayReason.closed_public_holiday, (), zh, en)

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
