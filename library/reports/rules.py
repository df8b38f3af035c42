"""Pure decisions of the statistics: which local day a moment falls on, which age band a reader
is in, which periods a page shows, and which cells are too small to show (docs/statistics.md).

No database and no clock here: the service passes rows and `today` in.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from library.i18n import N_

# Bands a public library reports readers and participants by (children by school stage).
AGE_BANDS: tuple[tuple[int, int | None, str], ...] = (
    (0, 6, "0-6"), (7, 12, "7-12"), (13, 17, "13-17"), (18, 59, "18-59"), (60, None, "60+"))
UNKNOWN_AGE = "unknown"
AGE_BAND_NAMES = tuple(name for _, _, name in AGE_BANDS) + (UNKNOWN_AGE,)

# The small-count rule: a breakdown cell counting 1 to SMALL_COUNT - 1 people is shown as "<5",
# and so is the next smallest cell of the same row when only one would otherwise be hidden
# (the row's total would give it away). Zero identifies nobody and is shown.
SMALL_COUNT = 5
HIDDEN = f"<{SMALL_COUNT}"

# Every measure the counts keep, with how its breakdown is made and its label.
MEASURES: dict[str, str] = {
    "loans": N_("Loans made"),
    "returns": N_("Returns"),
    "renewed": N_("Loans renewed (on the day of their latest renewal)"),
    "holds_filled": N_("Holds filled"),
    "new_readers": N_("New readers"),
    "copies_added": N_("Copies added"),
    "copies_withdrawn": N_("Copies withdrawn"),
    "sessions": N_("Sessions held"),
    "registrations": N_("Registrations"),
    "attended": N_("People attended"),
    "no_show": N_("No-shows"),
}
# The measures counted by reader category / activity kind and age band.
BY_CATEGORY = ("loans", "returns", "renewed")
BY_CATEGORY_AND_AGE = ("new_readers",)
BY_KIND = ("sessions",)
BY_KIND_AND_AGE = ("registrations", "attended", "no_show")


def age_on(birth_date: dt.date | None, day: dt.date) -> int | None:
    if birth_date is None:
        return None
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def age_band(birth_date: dt.date | None, day: dt.date) -> str:
    age = age_on(birth_date, day)
    if age is None or age < 0:
        return UNKNOWN_AGE
    for low, high, name in AGE_BANDS:
        if age >= low and (high is None or age <= high):
            return name
    return UNKNOWN_AGE


def local_day(moment: dt.datetime, time_zone: str) -> dt.date:
    """The day a moment (stored in UTC) falls on where the branch is: a loan at 00:30 in
    Jiaxing counts for that day, not for the day before in UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(ZoneInfo(time_zone)).date()


def days_window(first: dt.date, last: dt.date, time_zone: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of the local days `first` to `last`."""
    zone = ZoneInfo(time_zone)
    start = dt.datetime.combine(first, dt.time(), zone).astimezone(dt.timezone.utc)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.timezone.utc)
    return start, end


def month_key(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


@dataclass(frozen=True)
class Period:
    """What a statistics page covers: a year (by month), a month (by day) or a day."""

    kind: str  # "year", "month", "day"
    first: dt.date
    last: dt.date

    @property
    def key(self) -> str:
        if self.kind == "year":
            return f"{self.first.year:04d}"
        if self.kind == "month":
            return month_key(self.first)
        return self.first.isoformat()

    def buckets(self) -> list[str]:
        """The points of the period's series: its months, or its days; a day has one."""
        if self.kind == "year":
            return [f"{self.first.year:04d}-{month:02d}" for month in range(1, 13)]
        return [(self.first + dt.timedelta(days=n)).isoformat() for n in range((self.last - self.first).days + 1)]

    def bucket_of(self, day: dt.date) -> str:
        return month_key(day) if self.kind == "year" else day.isoformat()

    def previous(self) -> "Period":
        return parse_period(self.kind, _shift(self, -1))

    def next(self) -> "Period":
        return parse_period(self.kind, _shift(self, 1))


def _shift(period: Period, step: int) -> str:
    if period.kind == "year":
        return str(period.first.year + step)
    if period.kind == "month":
        month = period.first.year * 12 + period.first.month - 1 + step
        return f"{month // 12:04d}-{month % 12 + 1:02d}"
    return (period.first + dt.timedelta(days=step)).isoformat()


class BadPeriod(ValueError):
    pass


def parse_period(kind: str | None, value: str | None, today: dt.date | None = None) -> Period:
    """The period a page asks for ("year" "2026", "month" "2026-03", "day" "2026-03-08");
    nothing asked: this year so far. Raises BadPeriod for anything else."""
    kind = kind or "year"
    try:
        if not value:
            if today is None:
                raise BadPeriod(value)
            value = {"year": str(today.year), "month": month_key(today), "day": today.isoformat()}[kind]
        if kind == "year":
            year = int(value) if value.isdigit() and len(value) == 4 else -1
            first = dt.date(year, 1, 1)
            return Period("year", first, dt.date(year, 12, 31))
        if kind == "month":
            year_text, month_text = value.split("-")
            if len(year_text) != 4 or not year_text.isdigit() or not month_text.isdigit():
                raise BadPeriod(value)
            first = dt.date(int(year_text), int(month_text), 1)
            following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
            return Period("month", first, following - dt.timedelta(days=1))
        if kind == "day":
            day = dt.date.fromisoformat(value)
            return Period("day", day, day)
    except (ValueError, KeyError) as error:
        raise BadPeriod(value) from error
    raise BadPeriod(kind)


def shown(cells: Mapping[str, int]) -> dict[str, int | str]:
    """One breakdown row as it may be shown: cells of 1-4 hidden as "<5", and if exactly one
    cell would be hidden, the smallest other non-zero cell with it (so that the row's total,
    which is shown, cannot give the hidden one away)."""
    small = [key for key, value in cells.items() if 0 < value < SMALL_COUNT]
    if len(small) == 1:
        others = sorted((value, key) for key, value in cells.items() if value > 0 and key not in small)
        if others:
            small.append(others[0][1])
    return {key: (HIDDEN if key in small else value) for key, value in cells.items()}


def count_of_people(value: int) -> int | str:
    """A count of people shown on its own (a programme's participants): "<5" from 1 to 4."""
    return HIDDEN if 0 < value < SMALL_COUNT else value


def rate(part: int, whole: int) -> str:
    """A rate in percent, or "—" when the whole is so small that the rate would tell about a
    person (3 no-shows out of 4 registrations)."""
    if whole < SMALL_COUNT:
        return "—"
    return f"{100 * part / whole:.1f}%"


def split(breakdown: str) -> tuple[str, str]:
    first, _, second = breakdown.partition("|")
    return first, second


def tally(keys: Iterable[tuple[str, str]]) -> Counter:
    """(measure, breakdown) pairs → how many of each: the counts of one branch-day."""
    return Counter(keys)


def goal_for(goals: list[dict[str, int]], age: int | None) -> int:
    """A reading challenge's goal for a child of `age` (the same rule as the challenge page's:
    the goal of the child's age group, else the largest)."""
    for goal in goals:
        if age is not None and goal["min"] <= age <= goal["max"]:
            return goal["goal"]
    return max((goal["goal"] for goal in goals), default=10)
